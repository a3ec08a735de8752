// Change tracking (our RCT): a `<disk>.hvrct` file beside each tracked disk records which
// blocks (256 KiB) changed since a reference (the last backup). Every engine write path opens
// disks through attachChangeTracking, so writes are recorded; a writer we do not know
// about (qemu-io, a copy) changes the disk's identity (VHDX DataWriteGuid), and then the
// record is not trusted and the backup falls back to a scan.
//
// Crash rule: the record is marked dirty BEFORE the first write of an open and clean only
// after the disk is closed, so a writer killed mid-way leaves "dirty" ⇒ untrusted.

import { randomUUID } from 'node:crypto';
import { link, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';
import type { ByteRange, Disk } from '../disk/disk.ts';
import { HvError, isHvError } from '../errors.ts';
import { readVhdxInfo } from '../vhdx/index.ts';
import { bitmapBytes, bitmapRanges, granularityFor, decodeTracking, encodeTracking, markRange } from './format.ts';
import type { TrackingRecord } from './format.ts';

export { TRACKING_GRANULARITY, bitmapRanges } from './format.ts';
export type { TrackingRecord } from './format.ts';

export function trackingPath(diskPath: string): string {
  return `${diskPath}.hvrct`;
}

async function isVhdxFile(path: string): Promise<boolean> {
  const fh = await open(path, 'r');
  try {
    const sig = Buffer.alloc(8);
    await fh.read(sig, 0, 8, 0);
    return sig.toString('latin1') === 'vhdxfile';
  } finally {
    await fh.close();
  }
}

/** What changes when anybody writes the disk: the VHDX DataWriteGuid, or a raw file's size and mtime. */
export async function diskIdentity(path: string): Promise<string> {
  if (await isVhdxFile(path)) return (await readVhdxInfo(path)).dataWriteGuid;
  const st = await stat(path, { bigint: true });
  return `raw:${st.size}:${st.mtimeNs}`;
}

/** The record a new reference replaced, kept so a backup that failed does not cost the next one a scan. */
export function previousTrackingPath(diskPath: string): string {
  return `${diskPath}.hvrct.prev`;
}

export async function loadTracking(diskPath: string, file = trackingPath(diskPath)): Promise<TrackingRecord | undefined> {
  let buf: Buffer;
  try {
    buf = await readFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  return decodeTracking(buf, file);
}

function tempPathFor(file: string): string {
  return join(dirname(file), `.${basename(file)}.${process.pid}.${randomUUID().slice(0, 8)}.tmp`);
}

/** Replace the record atomically (temp file, fsync, rename): a reader sees the old or the new one. */
export async function saveTracking(diskPath: string, rec: TrackingRecord, file = trackingPath(diskPath)): Promise<void> {
  const tmp = tempPathFor(file);
  const fh = await open(tmp, 'w');
  try {
    await fh.writeFile(encodeTracking(rec));
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, file);
}

export async function removeTracking(diskPath: string): Promise<void> {
  await unlink(trackingPath(diskPath)).catch(() => undefined);
  await unlink(previousTrackingPath(diskPath)).catch(() => undefined);
}

/**
 * Start a new reference: empty bitmap, new reference id, the disk's current identity. The
 * replaced record, if trusted, is kept as `.hvrct.prev` (before the new one is written, so
 * the pair is always consistent): if the backup that started this reference fails, the
 * next one can still ask for changes since the older reference (previous ∪ current).
 * Returns the id.
 */
export async function startReference(diskPath: string, virtualSize: number): Promise<string> {
  return (await freezeAndStartReference(diskPath, virtualSize)).referenceId;
}

/**
 * At a checkpoint, in one pass over the record: the frozen disk's tracking state (what
 * freezeTracking gives) and a new reference started (what startReference does). The
 * caller may pass the disk's identity when it read it already and nothing can write the
 * disk meanwhile (the local host holds the VM lock). The replaced record becomes
 * `.hvrct.prev` by a hard link to its bytes, which were made durable when it was written.
 */
export async function freezeAndStartReference(diskPath: string, virtualSize: number, identity?: string): Promise<{ frozen: FrozenTracking; referenceId: string }> {
  const loaded = await loadTracking(diskPath).then((rec) => ({ rec }), (err: unknown) => ({ rec: undefined, err }));
  const now = identity ?? (await diskIdentity(diskPath));
  const current = judgeTracking(diskPath, loaded, undefined, virtualSize, now);
  const frozen = await withPrevious(diskPath, current, virtualSize);
  if (current.trusted) await keepAsPrevious(diskPath, current.record);
  else await unlink(previousTrackingPath(diskPath)).catch(() => undefined);
  const referenceId = randomUUID();
  await saveTracking(diskPath, {
    state: 'clean',
    generation: (loaded.rec?.generation ?? 0) + 1,
    granularity: granularityFor(virtualSize),
    virtualSize,
    referenceId,
    diskIdentity: now,
    bitmap: new Uint8Array(bitmapBytes(virtualSize, granularityFor(virtualSize))),
  });
  return { frozen, referenceId };
}

/** `.hvrct.prev` := the current record: a hard link (no rewrite, no fsync), else a copy where links are not supported. */
async function keepAsPrevious(diskPath: string, rec: TrackingRecord): Promise<void> {
  const prev = previousTrackingPath(diskPath);
  const tmp = tempPathFor(prev);
  try {
    await link(trackingPath(diskPath), tmp);
  } catch {
    await saveTracking(diskPath, rec, prev);
    return;
  }
  try {
    await rename(tmp, prev);
  } finally {
    // rename() between two links of one file does nothing and leaves tmp (a crash between
    // this link and the new record's save leaves .hvrct and .prev one file).
    await unlink(tmp).catch(() => undefined);
  }
}

export type TrackingCheck = { trusted: true; record: TrackingRecord } | { trusted: false; reason: string };

/** Can the record be used for changes since `referenceId` on the disk as it is now? */
export async function checkTracking(diskPath: string, referenceId: string | undefined, virtualSize: number): Promise<TrackingCheck> {
  const loaded = await loadTracking(diskPath).then((rec) => ({ rec }), (err: unknown) => ({ rec: undefined, err }));
  // The identity is read only when the record could be trusted otherwise.
  const pre = judgeTracking(diskPath, loaded, referenceId, virtualSize, undefined);
  if (!pre.trusted || loaded.rec === undefined) return pre;
  return judgeTracking(diskPath, loaded, referenceId, virtualSize, await diskIdentity(diskPath));
}

/** checkTracking's verdict on a loaded record (or its load error); `now` undefined skips the identity check. */
function judgeTracking(diskPath: string, loaded: { rec: TrackingRecord | undefined; err?: unknown }, referenceId: string | undefined, virtualSize: number, now: string | undefined): TrackingCheck {
  if ('err' in loaded) {
    const err = loaded.err;
    return { trusted: false, reason: isHvError(err) ? err.message : `change-tracking file unreadable: ${(err as Error).message}` };
  }
  const rec = loaded.rec;
  const file = trackingPath(diskPath);
  if (!rec) return { trusted: false, reason: `change-tracking file ${file} is missing` };
  if (rec.state === 'dirty') return { trusted: false, reason: `change-tracking file ${file} is dirty (a writer did not close the disk)` };
  if (rec.state === 'invalid') return { trusted: false, reason: `change tracking of ${diskPath} was invalidated: ${rec.invalidReason ?? 'unknown'}` };
  if (rec.virtualSize !== virtualSize) return { trusted: false, reason: `virtual size of ${diskPath} changed` };
  if (referenceId !== undefined && rec.referenceId !== referenceId) {
    return { trusted: false, reason: `change-tracking reference ${rec.referenceId} of ${diskPath} is not the previous restore point's reference ${referenceId}` };
  }
  if (now !== undefined && now !== rec.diskIdentity) {
    return { trusted: false, reason: `${diskPath} was written outside change tracking (DataWriteGuid ${now}, tracked ${rec.diskIdentity})` };
  }
  return { trusted: true, record: rec };
}

/** The tracking state of a disk frozen at a checkpoint: the current record and the one before it. */
export interface FrozenTracking {
  current: TrackingCheck;
  previous?: TrackingRecord;
}

export async function freezeTracking(diskPath: string, virtualSize: number): Promise<FrozenTracking> {
  return withPrevious(diskPath, await checkTracking(diskPath, undefined, virtualSize), virtualSize);
}

async function withPrevious(diskPath: string, current: TrackingCheck, virtualSize: number): Promise<FrozenTracking> {
  const previous = current.trusted ? await loadTracking(diskPath, previousTrackingPath(diskPath)).catch(() => undefined) : undefined;
  return { current, ...(previous?.state === 'clean' && previous.virtualSize === virtualSize ? { previous } : {}) };
}

/** Changed ranges since `referenceId` from a frozen state, or why they cannot be trusted. */
export function changesSince(frozen: FrozenTracking, referenceId: string, diskPath: string): { ranges: ByteRange[] } | { reason: string } {
  const cur = frozen.current;
  if (!cur.trusted) return { reason: cur.reason };
  if (cur.record.referenceId === referenceId) return { ranges: bitmapRanges(cur.record) };
  const prev = frozen.previous;
  if (prev && prev.referenceId === referenceId) {
    if (prev.granularity === cur.record.granularity) {
      const bitmap = Uint8Array.from(cur.record.bitmap, (b, i) => b | (prev.bitmap[i] ?? 0));
      return { ranges: bitmapRanges({ ...cur.record, bitmap }) };
    }
    // A record started before the granularity changed: union the byte ranges instead.
    return { ranges: unionRanges([...bitmapRanges(prev), ...bitmapRanges(cur.record)]) };
  }
  return { reason: `change-tracking reference ${cur.record.referenceId} of ${diskPath} is not the previous restore point's reference ${referenceId}` };
}

function unionRanges(ranges: ByteRange[]): ByteRange[] {
  const out: ByteRange[] = [];
  for (const r of ranges.sort((x, y) => x.offset - y.offset)) {
    const last = out[out.length - 1];
    if (last && r.offset <= last.offset + last.length) last.length = Math.max(last.length, r.offset + r.length - last.offset);
    else out.push({ offset: r.offset, length: r.length });
  }
  return out;
}

/** Mark a record untrusted, keeping the reason for the next backup's methodReason. */
export async function invalidateTracking(diskPath: string, reason: string): Promise<void> {
  const rec = await loadTracking(diskPath).catch(() => undefined);
  if (!rec) return;
  await saveTracking(diskPath, { ...rec, state: 'invalid', invalidReason: reason });
}

/**
 * After our own checkpoint merge wrote `ranges` into the parent: if the record was trusted
 * with identity `identityBefore` (the parent when frozen), add the ranges and take the
 * parent's new identity; otherwise leave it untrusted.
 */
export async function recordMergedRanges(parentPath: string, ranges: ByteRange[], identityBefore: string | undefined): Promise<void> {
  let rec: TrackingRecord | undefined;
  try {
    rec = await loadTracking(parentPath);
  } catch {
    return;
  }
  if (!rec || rec.state !== 'clean' || identityBefore === undefined || rec.diskIdentity !== identityBefore) return;
  const now = await diskIdentity(parentPath);
  // A merge that copied nothing did not write the parent: the record is already right.
  if (ranges.length === 0 && now === rec.diskIdentity) return;
  for (const r of ranges) markRange(rec.bitmap, rec.granularity, r.offset, r.length);
  await saveTracking(parentPath, { ...rec, diskIdentity: now });
}

const attached = new WeakSet<Disk>();

/**
 * Attach change tracking to a writable disk if the disk has a tracking record: mark the
 * record dirty now, set bits on every write, and on close store the bits with the disk's
 * new identity and mark it clean. A record that was not trusted at open stays invalid.
 */
export async function attachChangeTracking(disk: Disk): Promise<void> {
  if (disk.readOnly || attached.has(disk)) return;
  const check = await checkTracking(disk.path, undefined, disk.size).catch((err: unknown) => ({ trusted: false as const, reason: String(err) }));
  const rec = await loadTracking(disk.path).catch(() => undefined);
  if (!rec) return;
  attached.add(disk);
  if (!check.trusted) {
    await saveTracking(disk.path, { ...rec, state: 'invalid', invalidReason: rec.invalidReason ?? check.reason });
    return;
  }
  const bitmap = rec.bitmap;
  const generation = rec.generation + 1;
  await saveTracking(disk.path, { ...rec, state: 'dirty', generation });
  disk.addWriteListener((offset, length) => markRange(bitmap, rec.granularity, offset, length));
  const close = disk.close.bind(disk);
  disk.close = async () => {
    const wasClosed = disk.closed;
    await close();
    if (wasClosed) return;
    await saveTracking(disk.path, { ...rec, state: 'clean', generation, bitmap, diskIdentity: await diskIdentity(disk.path) });
  };
}

/** For error messages and tests: the changed ranges recorded now. */
export async function trackedRanges(diskPath: string): Promise<ByteRange[]> {
  const rec = await loadTracking(diskPath);
  if (!rec) throw new HvError('ERR_NOT_FOUND', `no change-tracking file for ${diskPath}`, { target: trackingPath(diskPath) });
  return bitmapRanges(rec);
}
