import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { verifyRepository } from '../../core/api/verify.ts';
import { isHvError } from '../../core/errors.ts';
import { initRepository, openRepository } from '../../core/repo/local.ts';
import { pruneChunks } from '../../core/repo/prune.ts';
import { makeManifest, storeDisk } from '../../core/repo/testing.ts';

describe('format 1 repositories (loose chunks, before packs)', function () {
  this.timeout(30_000);
  it('still restore and verify, byte-identical, and refuse every write with ERR_UNSUPPORTED naming the repository', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hvb-format1-'));
    try {
      const path = join(dir, 'repo');
      const data = Buffer.concat([randomBytes(256 * 1024), Buffer.alloc(256 * 1024), Buffer.from('log line\n'.repeat(40_000)).subarray(0, 256 * 1024)]);
      const repo = await initRepository(path, { chunkSize: 256 * 1024 });
      const disk = await storeDisk(repo, data);
      const id = await repo.saveManifest(makeManifest({ disks: [disk] }));
      // Rewrite it the way format 1 stored it: every chunk a loose object, no packs, config version 1.
      for (const c of disk.chunks) if (c) await repo.backend.save(undefined, { type: 'chunks', name: c }, await repo.loadStoredChunk(c));
      await repo.close();
      rmSync(join(path, 'packs'), { recursive: true });
      rmSync(join(path, 'index'), { recursive: true });
      const config = JSON.parse(readFileSync(join(path, 'config'), 'utf8'));
      writeFileSync(join(path, 'config'), JSON.stringify({ ...config, version: 1 }, null, 2) + '\n');

      const old = await openRepository(path, { threads: 0 });
      try {
        assert.equal(old.readOnly, true);
        const m = await old.loadManifest(id);
        const back = Buffer.alloc(data.length);
        for (const [i, c] of m.disks[0]!.chunks!.entries()) if (c) (await old.loadChunk(c)).copy(back, i * 256 * 1024);
        assert.ok(back.equals(data), 'a format 1 restore point reads back byte-identical');
        const refuses = (what: string) => (e: unknown) => isHvError(e, 'ERR_UNSUPPORTED') && e.message.includes(path) && e.message.includes(what);
        assert.throws(() => old.chunkWriter(), refuses('store chunks'));
        await assert.rejects(Promise.resolve().then(() => old.saveManifest(makeManifest({ disks: [disk] }))), refuses('write restore points'));
        await assert.rejects(old.removeRestorePoints([id]), refuses('remove restore points'));
        await assert.rejects(pruneChunks(old, new Set()), refuses('garbage collection'));
      } finally {
        await old.close();
      }
      const report = await verifyRepository({}, { repository: path });
      assert.equal(report.ok, true, JSON.stringify(report.problems));
      assert.equal(report.chunksChecked, 2);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
