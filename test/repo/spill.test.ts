// The chunk index's memory budget as a process gets it: HVB_INDEX_MEMORY_RECORDS, which the test
// command's "spill" suite sets to 3 so that every repository there spills its index (and GC's
// referenced set) to scratch runs. Without this check, a budget that stopped reaching the index
// would leave that suite passing with nothing spilled.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { addTestPoint, testDisk } from '../../core/archive/testing.ts';
import { initRepository, openRepository } from '../../core/repo/local.ts';
import { indexMemoryRecords } from '../../core/repo/sorted-run.ts';

describe('chunk index memory budget', () => {
  let dir: string;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'hvb-spill-')); });
  afterEach(() => { rmSync(dir, { recursive: true, force: true }); });

  it('comes from HVB_INDEX_MEMORY_RECORDS (else 512 Ki records), and a repository index past it is spilled to scratch runs', async () => {
    const env = process.env.HVB_INDEX_MEMORY_RECORDS;
    assert.equal(indexMemoryRecords(), env ? Number(env) : 512 * 1024);
    const path = join(dir, 'repo');
    const repo = await initRepository(path, { chunkSize: 64 * 1024 });
    await addTestPoint(repo, { vm: 'a', createdAt: '2026-01-01T00:00:00.000Z', disk: testDisk(64 * 1024, 40, 1), format: 'raw' });
    await repo.close();
    const again = await openRepository(path, { threads: 0 });
    try {
      const index = await again.chunkIndex();
      assert.equal(index.size, 40);
      assert.equal(index.spilled.runs > 0, indexMemoryRecords() <= 40, `${index.spilled.runs} runs at a budget of ${indexMemoryRecords()}`);
    } finally {
      await again.close();
    }
  });
});
