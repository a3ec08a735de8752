// verify --repair: damaged chunks leave the index, the VMs whose points name them scan at
// their next backup, which stores the bytes again under the same ids, so every point, the
// older ones too, verifies clean and restores identical again. Without repair, content
// addressing makes damage contagious: a tracked incremental reuses the damaged id.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { backupVMs } from '../../core/api/backup.ts';
import { getRepositoryStats, removeRestorePoints } from '../../core/api/repository.ts';
import { restoreVM } from '../../core/api/restore.ts';
import { collectGarbage } from '../../core/api/retention.ts';
import { verifyRepository, verifyRepositoryIn } from '../../core/api/verify.ts';
import { createSampleVM } from '../../core/api/vm.ts';
import { isHvError } from '../../core/errors.ts';
import { guestWrite } from '../../core/hosts/local/guest.ts';
import { diskWindows, initRepository, openRepository } from '../../core/repo/index.ts';
import { REPAIR_RECORD_VERSION } from '../../core/repo/repair-records.ts';
import { chunkFileRange } from '../../core/repo/testing.ts';
import { ForwardingBackend } from '../../core/repo/backend-forwarding.ts';
import { LocalBackend } from '../../core/repo/backend-local.ts';
import type { Handle, LoadOptions, SaveData, SaveOptions } from '../../core/repo/backend.ts';
import { Repository } from '../../core/repo/repository.ts';
import { HvError } from '../../core/errors.ts';
import { damageChunk, MiB, newRepo, pointRecorder, qemuImg, scratch, type Scratch } from './testing.ts';


/** Reads of one pack range fail as a share's I/O error would (ranged loads only: no readers). */
class FailingReads extends ForwardingBackend {
  failing: { pack: string; at: number } | undefined;
  constructor(inner: LocalBackend) {
    super(inner);
    (this as { openReader?: unknown }).openReader = undefined;
  }

  override load(signal: AbortSignal | undefined, h: Handle, opts?: LoadOptions): Promise<Buffer> {
    const f = this.failing;
    if (f && h.type === 'packs' && h.name === f.pack && opts?.offset !== undefined && opts.offset <= f.at && f.at < opts.offset + (opts.length ?? Infinity)) {
      return Promise.reject(new HvError('ERR_IO', `read <packs/${h.name}>: EIO: i/o error`, { target: h.name }));
    }
    return super.load(signal, h, opts);
  }
}

/** A process killed just before it stores a repair record. */
class NoRecords extends ForwardingBackend {
  override save(signal: AbortSignal | undefined, h: Handle, data: SaveData, opts?: SaveOptions): Promise<void> {
    if (h.type === 'repairs') return Promise.reject(new Error('killed here'));
    return super.save(signal, h, data, opts);
  }
}

