// PointDisk: a restore point's disk read at random, against the disk as each point saw it.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import sinon from 'sinon';
import { createSampleVM } from '../../core/api/vm.ts';
import { isHvError } from '../../core/errors.ts';
import { guestWrite } from '../../core/hosts/local/guest.ts';
import { randomBytesSeeded } from '../../core/hosts/local/content.ts';
import { openRepository, type Repository } from '../../core/repo/index.ts';
import { isSplit, PIECE_SIZE } from '../../core/repo/manifest-segments.ts';
import type { RestorePointManifest } from '../../core/repo/manifest-types.ts';
import { makeManifest, segmentDisk, storeDisk } from '../../core/repo/testing.ts';
import { dumpDisk, DUMP_PIECE_BYTES } from '../../core/restore/dump.ts';
import { PointDisk } from '../../core/restore/point-disk.ts';
import { damageChunk, diskSlices, MiB, newRepo, pointRecorder, qemuImg, scratch, type Scratch } from '../backup/testing.ts';

/** A seeded sequence of numbers in [0, 1). */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    return x / 2 ** 32;
  };
}

async function readRange(disk: PointDisk, offset: number, length: number): Promise<Buffer> {
  const b = Buffer.alloc(length, 0xa5); // not zeros: a zero range must be written, not left
  await disk.read(b, offset);
  return b;
}

