// The change-tracking file (`<disk>.hvrct`, our analogue of Hyper-V's .rct/.mrt): a
// fixed 256-byte header and a bitmap of changed 64 KiB blocks. Pure encode/decode; the
// layout is documented in docs/repository-format.md, "Local host files".
//
// Offsets (little-endian):
//   0  8  magic "HVRCT\0\0\1"
//   8  4  version (1)
//   12 4  state: 0 clean, 1 dirty (a writer has it open, or died), 2 invalid (known untrusted)
//   16 8  generation (incremented by every open for writing)
//   24 4  granularity in bytes (64 KiB; records started earlier keep 256 KiB or 1 MiB)
//   28 4  bitmap length in bytes
//   32 8  virtual size of the disk
//   40 64 reference id (ASCII, NUL-padded)
//   104 64 disk identity after our last tracked write (VHDX DataWriteGuid, or raw "mtime:size")
//   168 80 reason the record is invalid (ASCII, NUL-padded), when state = 2
//   248 4  CRC-32 of the whole file with this field zero
//   252 4  reserved
//   256 .. bitmap, bit i (LSB first) = block i changed since the reference

import { crc32 } from 'node:zlib';
import { HvError } from '../errors.ts';

export const TRACKING_MAGIC = Buffer.from('HVRCT\0\0\x01', 'latin1');
export const TRACKING_VERSION = 1;
/**
 * Bytes per bit of new records. As fine as a piece of a split slice (PIECE_SIZE, 64 KiB:
 * core/repo/manifest-segments.ts), so a tracked incremental reads and stores only the 64 KiB
 * blocks that changed, not whole 256 KiB slices (the bench's 1 % change of scattered 64 KiB
 * writes touched ~405 slices, 104 MB read for 21.5 MB changed); still independent of the
 * repository, and small: 2 MiB of bitmap per TiB of disk. A record keeps the granularity it
 * was started with (256 KiB or 1 MiB for older ones).
 */
export const TRACKING_GRANULARITY = 64 * 1024;
const HEADER_SIZE = 256;
const CRC_OFFSET = 248;

export type TrackingState = 'clean' | 'dirty' | 'invalid';
const STATES: TrackingState[] = ['clean', 'dirty', 'invalid'];

export interface TrackingRecord {
  state: TrackingState;
  generation: number;
  granularity: number;
  virtualSize: number;
  referenceId: string;
  /** Identity of the disk after our last tracked write; a different identity means someone else wrote. */
  diskIdentity: string;
  invalidReason?: string;
  /** One bit per `granularity` block. */
  bitmap: Uint8Array;
}

export function bitmapBytes(virtualSize: number, granularity = TRACKING_GRANULARITY): number {
  return Math.ceil(Math.ceil(virtualSize / granularity) / 8);
}

/** Largest bitmap a new record gets (4 MiB: 64 KiB granularity up to 2 TiB of disk). */
export const MAX_BITMAP_BYTES = 4 * 1024 * 1024;

/**
 * Granularity of a new record for a disk of `virtualSize`: TRACKING_GRANULARITY, doubled until
 * the bitmap fits MAX_BITMAP_BYTES. A checkpoint holds a few bitmaps of a disk at once (the
 * frozen record, the previous one, the new one), and a backup's memory must not grow with the
 * disk: at 64 KiB a 64 TiB VHDX (Hyper-V's largest) would need 128 MiB per bitmap; it gets
 * 2 MiB blocks and 4 MiB bitmaps instead. Changed ranges then cover whole 2 MiB blocks, which
 * a changed-blocks backup still reads as 64 KiB pieces.
 */
export function granularityFor(virtualSize: number): number {
  let g = TRACKING_GRANULARITY;
  while (bitmapBytes(virtualSize, g) > MAX_BITMAP_BYTES) g *= 2;
  return g;
}

function putText(buf: Buffer, off: number, len: number, s: string): void {
  const b = Buffer.from(s, 'ascii');
  if (b.length > len) throw new HvError('ERR_INVALID_ARGUMENT', `tracking field too long: ${s}`);
  b.copy(buf, off);
}

