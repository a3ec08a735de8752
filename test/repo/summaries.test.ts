import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { backupVMs } from '../../core/api/backup.ts';
import { collectGarbage } from '../../core/api/retention.ts';
import { createSampleVM } from '../../core/api/vm.ts';
import { initRepository, openRepository } from '../../core/repo/local.ts';
import { makeManifest, storeDisk } from '../../core/repo/testing.ts';
import type { Repository } from '../../core/repo/repository.ts';
import sinon from 'sinon';

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

  describe('summary sets (points/set-…)', () => {
    const sets = (path: string) => readdirSync(join(path, 'points')).filter((n) => n.startsWith('set-')).sort();
    /** The summaries a read loads, by kind of object: one point's summary, or a set. */
    const loadsOf = async (repo: Repository, read: () => Promise<unknown>) => {
      const spy = sinon.spy(repo.backend, 'load');
      try {
        await read();
        const names = spy.getCalls().map((c) => c.args[1]).filter((h) => h.type === 'points').map((h) => h.name);
        return { summaries: names.filter((n) => !n.startsWith('set-')).length, sets: names.filter((n) => n.startsWith('set-')).length };
      } finally {
        spy.restore();
      }
    };
    const addPoints = async (repo: Repository, disk: Awaited<ReturnType<typeof storeDisk>>, n: number, from: number) => {
      const ids: string[] = [];
      for (let i = 0; i < n; i++) ids.push(await repo.saveManifest(point(`vm${(from + i) % 5}`, new Date(Date.UTC(2026, 0, 1) + (from + i) * 3600_000).toISOString(), disk)));
      return ids;
    };
    const sorted = (ps: { id: string }[]) => ps.map((p) => JSON.stringify(p)).sort();
    /** A repository holding `n` points of five VMs, and the disk they list. */
    const repoWithPoints = async (n: number) => {
      const path = join(dir, 'repo');
      const repo = await initRepository(path, { chunkSize: 64 * 1024 });
      const disk = await storeDisk(repo, Buffer.from('y'.repeat(70_000)));
      await addPoints(repo, disk, n, 0);
      await repo.close();
      return { path, disk };
    };

    it('a backup\'s lookup stores what it read one by one as a set; the next handle reads the set, not each summary; listings write none', async () => {
      const { path, disk } = await repoWithPoints(40);
      const lister = await openRepository(path, { threads: 0 });
      const all = await lister.findRestorePoints();
      await lister.close();
      assert.equal(all.length, 40);
      assert.deepEqual(sets(path), [], 'a listing writes no set');
      const backup = await openRepository(path, { threads: 0 });
      assert.deepEqual(await loadsOf(backup, () => backup.findRestorePoints({ vmName: 'vm1' }, undefined, { consolidate: true })), { summaries: 40, sets: 0 });
      await backup.close();
      assert.equal(sets(path).length, 1);
      assert.match(sets(path)[0]!, /^set-\d{13}-c-[0-9a-f]{16}$/, 'complete: there was none');
      const next = await openRepository(path, { threads: 0 });
      let got: { id: string }[] = [];
      assert.deepEqual(await loadsOf(next, async () => { got = await next.findRestorePoints(); }), { summaries: 0, sets: 1 });
      assert.deepEqual(sorted(got), sorted(all), 'the same summaries');
      // Fewer than SET_MIN new points read one by one: no new set.
      await addPoints(next, disk, 3, 40);
      await next.close();
      const again = await openRepository(path, { threads: 0 });
      assert.deepEqual(await loadsOf(again, () => again.findRestorePoints({}, undefined, { consolidate: true })), { summaries: 3, sets: 1 });
      await again.close();
      assert.equal(sets(path).length, 1);
    });

    it('partial sets after a complete one, a complete one past setsMax; removed points drop out; a damaged set is read around; GC removes sets before the newest complete one', async () => {
      const path = join(dir, 'repo');
      const repo = await initRepository(path, { chunkSize: 64 * 1024 });
      const disk = await storeDisk(repo, Buffer.from('z'.repeat(70_000)));
      await repo.close();
      const opts = { consolidate: true, setMin: 2, setsMax: 3 };
      let n = 0;
      const round = async (points: number) => {
        const r = await openRepository(path, { threads: 0 });
        try {
          await addPoints(r, disk, points, n);
          n += points;
          const fresh = await openRepository(path, { threads: 0 });
          try {
            return await fresh.findRestorePoints({}, undefined, opts);
          } finally {
            await fresh.close();
          }
        } finally {
          await r.close();
        }
      };
      await round(4);
      assert.deepEqual(sets(path).map((x) => x[18]), ['c']);
      await round(2);
      await round(2);
      assert.deepEqual(sets(path).map((x) => x[18]), ['c', 'p', 'p']);
      const third = await round(2); // reads the complete set and two partial ones (3 = setsMax): writes a complete one
      assert.equal(third.length, 10);
      assert.deepEqual(sets(path).map((x) => x[18]), ['c', 'p', 'p', 'c']);
      const r = await openRepository(path, { threads: 0 });
      assert.deepEqual(await loadsOf(r, () => r.findRestorePoints()), { summaries: 0, sets: 1 }, 'only the newest complete set');
      const gone = third.slice(0, 3).map((p) => p.id);
      await r.removeRestorePoints(gone);
      assert.equal((await r.findRestorePoints()).length, 7, 'removed points are not listed though the set names them');
      await r.close();
      // A damaged newest set: its points come one by one, and the same list comes out.
      const newest = join(path, 'points', sets(path).at(-1)!);
      writeFileSync(newest, Buffer.from('not a set'));
      const d = await openRepository(path, { threads: 0 });
      let listed: { id: string }[] = [];
      assert.deepEqual(await loadsOf(d, async () => { listed = await d.findRestorePoints(); }), { summaries: 7, sets: 1 });
      await d.close();
      assert.equal(listed.length, 7);
      // A backup's read does not build on the damaged set: it writes a new complete one.
      const b = await openRepository(path, { threads: 0 });
      await b.findRestorePoints({}, undefined, opts);
      await b.close();
      const after = sets(path);
      assert.deepEqual(after.map((x) => x[18]), ['c', 'p', 'p', 'c', 'c']);
      await collectGarbage({}, { repository: path });
      assert.deepEqual(sets(path), [after.at(-1)], 'GC removed every set before the newest complete one');
    });

    it('a backup writes a set when it had to read many summaries; a what-if backup writes none', async () => {
      const { path } = await repoWithPoints(40);
      const vm = join(dir, 'vms', 'sets01');
      await createSampleVM({}, { dir: vm, sizeBytes: 4 * 1024 * 1024, seed: 3 });
      const [plan] = await backupVMs({}, { repository: path, sources: [vm], whatIf: true });
      assert.equal(plan!.status, 'planned', JSON.stringify(plan));
      assert.deepEqual(sets(path), []);
      const [r] = await backupVMs({}, { repository: path, sources: [vm] });
      assert.equal(r!.status, 'success', JSON.stringify(r!.error));
      assert.equal(sets(path).length, 1);
    });

    it('in an encrypted repository a set is sealed (no VM name in clear) and reads back', async () => {
      const path = join(dir, 'repo');
      const repo = await initRepository(path, { chunkSize: 64 * 1024, password: 'pw', keyOptions: { kdf: { N: 1024, r: 8, p: 1 } } });
      const disk = await storeDisk(repo, Buffer.from('q'.repeat(70_000)));
      await addPoints(repo, disk, 3, 0);
      await repo.close();
      const w = await openRepository(path, { threads: 0, password: 'pw' });
      const all = await w.findRestorePoints({}, undefined, { consolidate: true, setMin: 2 });
      await w.close();
      const [set] = sets(path);
      assert.ok(set && !readFileSync(join(path, 'points', set)).includes(Buffer.from('vm1')), 'sealed');
      const r = await openRepository(path, { threads: 0, password: 'pw' });
      let got: { id: string }[] = [];
      assert.deepEqual(await loadsOf(r, async () => { got = await r.findRestorePoints(); }), { summaries: 0, sets: 1 });
      await r.close();
      assert.deepEqual(sorted(got), sorted(all));
    });
  });
});
