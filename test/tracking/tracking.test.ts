import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isHvError } from '../../core/errors.ts';
import { bitmapBytes, bitmapRanges, decodeTracking, encodeTracking, granularityFor, markRange, MAX_BITMAP_BYTES, TRACKING_GRANULARITY } from '../../core/tracking/format.ts';
import type { TrackingRecord } from '../../core/tracking/format.ts';
import { attachChangeTracking, changesSince, checkTracking, freezeTracking, loadTracking, startReference, trackingPath } from '../../core/tracking/index.ts';
import { createVhdx, openDisk } from '../../core/vhdx/index.ts';

const MiB = 1 << 20;

function record(size = 64 * MiB): TrackingRecord {
  return { state: 'clean', generation: 3, granularity: TRACKING_GRANULARITY, virtualSize: size, referenceId: 'ref-1', diskIdentity: '{abc}', bitmap: new Uint8Array(bitmapBytes(size)) };
}

describe('tracking format (.hvrct)', () => {
  it('round-trips a record and its bitmap', () => {
    const r = record();
    markRange(r.bitmap, r.granularity, 3 * MiB + 5, 10);
    markRange(r.bitmap, r.granularity, 10 * MiB - 1, 2);
    const back = decodeTracking(encodeTracking(r), 'x.hvrct');
    assert.deepEqual(back, { ...r, invalidReason: undefined });
    const G = TRACKING_GRANULARITY;
    assert.deepEqual(bitmapRanges(back), [{ offset: 3 * MiB, length: G }, { offset: 10 * MiB - G, length: 2 * G }]);
  });

  it('clips the last range to the virtual size', () => {
    const r = record(5 * MiB + 4096);
    markRange(r.bitmap, r.granularity, 5 * MiB, 4096);
    assert.deepEqual(bitmapRanges(r), [{ offset: 5 * MiB, length: 4096 }]);
  });

  it('rejects a flipped bit with ERR_CORRUPT naming the file', () => {
    const buf = encodeTracking(record());
    buf[260] ^= 1;
    assert.throws(() => decodeTracking(buf, '/d/disk.vhdx.hvrct'), (e: unknown) => isHvError(e, 'ERR_CORRUPT') && /disk\.vhdx\.hvrct: checksum/.test((e as Error).message));
  });
});