describe('PointDisk: a restore point read at random', function () {
  this.timeout(180_000);
  let s: Scratch;
  let repoPath: string;
  let vmDir: string;
  let cs: number;
  const points: { id: string; raw: Buffer }[] = [];
  let repo: Repository;

  before(async () => {
    s = scratch('hvb-pointdisk-');
    repoPath = await newRepo(s.path('repo'));
    vmDir = s.path('vms', 'pd01');
    const disk = (await createSampleVM({}, { dir: vmDir, sizeBytes: 40 * MiB, seed: 31 })).disk;
    const rec = pointRecorder({}, repoPath, vmDir, disk, s);
    await rec.backUp('full');
    const refs = await diskSlices(repoPath, rec.points[0]!.id);
    const r0 = await openRepository(repoPath, { threads: 0 });
    cs = (await r0.loadManifest(rec.points[0]!.id)).disks[0]!.chunkSize;
    await r0.close();
    const zero = refs.findIndex((r, i) => r === null && i > 0 && refs[i - 1] !== null);
    const data = refs.findIndex((r) => typeof r === 'string');
    assert.ok(zero > 0 && data >= 0, 'the sample disk has data and zero slices');
    assert.equal(typeof refs[data + 1], 'string', 'the slice after the first data slice holds data too');
    // Pieces into a zero slice and into a data slice (split slices), a whole slice, and a
    // write across a slice boundary at an odd sector.
    await guestWrite(vmDir, [
      { offset: zero * cs + PIECE_SIZE, data: randomBytesSeeded(1, 'pd', PIECE_SIZE) },
      { offset: data * cs + 2 * PIECE_SIZE, data: randomBytesSeeded(2, 'pd', PIECE_SIZE) },
      // New data in the first piece, zeros in the third: a zero piece after one that is not.
      { offset: (data + 1) * cs, data: randomBytesSeeded(5, 'pd', PIECE_SIZE) },
      { offset: (data + 1) * cs + 2 * PIECE_SIZE, data: Buffer.alloc(PIECE_SIZE) },
      { offset: (data + 3) * cs, data: randomBytesSeeded(3, 'pd', cs) },
      { offset: (data + 6) * cs - 7 * 512, data: randomBytesSeeded(4, 'pd', 3 * PIECE_SIZE) },
    ]);
    const incr = await rec.backUp('incr');
    assert.equal(incr.method, 'changed-blocks');
    assert.ok((await diskSlices(repoPath, incr.pointId!)).some(isSplit), 'the incremental holds split slices');
    for (const p of rec.points) {
      const raw = s.path(`${p.id}.raw`);
      assert.equal(qemuImg('convert', '-f', 'vhdx', '-O', 'raw', p.expected, raw).status, 0);
      points.push({ id: p.id, raw: readFileSync(raw) });
    }
    repo = await openRepository(repoPath);
  });
  after(async () => {
    await repo?.close();
    s.cleanup();
  });

  const manifest = (id: string): Promise<RestorePointManifest> => repo.loadManifest(id);

  it('reads each point whole in odd-sized sequential reads, byte for byte as the disk was', async () => {
    for (const p of points) {
      const disk = await PointDisk.open(repo, await manifest(p.id));
      try {
        assert.equal(disk.size, p.raw.length);
        const step = 1_000_003;
        for (let at = 0; at < disk.size; at += step) {
          const len = Math.min(step, disk.size - at);
          assert.ok((await readRange(disk, at, len)).equals(p.raw.subarray(at, at + len)), `point ${p.id.slice(0, 12)}: bytes ${at}..${at + len}`);
        }
        assert.ok(disk.cachedBytes <= 64 * MiB, `cache ${disk.cachedBytes}`);
      } finally {
        await disk.close();
      }
    }
  });

  it('keeps its packs open from one read to the next: each pack is opened once however many reads it serves', async () => {
    const p = points[1]!;
    const packs = readdirSync(join(repoPath, 'packs')).flatMap((d) => readdirSync(join(repoPath, 'packs', d))).length;
    const spy = sinon.spy(repo.backend, 'openReader');
    const disk = await PointDisk.open(repo, await manifest(p.id), undefined, { readAheadBytes: 0 });
    try {
      let reads = 0;
      for (let at = 0; at < disk.size; at += cs, reads++) {
        const len = Math.min(cs, disk.size - at);
        assert.ok((await readRange(disk, at, len)).equals(p.raw.subarray(at, at + len)));
      }
      const opened = spy.getCalls().filter((c) => c.args[1].type === 'packs').length;
      assert.ok(opened > 0 && opened <= packs, `${opened} pack opens for ${reads} reads of ${packs} packs`);
    } finally {
      spy.restore();
      await disk.close();
    }
  });

  it('reads seeded random ranges (unaligned, across slices and pieces) byte for byte, one after another and side by side', async () => {
    for (const p of points) {
      // A cache far smaller than the reads side by side: entries are evicted while others are pinned.
      const disk = await PointDisk.open(repo, await manifest(p.id), undefined, { cacheBytes: MiB });
      try {
        const next = rng(p.id.charCodeAt(0) * 7919);
        const ranges = Array.from({ length: 120 }, () => {
          const length = 1 + Math.floor(next() * 3 * cs);
          return { offset: Math.floor(next() * (disk.size - length)), length };
        });
        for (const r of ranges.slice(0, 40)) {
          assert.ok((await readRange(disk, r.offset, r.length)).equals(p.raw.subarray(r.offset, r.offset + r.length)), `bytes ${r.offset}+${r.length}`);
        }
        const side = await Promise.all(ranges.slice(40).map((r) => readRange(disk, r.offset, r.length)));
        side.forEach((b, i) => {
          const r = ranges[40 + i]!;
          assert.ok(b.equals(p.raw.subarray(r.offset, r.offset + r.length)), `side by side: bytes ${r.offset}+${r.length}`);
        });
        assert.ok(disk.cachedBytes <= MiB, `nothing read now, so the cache is within its bound: ${disk.cachedBytes}`);
      } finally {
        await disk.close();
      }
      assert.equal(disk.cachedBytes, 0, 'close gives the cached chunks back');
    }
  });

  it('extents: zero ranges read as zeros, every non-zero byte lies in a data range, a split slice\'s zero pieces are zero ranges', async () => {
    const p = points[1]!;
    const disk = await PointDisk.open(repo, await manifest(p.id));
    try {
      const ext = await disk.extents();
      assert.equal(ext[0]!.offset, 0);
      assert.equal(ext.reduce((n, e) => n + e.length, 0), disk.size, 'the extents cover the disk');
      for (const e of ext) {
        if (e.kind === 'zero') assert.ok(p.raw.subarray(e.offset, e.offset + e.length).every((b) => b === 0), `zero extent ${e.offset}+${e.length}`);
      }
      const zeroBytes = ext.filter((e) => e.kind === 'zero').reduce((n, e) => n + e.length, 0);
      assert.ok(zeroBytes > 0 && zeroBytes < disk.size, `some zero ranges: ${zeroBytes}`);
      assert.ok(ext.some((e) => e.kind === 'zero' && e.offset % cs !== 0), 'a zero range that starts inside a slice (a zero piece)');
    } finally {
      await disk.close();
    }
  });

  it('windows: a version-2 list in small segments and a version-1 inline list read the same', async () => {
    const data = Buffer.concat([randomBytesSeeded(9, 'pd-win', 3 * cs), Buffer.alloc(4 * cs), randomBytesSeeded(10, 'pd-win', 5 * cs + 4096)]);
    const inline = await storeDisk(repo, data);
    const segmented = await segmentDisk(repo, inline, 2); // 7 windows, two of them all zeros
    for (const d of [inline, segmented]) {
      const m = makeManifest({ id: 'ab'.repeat(32), disks: [d] });
      const disk = await PointDisk.open(repo, m, 'scsi0-0');
      try {
        const next = rng(d === inline ? 5 : 6);
        for (let k = 0; k < 60; k++) {
          const length = 1 + Math.floor(next() * 4 * cs);
          const offset = Math.floor(next() * (data.length - length));
          assert.ok((await readRange(disk, offset, length)).equals(data.subarray(offset, offset + length)), `${d === inline ? 'inline' : 'segments'}: bytes ${offset}+${length}`);
        }
        assert.ok((await readRange(disk, 0, data.length)).equals(data), 'the whole disk in one read');
      } finally {
        await disk.close();
      }
    }
  });

  it('refuses writes, a disk the point does not have, and reads past the end; a closed disk reads nothing', async () => {
    const m = await manifest(points[0]!.id);
    await assert.rejects(PointDisk.open(repo, m, 'nope'), (e: unknown) => isHvError(e, 'ERR_NOT_FOUND') && e.message.includes('has no disk nope') && e.message.includes(m.disks[0]!.fileName));
    const disk = await PointDisk.open(repo, m, m.disks[0]!.fileName);
    assert.equal(disk.readOnly, true);
    await assert.rejects(disk.write(Buffer.alloc(512), 0), (e: unknown) => isHvError(e, 'ERR_INVALID_ARGUMENT') && e.message.includes('read-only'));
    await assert.rejects(disk.read(Buffer.alloc(2), disk.size - 1), (e: unknown) => isHvError(e, 'ERR_INVALID_ARGUMENT') && e.message.includes('outside'));
    await readRange(disk, 0, 3 * cs); // starts a read-ahead that close must stop
    await disk.close();
    assert.equal(disk.cachedBytes, 0);
    await assert.rejects(disk.read(Buffer.alloc(512), 0), (e: unknown) => isHvError(e, 'ERR_INVALID_ARGUMENT') && e.message.includes('closed'));
  });

  it('dumpDisk gives a slow sink every piece in order, never refilling a buffer the sink still holds; a failing sink ends it', async () => {
    const p = points[1]!;
    const m = await manifest(p.id);
    const got: Buffer[] = [];
    const offset = 12345;
    const length = 3 * DUMP_PIECE_BYTES + 777;
    // The sink looks at the bytes only later, as a socket that has not sent them yet would.
    const r = await dumpDisk({}, { repo, manifest: m, offset, length, write: async (b) => { await new Promise((res) => setTimeout(res, 20)); got.push(Buffer.from(b)); } });
    assert.equal(r.bytes, length);
    assert.ok(Buffer.concat(got).equals(p.raw.subarray(offset, offset + length)), 'the bytes, in order');
    let calls = 0;
    await assert.rejects(dumpDisk({}, { repo, manifest: m, write: async () => { if (++calls === 2) throw new Error('disk full'); } }), /disk full/);
    assert.equal(calls, 3, 'no piece is read after the one whose write failed is seen');
  });

  it('dumpDisk holds a shared lock while it reads: garbage collection (exclusive) is refused meanwhile, and gets it after', async () => {
    const m = await manifest(points[1]!.id);
    let release!: () => void;
    const held = new Promise<void>((res) => { release = res; });
    let first!: () => void;
    const started = new Promise<void>((res) => { first = res; });
    const dumping = dumpDisk({}, { repo, manifest: m, length: DUMP_PIECE_BYTES, write: async () => { first(); await held; } });
    await started;
    const other = await openRepository(repoPath, { threads: 0 });
    try {
      await assert.rejects(other.lock({ exclusive: true, operation: 'gc' }), (e: unknown) => isHvError(e, 'ERR_LOCKED') && e.message.includes('dump'));
      release();
      await dumping;
      const lock = await other.lock({ exclusive: true, operation: 'gc' });
      await lock.release();
    } finally {
      release();
      await dumping.catch(() => {});
      await other.close();
    }
  });

  // Last: it damages the repository.
  it('a damaged chunk fails the reads that need it, naming the disk and the chunk; the rest of the disk still reads', async () => {
    const p = points[1]!;
    const refs = await diskSlices(repoPath, p.id);
    const at = refs.findIndex((r, i) => typeof r === 'string' && refs.indexOf(r) === i && refs.lastIndexOf(r) === i
      && !refs.some((o) => isSplit(o) && o.pieces.some((q) => q?.id === r)));
    assert.ok(at >= 0, 'a slice whose chunk nothing else uses');
    const id = refs[at] as string;
    await damageChunk(repoPath, id);
    const fresh = await openRepository(repoPath);
    const disk = await PointDisk.open(fresh, await fresh.loadManifest(p.id));
    try {
      await assert.rejects(readRange(disk, at * cs + 100, 1000), (e: unknown) => isHvError(e, 'ERR_CORRUPT') && e.message.includes(id) && e.message.includes(disk.path));
      const other = refs.findIndex((r, i) => i !== at && typeof r === 'string' && r !== id);
      assert.ok((await readRange(disk, other * cs, cs)).equals(p.raw.subarray(other * cs, (other + 1) * cs)), 'another slice reads');
      // Asked again, it fails again (a failed load is not cached).
      await assert.rejects(readRange(disk, at * cs, cs), (e: unknown) => isHvError(e, 'ERR_CORRUPT'));
    } finally {
      await disk.close();
      await fresh.close();
    }
  });
});
