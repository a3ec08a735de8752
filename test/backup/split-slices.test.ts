// Split slices: a tracked incremental stores only the changed 64 KiB pieces of a slice and
// points the others into the chunks that already hold them. Every point restores
// byte-identical (engine, documented Python, media and their README), splitting a split
// slice again never chains references, a scan keeps the pieces it finds unchanged (and stores
// anew those whose chunk does not load; a disk's short last slice too) and stores only the
// changed pieces of a slice that was whole, GC keeps a whole chunk that only pieces still name,
// and verify names the points a broken piece chunk breaks.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { exportArchive, restoreFromArchive } from '../../core/api/archive.ts';
import { runBackupJob } from '../../core/backup/engine.ts';
import { getHost } from '../../core/hosts/index.ts';
import { removeRestorePoints } from '../../core/api/repository.ts';
import { restoreVM } from '../../core/api/restore.ts';
import { assembleSlice, MAX_KEPT_PIECE_CHUNKS, windowChunkPlan } from '../../core/restore/disk-restore.ts';
import { collectGarbage } from '../../core/api/retention.ts';
import { verifyRepository } from '../../core/api/verify.ts';
import { createSampleVM } from '../../core/api/vm.ts';
import { isHvError } from '../../core/errors.ts';
import { guestWrite } from '../../core/hosts/local/guest.ts';
import { backupVMs } from '../../core/api/backup.ts';
import { attachChangeTracking } from '../../core/tracking/index.ts';
import { openDisk } from '../../core/vhdx/index.ts';
import { openRepository } from '../../core/repo/index.ts';
import { PIECE_SIZE } from '../../core/repo/manifest-segments.ts';
import type { SliceRef, SplitSlice } from '../../core/repo/manifest-types.ts';
import { flipChunkBit } from '../../core/repo/testing.ts';
import { docBlock } from '../support/format-doc.ts';
import { diskSlices, MiB, newRepo, pointRecorder, qemuImg, scratch, type Scratch } from './testing.ts';

const CS = 256 * 1024;
const P = PIECE_SIZE;

