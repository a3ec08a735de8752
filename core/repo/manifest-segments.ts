// Segments: a version-2 manifest's disk chunk list, stored in runs of SEGMENT_SLICES slices,
// each run as one chunk (content-addressed, sealed, packed and deduplicated like any other),
// so no reader or writer holds more than one run of a disk's list at once, and a run that
// did not change between two restore points is the same chunk. Pure code: encoding,
// decoding and the slice arithmetic. Reading them from a repository: manifest-chunks.ts.
//
// Encoding (docs/repository-format.md "Segments"), all integers little-endian:
//   0   4  magic "HVSG"
//   4   1  segment format, 1
//   5   3  zero
//   8   4  n, the slices this segment covers (1 .. 2^20)
//   12  ceil(n/8)  bitmap: bit (i & 7) of byte 12 + (i >> 3) set = slice i holds data; the
//                  unused high bits of the last byte are zero
//   ..  32·p  the raw 32-byte chunk ids of the p set slices, in slice order
// A zero slice has no id at all (no reserved id value stands for "zeros").

import { HvError } from '../errors.ts';
import type { ChunkRef } from './manifest-types.ts';

/**
 * Slices per segment. 4096 ids are 128 KiB (a segment is about one default chunk), and
 * cover 1 GiB of disk at 256 KiB chunks: a 64 TiB disk lists 65,536 segment ids in its
 * manifest (4.4 MB of JSON), and an incremental that changes one block rewrites 128 KiB.
 * Twice as many slices would halve the manifest but double that rewrite.
 */
export const SEGMENT_SLICES = 4096;
/** Readers take any segment size up to this (a manifest states its own). */
export const MAX_SEGMENT_SLICES = 1 << 20;
export const SEGMENT_MAGIC = 'HVSG';
export const SEGMENT_FORMAT = 1;
const HEADER = 12;
const ID = 32;
const HEX64 = /^[0-9a-f]{64}$/;

export function sliceCount(virtualSize: number, chunkSize: number): number {
  return Math.ceil(virtualSize / chunkSize);
}

export function segmentCount(slices: number, segmentSlices: number): number {
  return Math.ceil(slices / segmentSlices);
}

/** Slices [first, first + count) that segment k covers. */
export function segmentRange(k: number, slices: number, segmentSlices: number): { first: number; count: number } {
  const first = k * segmentSlices;
  return { first, count: Math.min(segmentSlices, slices - first) };
}

export function encodeSegment(refs: readonly ChunkRef[]): Buffer {
  const n = refs.length;
  if (n < 1 || n > MAX_SEGMENT_SLICES) throw new HvError('ERR_INVALID_ARGUMENT', `a segment covers 1 to ${MAX_SEGMENT_SLICES} slices, not ${n}`);
  let present = 0;
  for (const r of refs) if (r !== null) present++;
  const bitmap = (n + 7) >> 3;
  const out = Buffer.alloc(HEADER + bitmap + ID * present);
  out.write(SEGMENT_MAGIC, 0, 'latin1');
  out[4] = SEGMENT_FORMAT;
  out.writeUInt32LE(n, 8);
  let at = HEADER + bitmap;
  for (let i = 0; i < n; i++) {
    const r = refs[i]!;
    if (r === null) continue;
    if (!HEX64.test(r)) throw new HvError('ERR_INVALID_ARGUMENT', `slice ${i} of a segment: ${JSON.stringify(r)} is not a 64-hex chunk id`);
    out[HEADER + (i >> 3)]! |= 1 << (i & 7);
    out.write(r, at, 'hex');
    at += ID;
  }
  return out;
}

/** Inverse of encodeSegment. `what` names the segment in errors; `expected` is the slice count the manifest implies. */
export function decodeSegment(buf: Buffer, expected: number, what: string): ChunkRef[] {
  const bad = (problem: string) => new HvError('ERR_CORRUPT', `${what}: ${problem}`, { target: what });
  if (buf.length < HEADER || buf.toString('latin1', 0, 4) !== SEGMENT_MAGIC) throw bad('not a segment (no "HVSG" header)');
  if (buf[4] !== SEGMENT_FORMAT) throw bad(`segment format ${buf[4]} is not ${SEGMENT_FORMAT}`);
  if (buf[5] !== 0 || buf[6] !== 0 || buf[7] !== 0) throw bad('reserved header bytes are not zero');
  const n = buf.readUInt32LE(8);
  if (n !== expected) throw bad(`covers ${n} slices, the manifest needs ${expected}`);
  const bitmap = (n + 7) >> 3;
  if (buf.length < HEADER + bitmap) throw bad(`${buf.length} bytes is too short for the bitmap of ${n} slices`);
  if (n & 7 && buf[HEADER + bitmap - 1]! >> (n & 7)) throw bad('bitmap marks slices past the end');
  const refs: ChunkRef[] = new Array(n);
  let at = HEADER + bitmap;
  for (let i = 0; i < n; i++) {
    if (!(buf[HEADER + (i >> 3)]! & (1 << (i & 7)))) {
      refs[i] = null;
      continue;
    }
    if (at + ID > buf.length) throw bad(`ends at slice ${i}: ${buf.length} bytes is too short for the ids its bitmap marks`);
    refs[i] = buf.toString('hex', at, at + ID);
    at += ID;
  }
  if (at !== buf.length) throw bad(`${buf.length - at} bytes after the last chunk id`);
  return refs;
}