describe('change tracking beside a disk', function () {
  this.timeout(60_000);
  let dir: string;
  let disk: string;
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hvb-track-'));
    disk = join(dir, 'd.vhdx');
    const d = await createVhdx(disk, { size: 64 * MiB, blockSize: 2 * MiB });
    await d.write(Buffer.alloc(MiB, 7), 0);
    await d.close();
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('gives a new record 64 KiB blocks up to 2 TiB, and coarser ones above, so no bitmap passes 4 MiB', async () => {
    const TiB = 1024 * 1024 * MiB;
    assert.equal(granularityFor(64 * MiB), TRACKING_GRANULARITY);
    assert.equal(granularityFor(2 * TiB), TRACKING_GRANULARITY);
    assert.equal(granularityFor(2 * TiB + 1), 2 * TRACKING_GRANULARITY);
    assert.equal(granularityFor(64 * TiB), 2 * MiB);
    for (const size of [TiB, 3 * TiB, 64 * TiB]) assert.ok(bitmapBytes(size, granularityFor(size)) <= MAX_BITMAP_BYTES, `${size}`);
    // A reference started for a 64 TiB disk (Hyper-V's largest VHDX) is written with them.
    await startReference(disk, 64 * TiB);
    const rec = (await loadTracking(disk))!;
    assert.equal(rec.granularity, 2 * MiB);
    assert.equal(rec.bitmap.length, MAX_BITMAP_BYTES);
  });

  it('records every write through the engine and stays trusted (DataWriteGuid follows)', async () => {
    const ref = await startReference(disk, 64 * MiB);
    const d = await openDisk(disk, { writable: true });
    await attachChangeTracking(d);
    assert.equal((await loadTracking(disk))!.state, 'dirty', 'marked dirty before the first write');
    await d.write(Buffer.alloc(4096, 1), 5 * MiB + 100 * 512);
    await d.write(Buffer.alloc(2 * MiB, 2), 20 * MiB);
    await d.close();
    const check = await checkTracking(disk, ref, 64 * MiB);
    assert.ok(check.trusted, !check.trusted ? check.reason : '');
    assert.deepEqual(bitmapRanges(check.record), [{ offset: 5 * MiB, length: TRACKING_GRANULARITY }, { offset: 20 * MiB, length: 2 * MiB }]);
  });

  it('a writer that dies before closing leaves the record dirty, so it is not trusted', async () => {
    const ref = await startReference(disk, 64 * MiB);
    const d = await openDisk(disk, { writable: true });
    await attachChangeTracking(d);
    await d.write(Buffer.alloc(4096, 1), 0);
    // no close: as if killed
    const check = await checkTracking(disk, ref, 64 * MiB);
    assert.equal(check.trusted, false);
    assert.match((check as { reason: string }).reason, /dirty/);
  });

  it('a write by qemu-io (outside tracking) changes the DataWriteGuid: not trusted', async () => {
    const ref = await startReference(disk, 64 * MiB);
    const r = spawnSync('qemu-io', ['-f', 'vhdx', '-c', 'write -P 0x33 1M 64k', disk], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const check = await checkTracking(disk, ref, 64 * MiB);
    assert.equal(check.trusted, false);
    assert.match((check as { reason: string }).reason, /written outside change tracking/);
    // and the next engine open keeps it untrusted
    const d = await openDisk(disk, { writable: true });
    await attachChangeTracking(d);
    await d.write(Buffer.alloc(512, 1), 0);
    await d.close();
    assert.equal((await loadTracking(disk))!.state, 'invalid');
  });

  it('missing file, another reference id, or a corrupt file are each reported', async () => {
    assert.match((await checkTracking(disk, 'x', 64 * MiB) as { reason: string }).reason, /missing/);
    await startReference(disk, 64 * MiB);
    assert.match((await checkTracking(disk, 'other-ref', 64 * MiB) as { reason: string }).reason, /not the previous restore point's reference/);
    const buf = readFileSync(trackingPath(disk));
    buf[50] ^= 0xff;
    writeFileSync(trackingPath(disk), buf);
    assert.match((await checkTracking(disk, undefined, 64 * MiB) as { reason: string }).reason, /checksum/);
  });
});

describe('change tracking across a failed backup', function () {
  this.timeout(60_000);
  it('keeps the replaced record: changes since the older reference are previous ∪ current', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hvb-track2-'));
    try {
      const disk = join(dir, 'd.vhdx');
      const d0 = await createVhdx(disk, { size: 16 * MiB, blockSize: MiB });
      await d0.close();
      const r1 = await startReference(disk, 16 * MiB);
      const write = async (off: number) => {
        const d = await openDisk(disk, { writable: true });
        await attachChangeTracking(d);
        await d.write(Buffer.alloc(4096, 9), off);
        await d.close();
      };
      await write(2 * MiB);
      await startReference(disk, 16 * MiB); // r2: the backup that started it fails
      await write(7 * MiB);
      const frozen = await freezeTracking(disk, 16 * MiB);
      assert.deepEqual(changesSince(frozen, r1, disk), { ranges: [{ offset: 2 * MiB, length: TRACKING_GRANULARITY }, { offset: 7 * MiB, length: TRACKING_GRANULARITY }] });
      assert.match((changesSince(frozen, 'older', disk) as { reason: string }).reason, /not the previous restore point's reference older/);
      // A previous record kept from before the granularity changed (1 MiB) still counts: its byte ranges are unioned.
      const coarse = { ...frozen.previous!, granularity: MiB, bitmap: new Uint8Array(bitmapBytes(16 * MiB, MiB)) };
      markRange(coarse.bitmap, MiB, 2 * MiB, 4096);
      markRange(coarse.bitmap, MiB, 7 * MiB + 512 * 1024, 4096);
      assert.deepEqual(changesSince({ ...frozen, previous: coarse }, r1, disk), { ranges: [{ offset: 2 * MiB, length: MiB }, { offset: 7 * MiB, length: MiB }] });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