function getText(buf: Buffer, off: number, len: number): string {
  const s = buf.subarray(off, off + len);
  const end = s.indexOf(0);
  return s.subarray(0, end < 0 ? len : end).toString('ascii');
}

export function encodeTracking(r: TrackingRecord): Buffer {
  const buf = Buffer.alloc(HEADER_SIZE + r.bitmap.length);
  TRACKING_MAGIC.copy(buf, 0);
  buf.writeUInt32LE(TRACKING_VERSION, 8);
  buf.writeUInt32LE(STATES.indexOf(r.state), 12);
  buf.writeBigUInt64LE(BigInt(r.generation), 16);
  buf.writeUInt32LE(r.granularity, 24);
  buf.writeUInt32LE(r.bitmap.length, 28);
  buf.writeBigUInt64LE(BigInt(r.virtualSize), 32);
  putText(buf, 40, 64, r.referenceId);
  putText(buf, 104, 64, r.diskIdentity);
  putText(buf, 168, 80, (r.invalidReason ?? '').slice(0, 80));
  Buffer.from(r.bitmap).copy(buf, HEADER_SIZE);
  buf.writeUInt32LE(crc32(buf), CRC_OFFSET);
  return buf;
}

export function decodeTracking(buf: Buffer, file: string): TrackingRecord {
  const bad = (p: string): never => {
    throw new HvError('ERR_CORRUPT', `change-tracking file ${file}: ${p}`, { target: file });
  };
  if (buf.length < HEADER_SIZE || !buf.subarray(0, 8).equals(TRACKING_MAGIC)) bad('bad signature');
  if (buf.readUInt32LE(8) !== TRACKING_VERSION) bad(`version ${buf.readUInt32LE(8)} not supported`);
  const copy = Buffer.from(buf);
  copy.writeUInt32LE(0, CRC_OFFSET);
  if (crc32(copy) !== buf.readUInt32LE(CRC_OFFSET)) bad('checksum mismatch');
  const state = STATES[buf.readUInt32LE(12)] ?? bad(`unknown state ${buf.readUInt32LE(12)}`);
  const granularity = buf.readUInt32LE(24);
  const bitmapLen = buf.readUInt32LE(28);
  const virtualSize = Number(buf.readBigUInt64LE(32));
  if (granularity === 0 || bitmapLen !== bitmapBytes(virtualSize, granularity)) bad('bitmap length does not match the virtual size');
  if (buf.length !== HEADER_SIZE + bitmapLen) bad(`file is ${buf.length} bytes, expected ${HEADER_SIZE + bitmapLen}`);
  const reason = getText(buf, 168, 80);
  return {
    state,
    generation: Number(buf.readBigUInt64LE(16)),
    granularity,
    virtualSize,
    referenceId: getText(buf, 40, 64),
    diskIdentity: getText(buf, 104, 64),
    invalidReason: reason === '' ? undefined : reason,
    bitmap: new Uint8Array(buf.subarray(HEADER_SIZE)),
  };
}

/** Set the bits of every block touched by [offset, offset+length). */
export function markRange(bitmap: Uint8Array, granularity: number, offset: number, length: number): void {
  if (length <= 0) return;
  const first = Math.floor(offset / granularity);
  const last = Math.floor((offset + length - 1) / granularity);
  for (let b = first; b <= last; b++) bitmap[b >> 3]! |= 1 << (b & 7);
}

/** Changed ranges as sorted, merged byte ranges clipped to the virtual size. */
export function bitmapRanges(r: Pick<TrackingRecord, 'bitmap' | 'granularity' | 'virtualSize'>): { offset: number; length: number }[] {
  const out: { offset: number; length: number }[] = [];
  const blocks = Math.ceil(r.virtualSize / r.granularity);
  let start = -1;
  for (let b = 0; b <= blocks; b++) {
    const set = b < blocks && (r.bitmap[b >> 3]! & (1 << (b & 7))) !== 0;
    if (set && start < 0) start = b;
    if (!set && start >= 0) {
      const offset = start * r.granularity;
      out.push({ offset, length: Math.min(b * r.granularity, r.virtualSize) - offset });
      start = -1;
    }
  }
  return out;
}