describe('verify --repair: damaged chunks are stored again by the next backup', function () {
  this.timeout(180_000);
  let s: Scratch;
  const ctx = {};

  beforeEach(() => { s = scratch('hvb-repair-'); });
  afterEach(() => s.cleanup());

  /** A VM with a full point and a tracked incremental, each with a copy of the disk as it saw it. */
  async function twoPoints(seed: number) {
    const repo = await newRepo(s.path('repo'));
    const vmDir = s.path('vms', `vm${seed}`);
    const { disk } = await createSampleVM(ctx, { dir: vmDir, sizeBytes: 16 * MiB, seed });
    const { points, backUp } = pointRecorder(ctx, repo, vmDir, disk, s);
    assert.equal((await backUp('p0')).method, 'full');
    await guestWrite(vmDir, [{ offset: 4096, data: Buffer.alloc(4096, 0x71) }]);
    assert.equal((await backUp('p1')).method, 'changed-blocks');
    return { repo, vmDir, disk, points, backUp };
  }

  /** The chunk of a data slice far from the guest's writes (slice 0), which both points name. */
  async function sharedDataChunk(repo: string, pointId: string): Promise<string> {
    const r = await openRepository(repo, { threads: 0 });
    try {
      const m = await r.loadManifest(pointId);
      for await (const w of diskWindows(r, m.id, m.disks[0]!)) {
        const j = w.refs.findIndex((x, k) => typeof x === 'string' && w.first + k > 8);
        if (j >= 0) return w.refs[j] as string;
      }
    } finally {
      await r.close();
    }
    throw new Error('no data slice');
  }

  const damage = damageChunk;

  /** The file (pack) that holds chunk `id`. */
  async function fileOf(repo: string, id: string): Promise<string> {
    const r = await openRepository(repo, { threads: 0 });
    try {
      return (await chunkFileRange(r, id)).file;
    } finally {
      await r.close();
    }
  }

  async function indexHas(repo: string, id: string): Promise<boolean> {
    const r = await openRepository(repo, { threads: 0 });
    try {
      return (await r.hasChunks([id])).has(id);
    } finally {
      await r.close();
    }
  }

  async function assertAllRestore(repo: string, points: { id: string; expected: string }[]): Promise<void> {
    for (const [i, p] of points.entries()) {
      const res = await restoreVM(ctx, { repository: repo, point: p.id, to: s.path(`restore-${i}`) });
      const cmp = qemuImg('compare', '-f', 'vhdx', '-F', 'vhdx', res.disks[0]!.path, p.expected);
      assert.equal(cmp.status, 0, `point ${i}: ${cmp.out}`);
      const chk = qemuImg('check', '-f', 'vhdx', res.disks[0]!.path);
      assert.equal(chk.status, 0, `point ${i}: ${chk.out}`);
    }
  }

  const repairs = (repo: string) => (existsSync(join(repo, 'repairs')) ? readdirSync(join(repo, 'repairs'), { withFileTypes: true }).filter((e) => e.isFile()).map((e) => e.name) : []);

  it('a corrupt chunk: repair takes it out, the next backup scans and stores it again, every point heals', async () => {
    const { repo, vmDir, points, backUp } = await twoPoints(31);
    const bad = await sharedDataChunk(repo, points[1]!.id);
    await damage(repo, bad);
    const before = await verifyRepository(ctx, { repository: repo });
    assert.equal(before.ok, false);
    assert.deepEqual(before.problems.find((p) => p.chunk === bad)?.points.sort(), points.map((p) => p.id).sort());

    const fixed = await verifyRepository(ctx, { repository: repo, repair: true });
    assert.equal(fixed.ok, false, 'the report is what verify found');
    assert.equal(fixed.repair?.chunksRemoved, 1);
    assert.equal(fixed.repair?.packsRewritten, 1, 'the pack is rewritten without the bad blob');
    assert.deepEqual(fixed.repair?.pointsToRescan, points.map((p) => p.id).sort());
    assert.equal(await indexHas(repo, bad), false);
    assert.equal(repairs(repo).length, 1);
    assert.deepEqual((await getRepositoryStats(ctx, { path: repo })).vmsToRescan, ['vm31'], 'repo stats says which VMs scan next');
    const still = await verifyRepository(ctx, { repository: repo });
    assert.ok(still.problems.some((p) => p.chunk === bad && p.problem.includes('missing')), JSON.stringify(still.problems));

    // The guest writes elsewhere: a tracked incremental would reuse the bad id; this one scans,
    // and says so beforehand.
    await guestWrite(vmDir, [{ offset: 8192, data: Buffer.alloc(4096, 0x72) }]);
    const [plan] = await backupVMs(ctx, { repository: repo, sources: [vmDir], whatIf: true });
    assert.equal(plan!.method, 'scan');
    assert.match(plan!.methodReason ?? '', /repair/);
    const healing = await backUp('p2');
    assert.equal(healing.method, 'scan');
    assert.match(healing.methodReason ?? '', /repair/);
    assert.equal(await indexHas(repo, bad), true, 'the scan stored the chunk again');
    assert.deepEqual((await getRepositoryStats(ctx, { path: repo })).vmsToRescan, [], 'its newest point is whole');
    const after = await verifyRepository(ctx, { repository: repo });
    assert.ok(after.ok, JSON.stringify(after.problems));
    await assertAllRestore(repo, points);

    // The newest point names nothing damaged: tracking again.
    await guestWrite(vmDir, [{ offset: 12288, data: Buffer.alloc(4096, 0x73) }]);
    assert.equal((await backUp('p3')).method, 'changed-blocks');

    // GC keeps the record while a point it names is left, and drops it after.
    await collectGarbage(ctx, { repository: repo });
    assert.equal(repairs(repo).length, 1);
    await removeRestorePoints(ctx, { repository: repo, ids: [points[0]!.id, points[1]!.id] });
    await collectGarbage(ctx, { repository: repo });
    assert.equal(repairs(repo).length, 0);
    assert.ok((await verifyRepository(ctx, { repository: repo })).ok);
  });

  it('without repair, a tracked incremental names the damaged chunk again (why repair exists)', async () => {
    const { repo, vmDir, points, backUp } = await twoPoints(32);
    const bad = await sharedDataChunk(repo, points[1]!.id);
    await damage(repo, bad);
    await guestWrite(vmDir, [{ offset: 8192, data: Buffer.alloc(4096, 0x72) }]);
    const next = await backUp('p2');
    assert.equal(next.method, 'changed-blocks');
    const report = await verifyRepository(ctx, { repository: repo });
    assert.deepEqual(report.problems.find((p) => p.chunk === bad)?.points.sort(), points.map((p) => p.id).sort());
  });

  it('a repair cut off before its record: the next repair finds the same points broken and records them', async () => {
    const { repo, vmDir, points, backUp } = await twoPoints(38);
    const bad = await sharedDataChunk(repo, points[1]!.id);
    await damage(repo, bad);
    const handle = await Repository.open(new NoRecords(new LocalBackend(repo)), { threads: 0 });
    try {
      await assert.rejects(verifyRepositoryIn(ctx, handle, { repair: true }), /killed here/);
    } finally {
      await handle.close();
    }
    assert.equal(await indexHas(repo, bad), false, 'the chunk left the index');
    assert.equal(repairs(repo).length, 0, 'and no record says so');
    const again = await verifyRepository(ctx, { repository: repo, repair: true });
    assert.deepEqual(again.repair?.pointsToRescan, points.map((p) => p.id).sort());
    assert.equal(repairs(repo).length, 1);
    await guestWrite(vmDir, [{ offset: 8192, data: Buffer.alloc(4096, 0x72) }]);
    assert.equal((await backUp('p2')).method, 'scan');
    assert.ok((await verifyRepository(ctx, { repository: repo })).ok);
  });

  it('a pack that is gone: its chunks leave the index, the next backup stores what the disk still holds, and only what it no longer holds stays broken', async () => {
    const { repo, points, backUp } = await twoPoints(33);
    const bad = await sharedDataChunk(repo, points[1]!.id);
    const pack = await fileOf(repo, bad);
    rmSync(pack);
    const fixed = await verifyRepository(ctx, { repository: repo, repair: true });
    assert.ok((fixed.repair?.chunksRemoved ?? 0) >= 1, JSON.stringify(fixed.repair));
    assert.ok(fixed.repair!.pointsToRescan.includes(points[1]!.id));
    // The scan stores every chunk of the disk as it is. What no disk holds any more stays
    // missing: slice 0 as the full point saw it (before the guest's write at 4096), which p0
    // names whole and p1's split slice 0 names for its unchanged pieces. The new point is whole.
    const removed = fixed.repair!.chunksRemoved;
    const healing = await backUp('p2');
    assert.equal(healing.method, 'scan');
    const after = await verifyRepository(ctx, { repository: repo });
    const p2 = points[2]!.id;
    assert.ok(after.problems.every((p) => !p.points.includes(p2)), JSON.stringify(after.problems));
    assert.ok(after.problems.length < removed, `${after.problems.length} of ${removed} chunks still missing`);
    assert.ok((await verifyRepository(ctx, { repository: repo, pointId: p2 })).ok);
    await assertAllRestore(repo, points.slice(2));
  });

  it('a chunk that cannot be read (an I/O error, not damage) stops the repair before it changes anything', async () => {
    const { repo, points } = await twoPoints(37);
    const bad = await sharedDataChunk(repo, points[1]!.id);
    const index = readdirSync(join(repo, 'index')).sort();
    const handle = await Repository.open(new FailingReads(new LocalBackend(repo)), { threads: 0 });
    try {
      const where = await handle.locateChunk(bad);
      (handle.backend as FailingReads).failing = { pack: where.handle.name, at: where.offset };
      await assert.rejects(verifyRepositoryIn(ctx, handle, { repair: true }), (err: unknown) => isHvError(err, 'ERR_IO') && /repair stopped/.test((err as Error).message));
    } finally {
      await handle.close();
    }
    assert.deepEqual(readdirSync(join(repo, 'index')).sort(), index, 'the index is as it was');
    assert.equal(await indexHas(repo, bad), true);
    assert.equal(repairs(repo).length, 0);
    assert.ok((await verifyRepository(ctx, { repository: repo })).ok, 'nothing was damaged');
  });

  it('an index object that does not load: repair lists its packs again from their own indexes, nothing is lost', async () => {
    const { repo, points } = await twoPoints(34);
    const objects = readdirSync(join(repo, 'index'));
    assert.ok(objects.length > 0);
    writeFileSync(join(repo, 'index', objects[0]!), Buffer.from('not an index object'));
    assert.equal((await verifyRepository(ctx, { repository: repo })).ok, false);
    const fixed = await verifyRepository(ctx, { repository: repo, repair: true });
    assert.equal(fixed.repair?.indexObjectsRemoved, 1);
    assert.ok(fixed.repair!.packsRescued >= 1);
    assert.equal(fixed.repair?.chunksRemoved, 0, 'every chunk was still in its pack');
    assert.deepEqual(fixed.repair?.pointsToRescan, []);
    assert.equal(repairs(repo).length, 0, 'no record: no VM needs to scan');
    assert.ok((await verifyRepository(ctx, { repository: repo })).ok);
    await assertAllRestore(repo, points);
  });

  it('a repair record that does not load makes every VM scan until a repair replaces it', async () => {
    const { repo, vmDir, backUp } = await twoPoints(35);
    mkdirSync(join(repo, 'repairs'), { recursive: true });
    writeFileSync(join(repo, 'repairs', 'f'.repeat(64)), Buffer.from('garbage'));
    await guestWrite(vmDir, [{ offset: 8192, data: Buffer.alloc(4096, 0x72) }]);
    const scanned = await backUp('p2');
    assert.equal(scanned.method, 'scan');
    assert.match(scanned.methodReason ?? '', /does not load/);
    // Only a check of every chunk may drop it: a part of them says nothing of the rest.
    await verifyRepository(ctx, { repository: repo, repair: true, readSubset: { part: 1, of: 2 } });
    assert.equal(repairs(repo).length, 1);
    const fixed = await verifyRepository(ctx, { repository: repo, repair: true });
    assert.ok(fixed.ok);
    assert.deepEqual(repairs(repo), []);
    await guestWrite(vmDir, [{ offset: 12288, data: Buffer.alloc(4096, 0x73) }]);
    assert.equal((await backUp('p3')).method, 'changed-blocks');
  });

  it('a record in an encrypted repository is sealed: no plain ids on disk, and it opens only with the key', async () => {
    const path = s.path('enc');
    const password = 'repair-pw';
    const made = await initRepository(path, { password, keyOptions: { kdf: { N: 2 ** 12, r: 8, p: 1 } } });
    const chunk = 'ab'.repeat(32), point = 'cd'.repeat(32);
    try {
      await made.saveRepairRecord({ version: REPAIR_RECORD_VERSION, repairedAt: '2026-11-26T00:00:00.000Z', chunks: [chunk], points: [point] });
    } finally {
      await made.close();
    }
    const [name] = repairs(path);
    const stored = readFileSync(join(path, 'repairs', name!));
    assert.ok(!stored.includes(Buffer.from(point)) && !stored.includes(Buffer.from(chunk)), 'ids are not in the clear');
    const opened = await openRepository(path, { password, threads: 0 });
    try {
      const set = await opened.pointsToRescan();
      assert.deepEqual([...set.points.keys()], [point]);
      assert.deepEqual(set.unreadable, []);
      // Moved under another name, it no longer authenticates: it does not load.
      renameSync(join(path, 'repairs', name!), join(path, 'repairs', 'e'.repeat(64)));
      const moved = await opened.pointsToRescan();
      assert.equal(moved.points.size, 0);
      assert.equal(moved.unreadable.length, 1);
    } finally {
      await opened.close();
    }
  });

  it('verify --quick finds lost and cut packs from metadata alone, and --quick --repair mends like a full one', async () => {
    const { repo, points, backUp } = await twoPoints(39);
    const clean = await verifyRepository(ctx, { repository: repo, quick: true });
    assert.ok(clean.ok, JSON.stringify(clean.problems));
    assert.equal(clean.bytesChecked, 0, 'no data read');
    assert.ok(clean.chunksChecked > 0);
    // Rot inside a blob is not what quick looks for.
    const rotten = await sharedDataChunk(repo, points[1]!.id);
    await damage(repo, rotten);
    assert.ok((await verifyRepository(ctx, { repository: repo, quick: true })).ok);
    await damage(repo, rotten); // the same bit back
    // A pack cut short: the chunks past its new end are missing, the ones before are fine.
    const pack = await fileOf(repo, rotten);
    const cut = statSync(pack).size - 4096;
    truncateSync(pack, cut);
    const r = await verifyRepository(ctx, { repository: repo, quick: true });
    assert.ok(r.problems.length > 0 && r.problems.every((p) => /cut short/.test(p.problem)), JSON.stringify(r.problems));
    const full = await verifyRepository(ctx, { repository: repo });
    assert.deepEqual(full.problems.map((p) => p.chunk).sort(), r.problems.map((p) => p.chunk).sort(), 'the same chunks a full verify finds');
    rmSync(pack);
    const gone = await verifyRepository(ctx, { repository: repo, quick: true });
    assert.ok(gone.problems.length > r.problems.length && gone.problems.every((p) => /does not exist/.test(p.problem)), JSON.stringify(gone.problems));
    const fixed = await verifyRepository(ctx, { repository: repo, quick: true, repair: true });
    assert.equal(fixed.repair?.chunksRemoved, gone.problems.length);
    const again = await verifyRepository(ctx, { repository: repo, quick: true });
    assert.equal(again.problems.length, gone.problems.length, 'still missing, until a backup stores them again');
    assert.ok(again.problems.every((p) => /the index does not list it/.test(p.problem)), JSON.stringify(again.problems));
    assert.equal((await backUp('p2')).method, 'scan');
    assert.ok((await verifyRepository(ctx, { repository: repo, pointId: points[2]!.id })).ok);
  });

  it('verify --read-subset n/m: the m parts read every data chunk exactly once, and a damaged one is found by its part only', async () => {
    const { repo, points } = await twoPoints(40);
    const full = await verifyRepository(ctx, { repository: repo });
    const segments = full.chunksChecked - (await verifyRepository(ctx, { repository: repo, readSubset: { part: 1, of: 1 } })).chunksChecked;
    assert.equal(segments, 0, '1/1 is everything');
    const parts = [];
    for (let part = 1; part <= 3; part++) parts.push(await verifyRepository(ctx, { repository: repo, readSubset: { part, of: 3 } }));
    assert.equal(parts.reduce((a, r) => a + r.bytesChecked, 0), full.bytesChecked, 'the parts read the bytes of a full check, once');
    assert.ok(parts.every((r) => r.bytesChecked > 0 && r.bytesChecked < full.bytesChecked));
    const bad = await sharedDataChunk(repo, points[1]!.id);
    await damage(repo, bad);
    const mine = parseInt(bad.slice(0, 8), 16) % 3 + 1;
    for (let part = 1; part <= 3; part++) {
      const r = await verifyRepository(ctx, { repository: repo, readSubset: { part, of: 3 } });
      assert.equal(r.problems.some((p) => p.chunk === bad), part === mine, `part ${part}`);
    }
    await assert.rejects(verifyRepository(ctx, { repository: repo, readSubset: { part: 4, of: 3 } }), (err: unknown) => isHvError(err, 'ERR_INVALID_ARGUMENT'));
    await assert.rejects(verifyRepository(ctx, { repository: repo, quick: true, readSubset: { part: 1, of: 3 } }), (err: unknown) => isHvError(err, 'ERR_INVALID_ARGUMENT'));
  });

  it('repair covers the whole repository: limited to one point it is refused, and a clean one changes nothing', async () => {
    const { repo, points } = await twoPoints(36);
    await assert.rejects(verifyRepository(ctx, { repository: repo, pointId: points[0]!.id, repair: true }), (err: unknown) => isHvError(err, 'ERR_INVALID_ARGUMENT'));
    const packs = readdirSync(join(repo, 'packs'), { recursive: true }).sort();
    const r = await verifyRepository(ctx, { repository: repo, repair: true });
    assert.ok(r.ok);
    assert.deepEqual(r.repair, { indexObjectsRemoved: 0, packsRescued: 0, chunksRemoved: 0, packsRewritten: 0, packsRemoved: 0, pointsToRescan: [] });
    assert.deepEqual(readdirSync(join(repo, 'packs'), { recursive: true }).sort(), packs);
  });
});

