import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { collectGarbage } from '../../core/api/retention.ts';
import { initRepository, openRepository } from '../../core/repo/local.ts';
import { makeManifest, storeDisk } from '../../core/repo/testing.ts';

describe('restore point summaries (points/<id>)', function () {
  this.timeout(30_000);
  let dir: string;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'hvb-summaries-')); });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const point = (name: string, createdAt: string, disk: Awaited<ReturnType<typeof storeDisk>>) =>
    makeManifest({ vm: { id: `${name}-id`, name, generation: 2, host: 'local', hostName: 'h' }, createdAt, finishedAt: createdAt, disks: [disk] });

  it('are written with each manifest, hold no chunk list, and are what finding points reads', async () => {
    const path = join(dir, 'repo');
    const repo = await initRepository(path, { chunkSize: 64 * 1024 });
    const disk = await storeDisk(repo, randomBytes(100 * 64 * 1024)); // 100 distinct chunk ids: a manifest of several KB
    const a1 = await repo.saveManifest(point('a', '2026-01-01T00:00:00.000Z', disk));
    const a2 = await repo.saveManifest(point('a', '2026-01-02T00:00:00.000Z', disk));
    const b1 = await repo.saveManifest(point('b', '2026-01-03T00:00:00.000Z', disk));
    await repo.close();
    for (const id of [a1, a2, b1]) {
      const s = readFileSync(join(path, 'points', id));
      assert.ok(s.length < 1024, `summary of ${id} is small (${s.length} bytes)`);
      assert.ok(readFileSync(join(path, 'manifests', id)).length > 4 * s.length, 'the manifest, with its chunk list, is several times larger');
    }
    // Damage b's manifest: finding a's newest point must not need it (only summaries are read).
    const bm = join(path, 'manifests', b1);
    const bad = readFileSync(bm);
    bad[bad.length >> 1]! ^= 0xff;
    writeFileSync(bm, bad);
    const again = await openRepository(path, { threads: 0 });
    try {
      const found = await again.findRestorePoints({ vmName: 'a' });
      assert.deepEqual(found.map((p) => p.id), [a2, a1]);
      assert.equal((found[0] as { disks: { chunks?: unknown }[] }).disks[0]!.chunks, undefined, 'a summary, not the manifest');
      assert.deepEqual((await again.loadManifest(a2)).disks[0]!.chunks, disk.chunks);
    } finally {
      await again.close();
    }
  });

  it('a point without its summary is listed from its manifest, a damaged summary too; an orphan summary is not listed and GC removes it', async () => {
    const path = join(dir, 'repo');
    const repo = await initRepository(path, { chunkSize: 64 * 1024 });
    const disk = await storeDisk(repo, Buffer.from('x'.repeat(100_000)));
    const ids = [];
    for (const [i, name] of ['a', 'b', 'c'].entries()) ids.push(await repo.saveManifest(point(name, `2026-02-0${i + 1}T00:00:00.000Z`, disk)));
    await repo.close();
    unlinkSync(join(path, 'points', ids[0]!)); // writer killed between manifest and summary
    writeFileSync(join(path, 'points', ids[1]!), Buffer.from([1, 2, 3])); // damaged summary
    unlinkSync(join(path, 'manifests', ids[2]!)); // removal killed between manifest and summary
    const again = await openRepository(path, { threads: 0 });
    try {
      assert.deepEqual((await again.findRestorePoints()).map((p) => p.vm.name).sort(), ['a', 'b']);
    } finally {
      await again.close();
    }
    await collectGarbage({}, { repository: path });
    assert.equal(existsSync(join(path, 'points', ids[2]!)), false, 'GC removed the orphan summary');
    assert.equal(existsSync(join(path, 'points', ids[1]!)), true);
  });
});
