// The restore write path: direct (O_DIRECT) writes with their buffered fallback, block
// preallocation in a VHDX, and restoreDisk with and without direct writes, raw and VHDX.
import assert from 'node:assert/strict';
import sinon from 'sinon';
import { readFileSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { backupVMs } from '../../core/api/backup.ts';
import { createSampleVM } from '../../core/api/vm.ts';
import { alignedBuffer, DirectWriter } from '../../core/disk/file-io.ts';
import { isHvError } from '../../core/errors.ts';
import { openRepository } from '../../core/repo/index.ts';
import { restoreDisk } from '../../core/restore/disk-restore.ts';
import { checkVhdx, createDifferencingVhdx, createVhdx, openDisk, readVhdxInfo } from '../../core/vhdx/index.ts';
import { openVhdxDisk } from '../../core/vhdx/io/open.ts';
import { VhdxDisk } from '../../core/vhdx/io/vhdx-disk.ts';
import { guestWrite } from '../../core/hosts/local/guest.ts';
import { PIECE_SIZE } from '../../core/repo/manifest-segments.ts';
import { randomBytesSeeded } from '../../core/hosts/local/content.ts';
import { diskSlices, MiB, newRepo, qemuImg, scratch } from '../backup/testing.ts';
import type { Scratch } from '../backup/testing.ts';

function pattern(len: number, seed: number): Buffer {
  return randomBytesSeeded(seed, 'write-path', len);
}

/** Open `file` again (read-only, our reader) and check that it reads as `expect`, whole. */
async function assertDiskBytes(file: string, expect: Buffer): Promise<void> {
  const disk = await openDisk(file);
  try {
    const got = Buffer.alloc(expect.length);
    await disk.read(got, 0);
    assert.ok(got.equals(expect), `${file} reads as written`);
  } finally {
    await disk.close();
  }
}

describe('restore write path', function () {
  this.timeout(120_000);
  let s: Scratch;
  before(() => { s = scratch('hvb-wpath-'); });
  after(() => s.cleanup());

  it('alignedBuffer gives page-aligned memory that a direct write accepts', async () => {
    const f = s.path('aligned.bin');
    writeFileSync(f, Buffer.alloc(0));
    const buf = alignedBuffer(3 * MiB)!;
    assert.equal(buf.length, 3 * MiB);
    pattern(3 * MiB, 1).copy(buf);
    const fh = await open(f, 'r+');
    const dw = await DirectWriter.open(f);
    const wasDirect = dw.active;
    try {
      await dw.write(fh, buf, MiB);
      // Where the file system takes O_DIRECT, aligned memory at an aligned offset stays direct.
      assert.equal(dw.active, wasDirect);
    } finally {
      await dw.close();
      await fh.close();
    }
    const got = readFileSync(f);
    assert.equal(got.length, 4 * MiB);
    assert.ok(got.subarray(0, MiB).equals(Buffer.alloc(MiB)));
    assert.ok(got.subarray(MiB).equals(buf));
  });

  it('DirectWriter: unaligned lengths and offsets go buffered; misaligned memory falls back for good, with the bytes written whole', async () => {
    const f = s.path('fallback.bin');
    writeFileSync(f, Buffer.alloc(64 * 1024));
    const fh = await open(f, 'r+');
    const dw = await DirectWriter.open(f);
    const wasDirect = dw.active;
    const base = alignedBuffer(64 * 1024)!;
    pattern(64 * 1024, 2).copy(base);
    try {
      await dw.write(fh, base.subarray(0, 1000), 0); // length not a multiple of 4 KiB
      await dw.write(fh, base.subarray(0, 4096), 512); // offset not 4 KiB-aligned
      assert.equal(dw.active, wasDirect, 'writes that do not qualify leave direct writes on');
      // Memory one byte past a page start: the kernel refuses it (EINVAL) and the write is redone buffered.
      await dw.write(fh, base.subarray(1, 1 + 8192), 16384);
      assert.equal(dw.active, false);
      await dw.write(fh, base.subarray(0, 4096), 32768);
    } finally {
      await dw.close();
      await fh.close();
    }
    const expect = Buffer.alloc(64 * 1024);
    base.copy(expect, 0, 0, 1000);
    base.copy(expect, 512, 0, 4096);
    base.copy(expect, 16384, 1, 1 + 8192);
    base.copy(expect, 32768, 0, 4096);
    assert.ok(readFileSync(f).equals(expect));
  });

  it('VhdxDisk.preallocate: one transaction allocates the blocks, reads do not change, later writes go in place without a log entry', async () => {
    const f = s.path('pre.vhdx');
    const disk = await createVhdx(f, { size: 16 * MiB, blockSize: MiB, directWrites: true });
    const early = pattern(MiB / 2, 3);
    await disk.write(early, 2 * MiB + 4096);
    await disk.preallocate([{ offset: 0, length: MiB + 1 }, { offset: 2 * MiB, length: 2 * MiB }, { offset: 9 * MiB + 512, length: 512 }]);
    // blocks 0, 1, 2 (already allocated), 3 and 9
    assert.equal(disk.info.allocatedBytes, 5 * MiB);
    const all = Buffer.alloc(16 * MiB);
    await disk.read(all, 0);
    const expect = Buffer.alloc(16 * MiB);
    early.copy(expect, 2 * MiB + 4096);
    assert.ok(all.equals(expect), 'preallocated blocks read as zeros');
    const seq = disk.file.header.sequenceNumber;
    const data = alignedBuffer(2 * MiB)!;
    pattern(2 * MiB, 4).copy(data);
    await disk.write(data, 0);
    await disk.write(data.subarray(0, MiB), 9 * MiB);
    data.copy(expect, 0);
    data.copy(expect, 9 * MiB, 0, MiB);
    assert.equal(disk.file.header.sequenceNumber, seq, 'no header update (no log transaction) for writes into preallocated blocks');
    assert.equal(disk.info.allocatedBytes, 5 * MiB);
    await disk.close();

    assert.deepEqual((await checkVhdx(f)).problems, []);
    assert.equal(qemuImg('check', '-f', 'vhdx', f).status, 0);
    const raw = s.path('pre.raw');
    assert.equal(qemuImg('convert', '-f', 'vhdx', '-O', 'raw', f, raw).status, 0);
    assert.ok(readFileSync(raw).equals(expect), 'qemu reads what was written');
    await assertDiskBytes(f, expect);
  });

  it('VhdxDisk.preallocate refuses a differencing child and a read-only disk, naming the file', async () => {
    const parent = s.path('parent.vhdx');
    await (await createVhdx(parent, { size: 8 * MiB, blockSize: MiB })).close();
    const child = s.path('child.avhdx');
    await createDifferencingVhdx(child, parent);
    const c = await openVhdxDisk(child, { writable: true });
    try {
      assert.throws(() => c.preallocate([{ offset: 0, length: MiB }]), (e: unknown) => isHvError(e, 'ERR_UNSUPPORTED') && (e as Error).message.includes(child));
    } finally {
      await c.close();
    }
    const ro = await openVhdxDisk(parent);
    try {
      assert.throws(() => ro.preallocate([{ offset: 0, length: MiB }]), (e: unknown) => isHvError(e, 'ERR_INVALID_ARGUMENT') && (e as Error).message.includes(parent));
    } finally {
      await ro.close();
    }
  });

  it('VhdxDisk.writeAllocated: writes into preallocated blocks run side by side, change no metadata, and close waits for them', async () => {
    const f = s.path('side.vhdx');
    const disk = await createVhdx(f, { size: 16 * MiB, blockSize: MiB, directWrites: true });
    await disk.preallocate([{ offset: 0, length: 16 * MiB }]);
    const seq = disk.file.header.sequenceNumber;
    const expect = Buffer.alloc(16 * MiB);
    // Eight writes of 1.5 MiB (each across a block boundary) in flight at once: the first four
    // awaited (no log transaction: the header is as before), the last four not awaited before close.
    const write = (k: number) => {
      const buf = alignedBuffer(MiB + MiB / 2)!;
      pattern(buf.length, 10 + k).copy(buf);
      const at = k * 2 * MiB + 256 * 1024;
      buf.copy(expect, at);
      return disk.writeAllocated(buf, at);
    };
    await Promise.all([0, 1, 2, 3].map(write));
    assert.equal(disk.file.header.sequenceNumber, seq, 'no header update (no log transaction) for the writes');
    const pending = [4, 5, 6, 7].map(write);
    const closing = disk.close();
    await Promise.all(pending);
    await closing;
    assert.equal((await readVhdxInfo(f)).allocatedBytes, 16 * MiB);
    assert.deepEqual((await checkVhdx(f)).problems, []);
    assert.equal(qemuImg('check', '-f', 'vhdx', f).status, 0);
    const raw = s.path('side.raw');
    assert.equal(qemuImg('convert', '-f', 'vhdx', '-O', 'raw', f, raw).status, 0);
    assert.ok(readFileSync(raw).equals(expect), 'every write landed before close returned');
  });

  it('VhdxDisk.writeAllocated: a flush, and a serialised operation (preallocate), start only once the writes in flight are done', async () => {
    const f = s.path('drain.vhdx');
    const disk = await createVhdx(f, { size: 16 * MiB, blockSize: MiB });
    await disk.preallocate([{ offset: 0, length: 8 * MiB }]);
    const events: string[] = [];
    const file = disk.file as unknown as { writePayload: (...a: unknown[]) => Promise<void>; flush: () => Promise<void>; commitPages: (...a: unknown[]) => Promise<void> };
    const writePayload = file.writePayload.bind(file), flush = file.flush.bind(file), commitPages = file.commitPages.bind(file);
    // Each payload write ends a few ms later, so anything that does not wait for it starts first.
    file.writePayload = async (...a) => { await new Promise((r) => setTimeout(r, 20)); await writePayload(...a); events.push('payload done'); };
    file.flush = async () => { events.push('flush'); await flush(); };
    file.commitPages = async (...a) => { events.push('metadata'); await commitPages(...a); };
    try {
      const writes = [0, 1, 2].map((k) => disk.writeAllocated(pattern(MiB, 40 + k), 2 * k * MiB));
      const flushed = disk.flush();
      await Promise.all([...writes, flushed]);
      assert.deepEqual(events, ['payload done', 'payload done', 'payload done', 'flush']);
      events.length = 0;
      const more = [0, 1].map((k) => disk.writeAllocated(pattern(MiB, 50 + k), (2 * k + 1) * MiB));
      const grown = disk.preallocate([{ offset: 8 * MiB, length: MiB }]);
      await Promise.all([...more, grown]);
      assert.deepEqual(events.slice(0, 3), ['payload done', 'payload done', 'metadata']);
    } finally {
      await disk.close();
    }
    assert.equal(qemuImg('check', '-f', 'vhdx', f).status, 0);
  });

  it('VhdxDisk.writeAllocated: side-by-side first writes of a session all wait for the new DataWriteGuid in both headers', async () => {
    const f = s.path('guid.vhdx');
    const made = await createVhdx(f, { size: 8 * MiB, blockSize: MiB });
    await made.preallocate([{ offset: 0, length: 8 * MiB }]);
    await made.close();
    const before = (await readVhdxInfo(f)).dataWriteGuid;
    const disk = await openVhdxDisk(f, { writable: true });
    const events: string[] = [];
    const file = disk.file as unknown as { writeHeader: (...a: unknown[]) => Promise<void>; writePayload: (...a: unknown[]) => Promise<void> };
    const writeHeader = file.writeHeader.bind(file), writePayload = file.writePayload.bind(file);
    file.writeHeader = async (...a) => { await writeHeader(...a); events.push('header'); };
    file.writePayload = async (...a) => { events.push('payload'); await writePayload(...a); };
    const expect = Buffer.alloc(8 * MiB);
    try {
      await Promise.all([0, 1, 2, 3].map((k) => {
        const buf = pattern(MiB, 30 + k);
        buf.copy(expect, 2 * k * MiB);
        return disk.writeAllocated(buf, 2 * k * MiB);
      }));
    } finally {
      await disk.close();
    }
    assert.deepEqual(events.slice(0, 2), ['header', 'header'], 'both headers are written before any payload');
    assert.equal(events.filter((e) => e === 'payload').length, 4);
    assert.notEqual((await readVhdxInfo(f)).dataWriteGuid, before);
    await assertDiskBytes(f, expect);
  });

  it('VhdxDisk.writeAllocated refuses a range over an unallocated block (naming the disk and the block), writing nothing; a child goes the serialised way', async () => {
    const f = s.path('unalloc.vhdx');
    const disk = await createVhdx(f, { size: 8 * MiB, blockSize: MiB });
    try {
      await disk.preallocate([{ offset: 0, length: MiB }]);
      const buf = pattern(2 * MiB, 20);
      await assert.rejects(disk.writeAllocated(buf, 0), (e: unknown) => isHvError(e, 'ERR_INVALID_ARGUMENT') && (e as Error).message.includes(f) && (e as Error).message.includes('block 1'));
      const got = Buffer.alloc(2 * MiB);
      await disk.read(got, 0);
      assert.ok(got.equals(Buffer.alloc(2 * MiB)), 'not even the allocated block was written');
      assert.equal(disk.info.allocatedBytes, MiB);
    } finally {
      await disk.close();
    }
    const child = s.path('unalloc-child.avhdx');
    await createDifferencingVhdx(child, f);
    const c = await openVhdxDisk(child, { writable: true });
    const data = pattern(4096 * 3, 21);
    try {
      // A child allocates as it goes (sector bitmaps over its parent): writeAllocated is write() there.
      await c.writeAllocated(data, MiB + 512);
      const got = Buffer.alloc(data.length);
      await c.read(got, MiB + 512);
      assert.ok(got.equals(data));
    } finally {
      await c.close();
    }
  });

  describe('restoreDisk', () => {
    let repo: string;
    let disk: string;
    let pointId: string;
    let sourceRaw: Buffer;
    before(async () => {
      repo = await newRepo(s.path('repo'));
      const vmDir = s.path('vms', 'wp01');
      disk = (await createSampleVM({}, { dir: vmDir, sizeBytes: 48 * MiB, seed: 7 })).disk;
      const [r] = await backupVMs({}, { repository: repo, sources: [vmDir] });
      assert.equal(r!.status, 'success', JSON.stringify(r!.error));
      pointId = r!.pointId!;
      assert.equal(qemuImg('convert', '-f', 'vhdx', '-O', 'raw', disk, s.path('source.raw')).status, 0);
      sourceRaw = readFileSync(s.path('source.raw'));
    });

    it('the zero pieces of a split slice are left as holes, not written; the disk reads the same', async () => {
      // A VM and repository of its own: the tests beside it compare with wp01 as backed up.
      const holesRepo = await newRepo(s.path('repo-holes'));
      const vmDir = s.path('vms', 'wp02');
      const vmDisk = (await createSampleVM({}, { dir: vmDir, sizeBytes: 48 * MiB, seed: 8 })).disk;
      const [full] = await backupVMs({}, { repository: holesRepo, sources: [vmDir] });
      assert.equal(full!.status, 'success', JSON.stringify(full!.error));
      const r0 = await openRepository(holesRepo, { threads: 0 });
      const cs = await r0.loadManifest(full!.pointId!).then((m) => m.disks[0]!.chunkSize).finally(() => r0.close());
      assert.ok(cs >= 4 * PIECE_SIZE, `chunk size ${cs}`);
      const refs = await diskSlices(holesRepo, full!.pointId!);
      const slice = refs.findIndex((ref, i) => ref === null && i > 0 && refs[i - 1] !== null);
      assert.ok(slice > 0, 'the sample disk has a zero slice after data');
      // One 64 KiB write into the second piece of a zero slice: the incremental stores it split, every other piece zero.
      await guestWrite(vmDir, [{ offset: slice * cs + PIECE_SIZE, data: pattern(PIECE_SIZE, 21) }]);
      const [incr] = await backupVMs({}, { repository: holesRepo, sources: [vmDir] });
      assert.equal(incr!.status, 'success', JSON.stringify(incr!.error));
      assert.equal(incr!.method, 'changed-blocks');
      const r = await openRepository(holesRepo);
      const spy = sinon.spy(VhdxDisk.prototype, 'writeAllocated');
      try {
        const m = await r.loadManifest(incr!.pointId!);
        const ref = (await diskSlices(holesRepo, incr!.pointId!))[slice];
        assert.ok(ref && typeof ref !== 'string' && ref.pieces.length === cs / PIECE_SIZE && ref.pieces.filter(Boolean).length === 1 && ref.pieces[1], 'the slice is split, one piece of data');
        const out = s.path('wp-holes.vhdx');
        await restoreDisk(r, m.disks[0]!, out);
        const ranges = spy.getCalls().map((c) => [c.args[1] as number, (c.args[1] as number) + (c.args[0] as Buffer).length]);
        const overlaps = (a: number, b: number) => ranges.some(([x, y]) => x! < b && a < y!);
        assert.ok(overlaps(slice * cs + PIECE_SIZE, slice * cs + 2 * PIECE_SIZE), 'the piece with data is written');
        assert.ok(!overlaps(slice * cs, slice * cs + PIECE_SIZE), 'the zero piece before it is not');
        assert.ok(!overlaps(slice * cs + 2 * PIECE_SIZE, (slice + 1) * cs), 'the zero pieces after it are not');
        assert.equal(qemuImg('check', '-f', 'vhdx', out).status, 0);
        assert.equal(qemuImg('compare', '-f', 'vhdx', '-F', 'vhdx', out, vmDisk).status, 0);
        // A raw image through buffered writes leaves the same holes in its truncated extension.
        const raw = s.path('wp-holes.img');
        await restoreDisk(r, { ...m.disks[0]!, format: 'raw', fileName: 'wp-holes.img' }, raw, { directWrites: false });
        assert.equal(qemuImg('convert', '-f', 'vhdx', '-O', 'raw', vmDisk, s.path('wp-holes-source.raw')).status, 0);
        assert.ok(readFileSync(raw).equals(readFileSync(s.path('wp-holes-source.raw'))), 'the raw image reads as the disk');
      } finally {
        spy.restore();
        await r.close();
      }
    });

    for (const directWrites of [true, false]) {
      it(`VHDX, ${directWrites ? 'direct' : 'buffered'} writes: checks clean, same bytes, only blocks with data allocated`, async () => {
        const r = await openRepository(repo);
        try {
          const m = await r.loadManifest(pointId);
          const out = s.path(`wp-${directWrites}.vhdx`);
          const written = await restoreDisk(r, m.disks[0]!, out, { directWrites });
          assert.equal(written, m.disks[0]!.dataSlices! * m.disks[0]!.chunkSize);
          assert.deepEqual((await checkVhdx(out)).problems, []);
          assert.equal(qemuImg('check', '-f', 'vhdx', out).status, 0);
          assert.equal(qemuImg('compare', '-f', 'vhdx', '-F', 'vhdx', out, disk).status, 0);
          const info = await readVhdxInfo(out);
          assert.ok(info.allocatedBytes <= (await readVhdxInfo(disk)).allocatedBytes, `allocated ${info.allocatedBytes}`);
        } finally {
          await r.close();
        }
      });

      it(`raw image, ${directWrites ? 'direct' : 'buffered'} writes: the same bytes as the source`, async () => {
        const r = await openRepository(repo);
        try {
          const m = await r.loadManifest(pointId);
          const out = s.path(`wp-${directWrites}.img`);
          await restoreDisk(r, { ...m.disks[0]!, format: 'raw', fileName: 'wp.img' }, out, { directWrites });
          assert.ok(readFileSync(out).equals(sourceRaw));
        } finally {
          await r.close();
        }
      });
    }
  });
});
