// Disk chunk lists stored as segments (manifest version 2): disks of several segments and
// one above the old 4,194,304-slice limit back up and restore byte-identical, an unchanged
// window keeps its segment, a version-1 repository still works and is upgraded on its first
// new point, and a damaged segment is an error naming the point, the disk and the segment.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { backupVMs } from '../../core/api/backup.ts';
import type { BackupResult } from '../../core/api/types.ts';
import { runBackupJob } from '../../core/backup/engine.ts';
import { getHost } from '../../core/hosts/index.ts';
import { restoreVM } from '../../core/api/restore.ts';
import { collectGarbage } from '../../core/api/retention.ts';
import { verifyRepository } from '../../core/api/verify.ts';
import { createSampleVM } from '../../core/api/vm.ts';
import { isHvError, type ErrorCode } from '../../core/errors.ts';
import { guestWrite } from '../../core/hosts/local/guest.ts';
import { openDisk } from '../../core/vhdx/index.ts';
import { removeTracking, startReference } from '../../core/tracking/index.ts';
import { MIN_CHUNK_SIZE } from '../../core/repo/config.ts';
import { initRepository, openRepository } from '../../core/repo/local.ts';
import { diskWindows } from '../../core/repo/manifest-chunks.ts';
import { SEGMENT_SLICES, SegmentView } from '../../core/repo/manifest-segments.ts';
import sinon from 'sinon';
import { segmentStoreLimits } from '../../core/backup/read-pipeline.ts';
import type { ChunkRef, DiskManifest, RestorePointManifest } from '../../core/repo/manifest-types.ts';
import { chunkFileRange, flipChunkBit } from '../../core/repo/testing.ts';
import { MiB, qemuImg, scratch, type Scratch } from './testing.ts';

const CS = MIN_CHUNK_SIZE;
/** Bytes one segment covers in these repositories (256 MiB). */
const SEG = SEGMENT_SLICES * CS;
const GiB = 1024 * MiB;

/** A VM whose only disk is a sparse VHDX of `size` bytes made by qemu-img, with `writes` written by its guest. */
async function sparseVm(s: Scratch, name: string, size: number, writes: { offset: number; data: Buffer }[]): Promise<{ dir: string; disk: string }> {
  const dir = s.path('vms', name);
  const { disk } = await createSampleVM({}, { dir, sizeBytes: MiB, seed: 1 });
  await removeTracking(disk);
  rmSync(disk);
  const q = spawnSync('qemu-img', ['create', '-q', '-f', 'vhdx', '-o', 'subformat=dynamic', disk, String(size)], { encoding: 'utf8' });
  assert.equal(q.status, 0, q.stderr);
  await startReference(disk, size);
  await guestWrite(dir, writes);
  return { dir, disk };
}

async function newRepo(path: string): Promise<string> {
  await (await initRepository(path, { chunkSize: CS })).close();
  return path;
}

async function manifest(repo: string, id: string): Promise<RestorePointManifest> {
  const r = await openRepository(repo, { threads: 0 });
  try {
    return await r.loadManifest(id);
  } finally {
    await r.close();
  }
}

async function backUp(repo: string, dir: string) {
  const [r] = await backupVMs({}, { repository: repo, sources: [dir] });
  assert.equal(r!.status, 'success', JSON.stringify(r!.error));
  return r!;
}

function assertSameDisk(restored: string, expected: string): void {
  const cmp = qemuImg('compare', '-f', 'vhdx', '-F', 'vhdx', restored, expected);
  assert.equal(cmp.status, 0, cmp.out);
  const chk = qemuImg('check', '-f', 'vhdx', restored);
  assert.equal(chk.status, 0, chk.out);
}

const blob = (n: number) => randomBytes(n);

/**
 * Byte-compare two large sparse disks without reading their holes (qemu-img compare takes
 * ~25 s on 260 GiB of holes): every range either disk's extents call data is read from both
 * and compared; everywhere else both read as zeros by what their extents say.
 */