describe('split slices: tracked incrementals store only the changed 64 KiB pieces', function () {
  this.timeout(180_000);
  let s: Scratch;
  let repo: string;
  let vmDir: string;
  let disk: string;
  /** Restore points in order, with a copy of the disk as each one saw it. */
  const points: { id: string; expected: string }[] = [];
  const ctx = {};

  /** The disk's slices in point `id`. */
  const slicesOf = (id: string) => diskSlices(repo, id);

  const backUp = (name: string) => pointRecorder(ctx, repo, vmDir, disk, s, points).backUp(name);

  function assertRestored(path: string, expected: string, what: string): void {
    const cmp = qemuImg('compare', '-f', 'vhdx', '-F', 'vhdx', path, expected);
    assert.equal(cmp.status, 0, `${what}: ${cmp.out}`);
    const chk = qemuImg('check', '-f', 'vhdx', path);
    assert.equal(chk.status, 0, `${what}: ${chk.out}`);
  }

  function toRaw(vhdx: string): Buffer {
    const raw = `${vhdx}.raw`;
    const q = qemuImg('convert', '-f', 'vhdx', '-O', 'raw', vhdx, raw);
    assert.equal(q.status, 0, q.out);
    return readFileSync(raw);
  }

  const split = (r: SliceRef | undefined): SplitSlice => {
    assert.ok(typeof r === 'object' && r !== null, `expected a split slice, got ${JSON.stringify(r)}`);
    return r;
  };

  // Slices of the full backup that hold data, and one that is all zeros: where the rounds write.
  let A: number, B: number, C: number, D: number, Z: number;
  const E1 = 120, E2 = 124;
  let full: SliceRef[];

  before(async () => {
    s = scratch('hvb-split-');
    repo = await newRepo(s.path('repo'));
    vmDir = s.path('vms', 'web01');
    disk = (await createSampleVM(ctx, { dir: vmDir, sizeBytes: 32 * MiB, seed: 11 })).disk;
  });
  after(() => s.cleanup());

  /**
   * The four points every test below builds on (full, then three rounds of guest writes),
   * with what each round must have stored checked as it goes. Made once, by whichever test
   * runs first, so that any of them also runs alone (through a grep).
   */
  let building: Promise<void> | undefined;
  const buildPoints = () => (building ??= makePoints());
  async function makePoints(): Promise<void> {
    // Two equal slices (one chunk) whose splits later share it: restore decodes it once for both.
    const same = randomBytes(CS);
    await guestWrite(vmDir, [{ offset: E1 * CS, data: same }, { offset: E2 * CS, data: same }]);
    const r0 = await backUp('p0');
    assert.equal(r0.method, 'full');
    full = await slicesOf(r0.pointId!);
    const data = full.flatMap((r, i) => (typeof r === 'string' ? [i] : []));
    [A, B, C, D] = [data[2]!, data[5]!, data[9]!, data[14]!];
    Z = full.findIndex((r, i) => r === null && i > 8);
    assert.ok(A !== undefined && D !== undefined && Z > 0, 'the sample disk has data slices and a zero slice');

    // Round 1: 4 KiB inside piece 1 of A, 64 KiB = piece 3 of B, 8 KiB across pieces 0 and 1 of C, 4 KiB into zero slice Z.
    await guestWrite(vmDir, [
      { offset: A * CS + P + 4096, data: Buffer.alloc(4096, 0xa1) },
      { offset: B * CS + 3 * P, data: Buffer.alloc(P, 0xb1) },
      { offset: C * CS + P - 4096, data: Buffer.alloc(8192, 0xc1) },
      { offset: Z * CS + 2 * P, data: Buffer.alloc(4096, 0x21) },
      { offset: E1 * CS, data: Buffer.alloc(4096, 0xe1) },
      { offset: E2 * CS + 2 * P, data: Buffer.alloc(4096, 0xe2) },
    ]);
    const r1 = await backUp('p1');
    assert.equal(r1.method, 'changed-blocks', r1.methodReason);
    assert.equal(r1.readBytes, 7 * P, 'only the seven changed pieces are read');
    const s1 = await slicesOf(r1.pointId!);
    const a1 = split(s1[A]);
    assert.deepEqual(a1.pieces.map((p) => p?.offset), [0, 0, 2 * P, 3 * P]);
    assert.deepEqual([0, 2, 3].map((q) => a1.pieces[q]!.id), [full[A], full[A], full[A]], 'unchanged pieces point into the full point\'s chunk');
    assert.notEqual(a1.pieces[1]!.id, full[A]);
    assert.equal(split(s1[C]).pieces.filter((p) => p?.id === full[C]).length, 2);
    assert.deepEqual(split(s1[Z]).pieces.map((p) => p === null), [true, true, false, true], 'a zero slice splits into one piece');
    assert.equal(s1[D], full[D], 'an unchanged slice keeps its chunk');
    assert.equal(full[E1], full[E2]);
    const plan = windowChunkPlan(s1);
    assert.equal(plan.ids.filter((id) => id === full[E1]).length, 1, 'the chunk both split slices point into is read once');
    assert.deepEqual(plan.pieces.get(E2)!.find((p) => p.id === full[E1]), { id: full[E1], fromStream: false, keep: false });

    // Round 2: another piece of the already split A, zeros over piece 2 of D.
    await guestWrite(vmDir, [
      { offset: A * CS + 3 * P, data: Buffer.alloc(P, 0xa2) },
      { offset: D * CS + 2 * P, data: Buffer.alloc(P) },
    ]);
    const r2 = await backUp('p2');
    assert.equal(r2.method, 'changed-blocks', r2.methodReason);
    const s2 = await slicesOf(r2.pointId!);
    const a2 = split(s2[A]);
    assert.deepEqual(a2.pieces.slice(0, 3), a1.pieces.slice(0, 3), 'the unchanged pieces are the previous point\'s pieces as they were: never a chain');
    assert.ok(![full[A], a1.pieces[1]!.id].includes(a2.pieces[3]!.id) && a2.pieces[3]!.offset === 0);
    assert.deepEqual(split(s2[D]).pieces, [{ id: full[D], offset: 0 }, { id: full[D], offset: P }, null, { id: full[D], offset: 3 * P }], 'a piece written with zeros is null');
    assert.deepEqual(s2[C], s1[C]);

    // Round 3: every piece of B changes: a whole slice again.
    await guestWrite(vmDir, [{ offset: B * CS, data: Buffer.alloc(CS, 0xb3) }]);
    const r3 = await backUp('p3');
    const s3 = await slicesOf(r3.pointId!);
    assert.equal(typeof s3[B], 'string');
    assert.notEqual(s3[B], full[B]);
    assert.equal(r3.readBytes, CS);
  }

  it('several tracked incrementals with scattered sub-chunk writes each restore identical, reading only the changed pieces', async () => {
    await buildPoints();
    for (const [i, p] of points.entries()) {
      const res = await restoreVM(ctx, { repository: repo, point: p.id, to: s.path(`restore-${i}`) });
      assertRestored(res.disks[0]!.path, p.expected, `point ${i}`);
    }
  });

  it('the documented by-hand restore follows pieces', async () => {
    await buildPoints();
    const m = await (async () => {
      const r = await openRepository(repo, { threads: 0 });
      try { return await r.loadManifest(points[2]!.id); } finally { await r.close(); }
    })();
    writeFileSync(s.path('restore.py'), docBlock('Restoring a disk by hand', 'python'));
    const out = s.path('by-hand.raw');
    const py = spawnSync('python3', [s.path('restore.py'), repo, m.id, m.disks[0]!.key, out], { encoding: 'utf8' });
    assert.equal(py.status, 0, py.stderr);
    assert.ok(readFileSync(out).equals(toRaw(points[2]!.expected)), 'by-hand restore of a point with split slices differs');
  });

  it('archive export and media restore of a split point, also by hand with the media README', async () => {
    await buildPoints();
    const last = points[3]!;
    const mediaDir = s.path('media');
    await exportArchive(ctx, { repository: repo, pool: 'split', mediaDir, capacity: '64M', point: last.id });
    const media = spawnSync('sh', ['-c', `ls ${mediaDir}/*.tar`], { encoding: 'utf8' }).stdout.trim().split('\n');
    const res = await restoreFromArchive(ctx, { media, vmName: 'web01', point: last.id, to: s.path('from-media') });
    assertRestored(res.disks[0]!.path, last.expected, 'media restore');

    const out = s.path('media-by-hand');
    mkdirSync(out);
    for (const f of media) assert.equal(spawnSync('tar', ['-xf', f, '-C', out]).status, 0);
    const lines = readFileSync(join(out, 'README.txt'), 'utf8').split('\n');
    const py = lines.slice(lines.findIndex((l) => l.includes('import json')), lines.findLastIndex((l) => l.includes('out.write(')) + 1).map((l) => l.slice(7)).join('\n');
    writeFileSync(join(out, 'restore.py'), py);
    const r = spawnSync('python3', ['restore.py', `manifests/${last.id}`], { cwd: out, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.ok(readFileSync(join(out, 'web01.vhdx.raw')).equals(toRaw(last.expected)), 'README by-hand restore differs');
  });

  it('GC after removing the point that stored a chunk whole keeps it while pieces name it', async () => {
    await buildPoints();
    const [p0] = points;
    await removeRestorePoints(ctx, { repository: repo, ids: [p0!.id] });
    const gc = await collectGarbage(ctx, { repository: repo });
    assert.ok(gc.chunksRemoved > 0, 'the full point\'s own segment and config chunks went');
    const r = await openRepository(repo, { threads: 0 });
    try {
      const held = await r.hasChunks([full[A] as string, full[D] as string, full[B] as string], { refresh: true });
      // p1 and p2 name B's, p1..p3 A's and p2 D's old chunk through pieces alone.
      assert.deepEqual([full[A], full[B], full[D]].map((id) => held.has(id as string)), [true, true, true], 'whole chunks only pieces name are kept');
    } finally {
      await r.close();
    }
    for (const [i, p] of points.entries()) {
      if (i === 0) continue;
      const res = await restoreVM(ctx, { repository: repo, point: p.id, to: s.path(`after-gc-${i}`) });
      assertRestored(res.disks[0]!.path, p.expected, `point ${i} after gc`);
    }
    assert.ok((await verifyRepository(ctx, { repository: repo })).ok);
  });

  it('verify reports a corrupt chunk that only pieces name, with the points it breaks', async () => {
    await buildPoints();
    const s1 = await slicesOf(points[1]!.id);
    const piece = split(s1[A]).pieces[1]!.id; // new in p1; p2 and p3 keep the piece
    const r = await openRepository(repo, { threads: 0 });
    try {
      await flipChunkBit(r, piece);
    } finally {
      await r.close();
    }
    const report = await verifyRepository(ctx, { repository: repo });
    assert.equal(report.ok, false);
    const problem = report.problems.find((p) => p.chunk === piece);
    assert.ok(problem, JSON.stringify(report.problems));
    assert.deepEqual([...problem.points].sort(), [points[1]!.id, points[2]!.id, points[3]!.id].sort());
    await assert.rejects(restoreVM(ctx, { repository: repo, point: points[2]!.id, to: s.path('broken') }), (err: unknown) => isHvError(err, 'ERR_CORRUPT') && (err as Error).message.includes(piece));
    const again = await openRepository(repo, { threads: 0 });
    try {
      await flipChunkBit(again, piece); // the same bit back
    } finally {
      await again.close();
    }
    assert.ok((await verifyRepository(ctx, { repository: repo })).ok);
  });

  it('a scan after split points keeps the unchanged pieces where they are and restores identical; tracking then splits again', async () => {
    await buildPoints();
    const prev = await slicesOf(points.at(-1)!.id);
    // C is split (pieces 0 and 1 changed in round 1); the write outside tracking changes its piece 2.
    assert.equal(split(prev[C]).pieces[2]!.id, full[C]);
    // Every chunk the points so far name (a test above may have removed the full point).
    const ids = (refs: SliceRef[]) => refs.flatMap((r) => (r === null ? [] : typeof r === 'string' ? [r] : r.pieces.flatMap((p) => (p ? [p.id] : []))));
    const before = new Set([full, ...(await Promise.all(points.map((p) => slicesOf(p.id).catch((): SliceRef[] => []))))].flatMap(ids));
    const q = spawnSync('qemu-io', ['-f', 'vhdx', '-c', `write -P 0x5c ${C * CS + 2 * P} 4k`, disk], { encoding: 'utf8' });
    assert.equal(q.status, 0, q.stderr);
    const scan = await backUp('scan');
    assert.equal(scan.method, 'scan');
    const ss = await slicesOf(scan.pointId!);
    const c = split(ss[C]).pieces;
    assert.deepEqual([c[0], c[1], c[3]], [0, 1, 3].map((k) => split(prev[C]).pieces[k]), 'the unchanged pieces of C point where they did');
    assert.ok(c[2]!.offset === 0 && ![full[C], ...split(prev[C]).pieces.map((p) => p?.id)].includes(c[2]!.id), 'the changed piece is a chunk of its own');
    ss.forEach((r, i) => { if (i !== C) assert.deepEqual(r, prev[i], `slice ${i} is as in the point before`); });
    // Only that piece is new: the split slices were not stored again whole.
    assert.deepEqual(ids(ss).filter((id) => !before.has(id)), [c[2]!.id]);
    const res = await restoreVM(ctx, { repository: repo, point: scan.pointId!, to: s.path('restore-scan') });
    assertRestored(res.disks[0]!.path, points.at(-1)!.expected, 'scan');

    await guestWrite(vmDir, [{ offset: A * CS + 4096, data: Buffer.alloc(4096, 0xa4) }]);
    const next = await backUp('after-scan');
    assert.equal(next.method, 'changed-blocks', next.methodReason);
    const sn = await slicesOf(next.pointId!);
    assert.notDeepEqual(split(sn[A]).pieces[0], split(ss[A]).pieces[0]);
    assert.deepEqual(split(sn[A]).pieces.slice(1), split(ss[A]).pieces.slice(1), 'the other pieces as the scan kept them');
    const res2 = await restoreVM(ctx, { repository: repo, point: next.pointId!, to: s.path('restore-after-scan') });
    assertRestored(res2.disks[0]!.path, points.at(-1)!.expected, 'after scan');
  });

  it('a scan stores only the changed pieces of a slice the previous point held whole, and a slice changed throughout whole', async () => {
    await buildPoints();
    const prev = await slicesOf(points.at(-1)!.id);
    const whole = prev.flatMap((r, i) => (typeof r === 'string' && r === full[i] && i > D ? [i] : []));
    const [F, G] = [whole[3]!, whole[6]!];
    assert.ok(F !== undefined && G !== undefined, 'whole slices of the full point are left');
    const q = spawnSync('qemu-io', ['-f', 'vhdx', '-c', `write -P 0x7e ${F * CS + P + 8192} 4k`, disk], { encoding: 'utf8' });
    assert.equal(q.status, 0, q.stderr);
    const rnd = s.path('random-slice');
    writeFileSync(rnd, randomBytes(CS));
    const q2 = spawnSync('qemu-io', ['-f', 'vhdx', '-c', `write -s ${rnd} ${G * CS} ${CS}`, disk], { encoding: 'utf8' });
    assert.equal(q2.status, 0, q2.stderr);
    const scan = await backUp('scan-pieces');
    assert.equal(scan.method, 'scan');
    const ss = await slicesOf(scan.pointId!);
    const f = split(ss[F]).pieces;
    assert.deepEqual([f[0], f[2], f[3]], [0, 2, 3].map((k) => ({ id: full[F], offset: k * P })), 'the unchanged pieces point into the previous whole chunk');
    assert.ok(f[1]!.offset === 0 && f[1]!.id !== full[F], 'the changed piece is a chunk of its own');
    assert.equal(typeof ss[G], 'string', 'a slice with no piece known is stored whole');
    assert.notEqual(ss[G], full[G]);
    ss.forEach((r, i) => { if (i !== F && i !== G) assert.deepEqual(r, prev[i], `slice ${i} is as in the point before`); });
    const res = await restoreVM(ctx, { repository: repo, point: scan.pointId!, to: s.path('restore-scan-pieces') });
    assertRestored(res.disks[0]!.path, points.at(-1)!.expected, 'scan of pieces');
  });

  it('a scan whose previous point names a chunk that does not load stores those pieces anew, and the new point does not need it', async () => {
    await buildPoints();
    const base = full[E1] as string; // E1's and E2's unchanged pieces are in it
    const prev = await slicesOf(points.at(-1)!.id);
    assert.ok([E1, E2].every((i) => split(prev[i]).pieces.some((p) => p?.id === base)));
    const r = await openRepository(repo, { threads: 0 });
    try {
      await flipChunkBit(r, base);
    } finally {
      await r.close();
    }
    try {
      const q = spawnSync('qemu-io', ['-f', 'vhdx', '-c', `write -P 0x6d ${B * CS} 4k`, disk], { encoding: 'utf8' });
      assert.equal(q.status, 0, q.stderr);
      const scan = await backUp('scan-damaged');
      assert.equal(scan.status, 'success', JSON.stringify(scan.error));
      assert.equal(scan.method, 'scan');
      const ss = await slicesOf(scan.pointId!);
      for (const i of [E1, E2]) assert.ok(split(ss[i]).pieces.every((p) => p?.id !== base), `slice ${i} no longer points into the damaged chunk`);
      const report = await verifyRepository(ctx, { repository: repo });
      const problem = report.problems.find((p) => p.chunk === base);
      assert.ok(problem && !problem.points.includes(scan.pointId!), JSON.stringify(report.problems));
      const res = await restoreVM(ctx, { repository: repo, point: scan.pointId!, to: s.path('restore-scan-damaged') });
      assertRestored(res.disks[0]!.path, points.at(-1)!.expected, 'scan past a damaged chunk');
    } finally {
      const again = await openRepository(repo, { threads: 0 });
      try {
        await flipChunkBit(again, base); // the same bit back
      } finally {
        await again.close();
      }
    }
  });

  it('a bare disk of an odd size: its short last slice splits, and a scan keeps both its pieces, the short one too', async () => {
    const img = s.path('odd', 'disk.img');
    mkdirSync(s.path('odd'), { recursive: true });
    const size = 5 * MiB + 100 * 1024 + 512; // the last slice: a whole piece and one of 37,376 bytes
    writeFileSync(img, randomBytes(size));
    const r = await newRepo(s.path('odd', 'repo'));
    const back = async (method: string) => {
      const [res] = await backupVMs(ctx, { repository: r, sources: [img] });
      assert.equal(res!.method, method, res!.methodReason);
      return res!;
    };
    await back('full');
    const disk = await openDisk(img, { writable: true });
    try {
      await attachChangeTracking(disk); // as hvbackup vhdx write: a tracked write
      await disk.write(Buffer.alloc(4096, 0x11), size - 4096);
    } finally {
      await disk.close();
    }
    const tracked = await back('changed-blocks');
    const last = split((await diskSlices(r, tracked.pointId!)).at(-1));
    assert.deepEqual(last.pieces.map((p) => p?.offset), [0, 0, undefined, undefined]);
    // A write outside tracking (as any other tool's): the next backup scans.
    const buf = readFileSync(img);
    buf.fill(0x33, 4096, 8192);
    writeFileSync(img, buf);
    const scan = await back('scan');
    assert.deepEqual((await diskSlices(r, scan.pointId!)).at(-1), last, 'the short slice\'s pieces as they were');
    const res = await restoreVM(ctx, { repository: r, point: scan.pointId!, to: s.path('odd', 'out') });
    assert.ok(readFileSync(res.disks[0]!.path).equals(buf), 'restored byte-identical');
  });

  it('a repository still at format 3 gets no split slices (an HVBackup before pieces reads it)', async () => {
    const path = s.path('repo-v3');
    await newRepo(path);
    const configFile = join(path, 'config');
    writeFileSync(configFile, readFileSync(configFile, 'utf8').replace('"version": 5', '"version": 3'));
    const dir = s.path('vms', 'v3');
    await createSampleVM(ctx, { dir, sizeBytes: 8 * MiB, seed: 5 });
    const handle = await openRepository(path);
    try {
      handle.upgradeFormat = async () => false; // as if the upgrade were not done
      const host = await getHost('local');
      await runBackupJob(ctx, { repo: handle, host, sources: [dir] });
      await guestWrite(dir, [{ offset: 4096, data: Buffer.alloc(4096, 7) }]);
      const [inc] = await runBackupJob(ctx, { repo: handle, host, sources: [dir] });
      assert.equal(inc!.method, 'changed-blocks', inc!.methodReason);
      assert.equal(inc!.readBytes, CS, 'the whole slice, not its piece');
    } finally {
      await handle.close();
    }
    assert.equal(JSON.parse(readFileSync(configFile, 'utf8')).version, 3);
  });
});

describe('assembling a split slice (restore)', () => {
  it('plans each chunk split slices share once per window, kept until its last split slice, within a bound', () => {
    const sp = (...ids: string[]) => ({ pieces: ids.map((id, q) => (id ? { id, offset: q * P } : null)) });
    const plan = windowChunkPlan(['w', sp('x', 'n1', 'x', ''), 'x', null, sp('y', 'x', '', ''), sp('x', '', '', 'n2')]);
    assert.deepEqual(plan.ids, ['w', 'x', 'n1', 'x', 'y', 'n2'], 'x once for the split slices (a whole slice reads its own)');
    assert.deepEqual([...plan.pieces.keys()], [1, 4, 5]);
    assert.deepEqual(plan.pieces.get(1), [{ id: 'x', fromStream: true, keep: true }, { id: 'n1', fromStream: true, keep: false }]);
    assert.deepEqual(plan.pieces.get(4), [{ id: 'y', fromStream: true, keep: false }, { id: 'x', fromStream: false, keep: true }]);
    assert.deepEqual(plan.pieces.get(5), [{ id: 'x', fromStream: false, keep: false }, { id: 'n2', fromStream: true, keep: false }]);
    // Past the bound a shared chunk is not kept: read again where it is needed.
    const many = Array.from({ length: MAX_KEPT_PIECE_CHUNKS + 1 }, (_, i) => `c${i}`);
    const wide = windowChunkPlan([...many.map((c) => sp(c, '', '', '')), ...many.map((c) => sp('', c, '', ''))]);
    assert.equal(wide.ids.length, many.length + 1);
    assert.deepEqual(wide.pieces.get(MAX_KEPT_PIECE_CHUNKS)![0], { id: `c${MAX_KEPT_PIECE_CHUNKS}`, fromStream: true, keep: false });
  });

  const chunk = (n: number, fill: number) => Buffer.alloc(n, fill);
  it('copies each piece from its chunk at its offset, zeros for null pieces, each chunk taken once', async () => {
    const out = Buffer.alloc(3 * P + 100, 0xee); // a disk's last slice: its last piece is short
    const given = [chunk(4 * P, 1), chunk(P, 2)];
    given[0]!.fill(3, 2 * P, 3 * P);
    const released: Buffer[] = [];
    await assembleSlice({ pieces: [{ id: 'x', offset: 2 * P }, null, { id: 'y', offset: 0 }, { id: 'x', offset: 3 * P }] }, out, async () => given.shift()!, (b) => released.push(b), 'slice 7');
    const expected = Buffer.concat([Buffer.alloc(P, 3), Buffer.alloc(P), Buffer.alloc(P, 2), Buffer.alloc(100, 1)]);
    assert.ok(out.equals(expected));
    assert.equal(released.length, 2, 'both chunks released, x once');
  });

  it('refuses a piece reaching past its chunk, or past the slice, naming the slice and the chunk', async () => {
    const short = { pieces: [{ id: 'c'.repeat(64), offset: P }, null] };
    await assert.rejects(assembleSlice(short, Buffer.alloc(2 * P), async () => chunk(P + 10, 1), () => {}, 'restore d.vhdx: slice 3'), (e: unknown) => isHvError(e, 'ERR_CORRUPT') && /slice 3: piece 0 takes bytes 65536\.\.131072 of chunk c{64}, which has 65546/.test((e as Error).message));
    const past = { pieces: [null, { id: 'd'.repeat(64), offset: 0 }] };
    await assert.rejects(assembleSlice(past, Buffer.alloc(P), async () => chunk(P, 1), () => {}, 'slice 9'), (e: unknown) => isHvError(e, 'ERR_CORRUPT') && /slice 9: piece 1 \(chunk d{64}\) starts past/.test((e as Error).message));
  });
});