async function sameSparseDisk(a: string, b: string): Promise<void> {
  const da = await openDisk(a), db = await openDisk(b);
  try {
    assert.equal(da.size, db.size);
    const ranges = [...await da.extents(), ...await db.extents()].filter((e) => e.kind === 'data');
    assert.ok(ranges.length > 0);
    for (const r of ranges) {
      for (let off = r.offset; off < r.offset + r.length; off += 8 * MiB) {
        const n = Math.min(8 * MiB, r.offset + r.length - off);
        const x = Buffer.alloc(n), y = Buffer.alloc(n);
        await da.read(x, off);
        await db.read(y, off);
        assert.ok(x.equals(y), `${a} and ${b} differ in [${off}, ${off + n})`);
      }
    }
  } finally {
    await da.close();
    await db.close();
  }
  const chk = qemuImg('check', '-f', 'vhdx', a);
  assert.equal(chk.status, 0, chk.out);
}

describe('segments: disk chunk lists stored as chunks', function () {
  this.timeout(120_000);
  let s: Scratch;
  before(() => { s = scratch('hvb-seg-'); });
  after(() => s.cleanup());

  describe('a disk of two and a half segments', () => {
    let repo: string;
    let vm: { dir: string; disk: string };
    let first: string;
    // Segment 0 has data, segment 1 none, segment 2 (the partial last one) some, up to the disk's last byte.
    const size = 2 * SEG + SEG / 2 + 3 * CS;
    before(async () => {
      repo = await newRepo(s.path('repo'));
      vm = await sparseVm(s, 'two', size, [
        { offset: MiB, data: blob(3 * CS + 4096) },
        { offset: SEG - 4096, data: blob(4096) }, // the last slice of segment 0
        { offset: 2 * SEG + 5 * MiB, data: blob(CS) },
        { offset: size - 8192, data: blob(8192) },
      ]);
      first = (await backUp(repo, vm.dir)).pointId!;
    });

    it('backs up into segments (an all-zero one is null) and restores byte-identical', async () => {
      const d = (await manifest(repo, first)).disks[0]!;
      assert.equal(d.segmentSlices, SEGMENT_SLICES);
      assert.equal(d.chunks, undefined, 'no inline chunk list');
      assert.equal(d.segments!.length, 3);
      assert.ok(d.segments![0] && d.segments![2], 'segments with data are stored');
      assert.equal(d.segments![1], null, 'a segment of zeros is not');
      assert.equal(d.dataSlices, 4 + 1 + 1 + 1);
      const res = await restoreVM({}, { repository: repo, point: first, to: s.path('r-two') });
      assertSameDisk(res.disks[0]!.path, vm.disk);
      assert.ok((await verifyRepository({}, { repository: repo })).ok);
    });

    it('an incremental keeps the segment id of every window it did not change, without encoding it again, and decodes only the changed slices of the window it did', async () => {
      await guestWrite(vm.dir, [{ offset: 2 * SEG + 9 * MiB, data: blob(4096) }]);
      // The engine on a repository whose writer counts the segments submitted to it.
      const handle = await openRepository(repo, { threads: 0 });
      let segmentsSubmitted = 0;
      const writerOf = handle.chunkWriter.bind(handle);
      handle.chunkWriter = (o) => {
        const w = writerOf(o);
        const submit = w.submit.bind(w);
        return { ...w, stats: w.stats, submit: (plain: Buffer) => { if (plain.toString('latin1', 0, 4) === 'HVSG') segmentsSubmitted++; return submit(plain); } };
      };
      let r: BackupResult;
      const decoded = sinon.spy(SegmentView.prototype, 'ref');
      try {
        [r] = await runBackupJob({}, { repo: handle, host: await getHost('local'), sources: [vm.dir] }) as [BackupResult];
      } finally {
        decoded.restore();
        await handle.close();
      }
      assert.equal(r.status, 'success', JSON.stringify(r.error));
      assert.equal(segmentsSubmitted, 1, 'only the changed window is encoded and stored');
      // One 4 KiB write changes one slice: only it is decoded (to split it); the window's other
      // slices are copied into the new segment as they are.
      assert.ok(decoded.callCount <= 1, `${decoded.callCount} slices of the previous segments decoded`);
      assert.equal(r.method, 'changed-blocks', r.methodReason);
      assert.ok(r.readBytes > 0 && r.readBytes <= MiB, `read ${r.readBytes} bytes`);
      const before = (await manifest(repo, first)).disks[0]!;
      const after = (await manifest(repo, r.pointId!)).disks[0]!;
      assert.equal(after.segments![0], before.segments![0], 'window 0 unchanged: same segment');
      assert.equal(after.segments![1], null);
      assert.notEqual(after.segments![2], before.segments![2], 'window 2 changed: a new segment');
      assert.equal(after.dataSlices, before.dataSlices! + 1);
      const res = await restoreVM({}, { repository: repo, point: r.pointId!, to: s.path('r-two-inc') });
      assertSameDisk(res.disks[0]!.path, vm.disk);
    });
  });

  it('a sparse disk above the old 4,194,304-slice limit backs up, restores identical and verifies', async () => {
    const repo = await newRepo(s.path('repo-big'));
    const size = 260 * GiB; // 4,259,840 slices of 64 KiB
    const vm = await sparseVm(s, 'big', size, [
      // Nothing in the first segment: restore starts on a window of zeros.
      { offset: 5 * GiB + 7 * CS, data: blob(CS * 2) },
      { offset: 100 * GiB + 12345 * 512, data: blob(70_000) },
      { offset: size - CS, data: blob(CS) },
    ]);
    const r = await backUp(repo, vm.dir);
    const d = (await manifest(repo, r.pointId!)).disks[0]!;
    assert.equal(d.virtualSize, size);
    assert.equal(d.segments!.length, Math.ceil(size / CS / SEGMENT_SLICES));
    assert.equal(d.segments!.filter((x) => x !== null).length, 3);
    const res = await restoreVM({}, { repository: repo, point: r.pointId!, to: s.path('r-big') });
    await sameSparseDisk(res.disks[0]!.path, vm.disk);
    const v = await verifyRepository({}, { repository: repo });
    assert.ok(v.ok, JSON.stringify(v.problems));
  });

  it('more windows open than segmentStoreLimits allows: reading waits for their chunk ids, not their packs, so no early small pack, and every point restores identical', async () => {
    // One small write per window: no window's chunks fill a pack. Windows close once their
    // chunk ids are known (staged), so with the bound lowered to one window reading keeps
    // waiting for ids, and it must neither hang (ids that come only with a flush) nor flush
    // the writer early (a small pack per bound).
    const windows = 22;
    const saved = segmentStoreLimits.maxOpenBytes;
    segmentStoreLimits.maxOpenBytes = SEGMENT_SLICES * 8 + 300;
    try {
      const repo = await newRepo(s.path('repo-many'));
      const vm = await sparseVm(s, 'many', windows * SEG, Array.from({ length: windows }, (_, k) => ({ offset: k * SEG + (k % 7) * CS, data: blob(CS + 512) })));
      const full = await backUp(repo, vm.dir);
      const d = (await manifest(repo, full.pointId!)).disks[0]!;
      assert.equal(d.segments!.filter((x) => x !== null).length, windows);
      assert.equal(d.dataSlices, 2 * windows);
      // One data pack, then the segments' and config's: an early flush would show as a pack of its own.
      const r = await openRepository(repo, { threads: 0 });
      const packs = new Set<string>();
      for await (const c of r.listChunks()) packs.add(c.pack!);
      await r.close();
      assert.equal(packs.size, 2, `${packs.size} packs`);
      await guestWrite(vm.dir, Array.from({ length: windows }, (_, k) => ({ offset: k * SEG + 100 * CS, data: blob(4096) })));
      const inc = await backUp(repo, vm.dir);
      assert.equal(inc.method, 'changed-blocks', inc.methodReason);
      const res = await restoreVM({}, { repository: repo, point: inc.pointId!, to: s.path('r-many') });
      assertSameDisk(res.disks[0]!.path, vm.disk);
      assert.ok((await verifyRepository({}, { repository: repo })).ok);
    } finally {
      segmentStoreLimits.maxOpenBytes = saved;
    }
  });

  describe('a damaged segment', () => {
    let repo: string;
    let point: string;
    let d: DiskManifest;
    before(async () => {
      repo = await newRepo(s.path('repo-dmg'));
      const vm = await sparseVm(s, 'dmg', 2 * SEG, [{ offset: 0, data: blob(CS) }, { offset: SEG + CS, data: blob(CS) }]);
      point = (await backUp(repo, vm.dir)).pointId!;
      d = (await manifest(repo, point)).disks[0]!;
    });

    const names = (e: unknown, code: ErrorCode, k: number) => isHvError(e, code) && [point, d.key, `segment ${k} of 2`, d.segments![k]!].every((w) => (e as Error).message.includes(w));

    it('corrupt: restore, verify and gc say which point, disk and segment', async () => {
      const r = await openRepository(repo, { threads: 0 });
      await flipChunkBit(r, d.segments![1]!);
      await r.close();
      await assert.rejects(restoreVM({}, { repository: repo, point, to: s.path('r-dmg') }), (e: unknown) => names(e, 'ERR_CORRUPT', 1));
      const v = await verifyRepository({}, { repository: repo });
      const p = v.problems.find((x) => x.chunk === d.segments![1]);
      assert.ok(p, `verify reports the segment: ${JSON.stringify(v.problems)}`);
      assert.match(p!.problem, new RegExp(`${point}.*disk ${d.key}: segment 1 of 2.*corrupt`));
      assert.deepEqual(p!.points, [point]);
      await assert.rejects(collectGarbage({}, { repository: repo }), (e: unknown) => names(e, 'ERR_CORRUPT', 1) && /nothing deleted/.test((e as Error).message));
    });

    it('missing: restore names the segment, ERR_NOT_FOUND', async () => {
      const r = await openRepository(repo, { threads: 0 });
      const where = await chunkFileRange(r, d.segments![0]!);
      await r.close();
      rmSync(where.file);
      await assert.rejects(restoreVM({}, { repository: repo, point, to: s.path('r-dmg2') }), (e: unknown) => names(e, 'ERR_NOT_FOUND', 0));
    });
  });

  it('a version-1 repository (inline chunk lists) restores, verifies, collects garbage and takes an incremental, then is format 5', async () => {
    const repo = await newRepo(s.path('repo-v1'));
    const vm = await sparseVm(s, 'old', SEG + 40 * CS, [{ offset: 0, data: blob(5 * CS) }, { offset: SEG + 3 * CS, data: blob(CS) }]);
    const v2 = (await backUp(repo, vm.dir)).pointId!;
    // Rewrite it as HVBackup before segments wrote it: manifest version 1, config version 2.
    const r = await openRepository(repo, { threads: 0 });
    let old: string;
    try {
      const m = await r.loadManifest(v2);
      const disks: DiskManifest[] = [];
      for (const d of m.disks) {
        const chunks: ChunkRef[] = [];
        for await (const w of diskWindows(r, m.id, d)) for (const x of w.refs) chunks.push(typeof x === 'object' && x !== null ? assert.fail('no split slice in a full backup') : x);
        const { segments, segmentSlices, dataSlices, ...rest } = d;
        void segments; void segmentSlices; void dataSlices;
        disks.push({ ...rest, chunks });
      }
      old = await r.saveManifest({ ...m, id: '', version: 1, disks });
      await r.removeRestorePoints([v2]);
    } finally {
      await r.close();
    }
    const configFile = s.path('repo-v1', 'config');
    writeFileSync(configFile, readFileSync(configFile, 'utf8').replace('"version": 5', '"version": 2'));
    assert.equal(JSON.parse(readFileSync(configFile, 'utf8')).version, 2);

    const res = await restoreVM({}, { repository: repo, point: old, to: s.path('r-v1') });
    assertSameDisk(res.disks[0]!.path, vm.disk);
    // GC frees the segments nothing names any more, and keeps every chunk of the version-1 point.
    const gc = await collectGarbage({}, { repository: repo });
    assert.ok(gc.chunksRemoved >= 2, `gc removed ${gc.chunksRemoved} chunks (the two segments)`);
    assert.ok((await verifyRepository({}, { repository: repo })).ok);

    await guestWrite(vm.dir, [{ offset: SEG + 20 * CS, data: blob(4096) }]);
    const inc = await backUp(repo, vm.dir);
    assert.equal(inc.method, 'changed-blocks', inc.methodReason);
    assert.equal(JSON.parse(readFileSync(configFile, 'utf8')).version, 5, 'upgraded (by the GC, or else before its first version-2 manifest)');
    assert.equal((await manifest(repo, inc.pointId!)).version, 2);
    const res2 = await restoreVM({}, { repository: repo, point: inc.pointId!, to: s.path('r-v1-inc') });
    assertSameDisk(res2.disks[0]!.path, vm.disk);
    const restoredOld = await restoreVM({}, { repository: repo, point: old, to: s.path('r-v1-again') });
    assert.equal(qemuImg('compare', '-f', 'vhdx', '-F', 'vhdx', restoredOld.disks[0]!.path, vm.disk).status, 1, 'the old point still shows the disk before the change');
    assert.ok((await collectGarbage({}, { repository: repo })).chunksRemoved === 0);
    assert.ok((await verifyRepository({}, { repository: repo })).ok);
  });
});
