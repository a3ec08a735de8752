// Segments: a version-2 manifest's disk chunk list, stored in runs of SEGMENT_SLICES slices,
// each run as one chunk (content-addressed, sealed, packed and deduplicated like any other),
// so no reader or writer holds more than one run of a disk's list at once, and a run that
// did not change between two restore points is the same chunk. Pure code: encoding,
// decoding and the slice arithmetic. Reading them from a repository: manifest-chunks.ts.
//
// Encoding (docs/repository-format.md "Segments"), all integers little-endian.
// Format 1 (every slice a whole chunk):
//   0   4  magic "HVSG"
//   4   1  segment format, 1
//   5   3  zero
//   8   4  n, the slices this segment covers (1 .. 2^20)
//   12  ceil(n/8)  bitmap: bit (i & 7) of byte 12 + (i >> 3) set = slice i holds data; the
//                  unused high bits of the last byte are zero
//   ..  32·p  the raw 32-byte chunk ids of the p set slices, in slice order
// A zero slice has no id at all (no reserved id value stands for "zeros").
// Format 2 (some slices split into pieces; written only for a segment that has one, so an
// unsplit segment keeps the same bytes, and id, as before format 2):
//   0   4  magic "HVSG"
//   4   1  segment format, 2
//   5   3  zero
//   8   4  n
//   12  4  piece size, 65536
//   16  4  m, pieces per slice (chunkSize / piece size, at least 2)
//   20  B = ceil(n/8)  data bitmap, as in format 1
//   20+B  B  split bitmap: slice i is stored as pieces (only where its data bit is set)
//   20+2B ..  per data slice in slice order: a whole slice is its 32-byte chunk id; a split
//             slice is a piece bitmap of ceil(m/8) bytes (at least one bit set, unused high
//             bits zero) then, per set piece in order, the 32-byte chunk id and a u32 byte
//             offset into that chunk (a multiple of the piece size, below chunkSize)

import { HvError } from '../errors.ts';
import type { PieceRef, SliceRef, SplitSlice } from './manifest-types.ts';

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
/** A segment with split slices (pieces). */
export const SPLIT_SEGMENT_FORMAT = 2;
/**
 * Bytes per piece of a split slice: the granularity of change tracking (core/tracking), so a
 * tracked incremental reads and stores only the pieces that changed. Only a chunk size that
 * is a multiple of it, and larger, splits.
 */
export const PIECE_SIZE = 64 * 1024;
const HEADER = 12;
const HEADER2 = 20;
const ID = 32;
const PIECE = ID + 4;

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

/** Pieces a slice of a disk with this chunk size splits into, or 0 when it never splits. */
export function piecesPerSlice(chunkSize: number): number {
  return chunkSize > PIECE_SIZE && chunkSize % PIECE_SIZE === 0 ? chunkSize / PIECE_SIZE : 0;
}

export function isSplit(r: SliceRef | undefined): r is SplitSlice {
  return typeof r === 'object' && r !== null;
}

/**
 * Chunk ids slice `r` reads: its own id, or its pieces' distinct ids in piece order (a
 * split slice's unchanged pieces mostly point into one earlier chunk).
 */
export function sliceChunkIds(r: SliceRef): string[] {
  if (r === null) return [];
  if (typeof r === 'string') return [r];
  const ids: string[] = [];
  for (const p of r.pieces) if (p && !ids.includes(p.id)) ids.push(p.id);
  return ids;
}

/**
 * In a list for encodeSegment with `from`: slice j exactly as `from` has it (its bytes are
 * copied, never decoded).
 */
export const SAME_AS_BEFORE: unique symbol = Symbol('the slice as the previous segment has it');
export type SliceEntry = SliceRef | typeof SAME_AS_BEFORE;

/**
 * Format 1 when no slice is split, else format 2 (`chunkSize` needed then: it sets the
 * number of pieces per slice, and every split slice lists exactly that many). An entry
 * SAME_AS_BEFORE takes slice j of `from` (a segment of as many slices, decoded with the same
 * chunk size): the bytes are those of encoding `from.ref(j)` in its place.
 */
export function encodeSegment(refs: readonly SliceEntry[], chunkSize?: number, from?: SegmentView): Buffer {
  const n = refs.length;
  if (n < 1 || n > MAX_SEGMENT_SLICES) throw new HvError('ERR_INVALID_ARGUMENT', `a segment covers 1 to ${MAX_SEGMENT_SLICES} slices, not ${n}`);
  if (from && from.length !== n) throw new HvError('ERR_INVALID_ARGUMENT', `a segment of ${n} slices cannot take slices from one of ${from.length}`);
  let present = 0;
  let split = 0;
  let pieces = 0;
  // Split slices kept from `from` are copied whole (piece bitmap and pieces): their bytes, apart.
  let keptSplit = 0;
  let keptSplitBytes = 0;
  for (let i = 0; i < n; i++) {
    const r = refs[i]!;
    if (r === SAME_AS_BEFORE) {
      if (!from) throw new HvError('ERR_INVALID_ARGUMENT', `slice ${i} of a segment is the previous segment's, but there is none`);
      if (from.isNull(i)) continue;
      present++;
      if (from.isSplitAt(i)) {
        split++;
        keptSplit++;
        keptSplitBytes += from.entryLength(i);
      }
      continue;
    }
    if (r === null) continue;
    present++;
    if (isSplit(r)) {
      split++;
      for (const p of r.pieces) if (p) pieces++;
    }
  }
  const bitmap = (n + 7) >> 3;
  if (split === 0) {
    const out = Buffer.alloc(HEADER + bitmap + ID * present);
    out.write(SEGMENT_MAGIC, 0, 'latin1');
    out[4] = SEGMENT_FORMAT;
    out.writeUInt32LE(n, 8);
    let at = HEADER + bitmap;
    for (let i = 0; i < n; i++) {
      const r = refs[i]!;
      if (r === SAME_AS_BEFORE) {
        const end = keep(refs, i, from!, out, HEADER, -1);
        at += from!.copyEntries(i, end, out, at);
        i = end - 1;
        continue;
      }
      if (r === null) continue;
      out[HEADER + (i >> 3)]! |= 1 << (i & 7);
      at = writeId(out, at, r as string, `slice ${i}`);
    }
    return out;
  }
  const m = piecesPerSlice(chunkSize ?? 0);
  if (m === 0) throw new HvError('ERR_INVALID_ARGUMENT', `a segment with split slices needs a chunk size that is a multiple of ${PIECE_SIZE} above it, not ${chunkSize}`);
  if (keptSplit > 0 && from!.pieces !== m) throw new HvError('ERR_INVALID_ARGUMENT', `a segment of ${m} pieces per slice cannot keep split slices of ${from!.pieces}`);
  const pieceBitmap = (m + 7) >> 3;
  const out = Buffer.alloc(HEADER2 + 2 * bitmap + ID * (present - split) + pieceBitmap * (split - keptSplit) + PIECE * pieces + keptSplitBytes);
  out.write(SEGMENT_MAGIC, 0, 'latin1');
  out[4] = SPLIT_SEGMENT_FORMAT;
  out.writeUInt32LE(n, 8);
  out.writeUInt32LE(PIECE_SIZE, 12);
  out.writeUInt32LE(m, 16);
  let at = HEADER2 + 2 * bitmap;
  for (let i = 0; i < n; i++) {
    const r = refs[i]!;
    if (r === null) continue;
    if (r === SAME_AS_BEFORE) {
      const end = keep(refs, i, from!, out, HEADER2, HEADER2 + bitmap);
      at += from!.copyEntries(i, end, out, at);
      i = end - 1;
      continue;
    }
    out[HEADER2 + (i >> 3)]! |= 1 << (i & 7);
    if (!isSplit(r)) {
      at = writeId(out, at, r, `slice ${i}`);
      continue;
    }
    out[HEADER2 + bitmap + (i >> 3)]! |= 1 << (i & 7);
    if (r.pieces.length !== m) throw new HvError('ERR_INVALID_ARGUMENT', `slice ${i} of a segment has ${r.pieces.length} pieces, not ${m}`);
    if (r.pieces.every((p) => p === null)) throw new HvError('ERR_INVALID_ARGUMENT', `slice ${i} of a segment is split into pieces that are all zeros (it is null)`);
    const map = at;
    at += pieceBitmap;
    r.pieces.forEach((p, q) => {
      if (!p) return;
      if (!Number.isSafeInteger(p.offset) || p.offset < 0 || p.offset % PIECE_SIZE !== 0 || p.offset >= chunkSize!) {
        throw new HvError('ERR_INVALID_ARGUMENT', `piece ${q} of slice ${i} of a segment: offset ${p.offset} is not a multiple of ${PIECE_SIZE} below ${chunkSize}`);
      }
      out[map + (q >> 3)]! |= 1 << (q & 7);
      at = writeId(out, at, p.id, `piece ${q} of slice ${i}`);
      out.writeUInt32LE(p.offset, at);
      at += 4;
    });
  }
  return out;
}

/**
 * Mark the run of SAME_AS_BEFORE slices from `i` in `out`'s data bitmap at `dataMap` (and its
 * split bitmap at `splitMap`, unless -1) as `from` has them; returns where the run ends. Its
 * slices' entries lie back to back in `from`, so they are copied as one range, not one by one
 * (a subarray and a copy per slice was most of a large disk's segment encoding).
 */
function keep(refs: readonly SliceEntry[], i: number, from: SegmentView, out: Buffer, dataMap: number, splitMap: number): number {
  let k = i;
  for (; k < refs.length && refs[k] === SAME_AS_BEFORE; k++) {
    if (from.isNull(k)) continue;
    out[dataMap + (k >> 3)]! |= 1 << (k & 7);
    if (splitMap >= 0 && from.isSplitAt(k)) out[splitMap + (k >> 3)]! |= 1 << (k & 7);
  }
  return k;
}

function writeId(out: Buffer, at: number, id: string, what: string): number {
  // Decoding hex stops at the first character that is not hex, so 32 bytes written from 64
  // characters is the check; a regular expression per id was ~5 % of a warm incremental's
  // main thread (segments list 4096 ids each).
  // (Uppercase hex writes the same bytes: the segment names the same chunk.)
  if (typeof id !== 'string' || id.length !== 2 * ID || out.write(id, at, 'hex') !== ID) {
    throw new HvError('ERR_INVALID_ARGUMENT', `${what} of a segment: ${JSON.stringify(id)} is not a 64-hex chunk id`);
  }
  return at + ID;
}

/**
 * Inverse of encodeSegment. `what` names the segment in errors; `expected` is the slice
 * count the manifest implies, `chunkSize` its chunk size (a format-2 segment must split
 * slices of that size).
 */
export function decodeSegment(buf: Buffer, expected: number, what: string, chunkSize?: number): SliceRef[] {
  const view = SegmentView.decode(buf, expected, what, chunkSize);
  const refs: SliceRef[] = new Array(view.length);
  for (let i = 0; i < refs.length; i++) refs[i] = view.ref(i);
  return refs;
}

/** A window's slices taken one at a time: a decoded segment (SegmentView) or a plain list (SliceList). */
export interface SliceSource {
  readonly length: number;
  /** Slice j. */
  ref(j: number): SliceRef;
  /** Slice j is all zeros (without decoding it). */
  isNull(j: number): boolean;
}

/** A list of slices as a SliceSource. */
export class SliceList implements SliceSource {
  readonly #refs: readonly SliceRef[];

  constructor(refs: readonly SliceRef[]) {
    this.#refs = refs;
  }

  get length(): number {
    return this.#refs.length;
  }

  ref(j: number): SliceRef {
    return this.#refs[j] ?? null;
  }

  isNull(j: number): boolean {
    return (this.#refs[j] ?? null) === null;
  }
}

/**
 * A segment checked whole but decoded one slice at a time. A changed-blocks backup takes most
 * slices of a window as the previous point had them: decoding all of them into hex strings and
 * piece objects, then encoding them again, was a third of a warm 1 % incremental's main-thread
 * allocation (sampling heap profile: ~9 MB a call for a 2 GiB disk), and it grows with the
 * disk. encodeSegment copies such a slice's bytes from here instead (SAME_AS_BEFORE).
 */
export class SegmentView implements SliceSource {
  readonly #buf: Buffer;
  /** Byte offset of slice j's entry, -1 for a zero slice; its entry ends where the next one starts. */
  readonly #start: Int32Array;
  readonly #end: Int32Array;
  /** Slice j is split (format 2). */
  readonly #split: Uint8Array;
  /** Pieces per slice (format 2), else 0. */
  readonly pieces: number;

  private constructor(buf: Buffer, start: Int32Array, end: Int32Array, split: Uint8Array, pieces: number) {
    this.#buf = buf;
    this.#start = start;
    this.#end = end;
    this.#split = split;
    this.pieces = pieces;
  }

  get length(): number {
    return this.#start.length;
  }

  /** The segment's bytes (kept as they are: copy them first if they are a pooled buffer). */
  get bytes(): Buffer {
    return this.#buf;
  }

  isNull(j: number): boolean {
    return this.#start[j]! < 0;
  }

  isSplitAt(j: number): boolean {
    return this.#split[j] === 1;
  }

  /** Bytes of slice j's encoded entry (its id, or its piece bitmap and pieces), 0 for a zero slice. */
  entryLength(j: number): number {
    const a = this.#start[j]!;
    return a < 0 ? 0 : this.#end[j]! - a;
  }

  /** Copy the entries of slices [a, b), back to back as they are here, into `out` at `at`; returns the bytes copied. */
  copyEntries(a: number, b: number, out: Buffer, at: number): number {
    let start = -1, end = -1;
    for (let j = a; j < b; j++) {
      if (this.#start[j]! < 0) continue;
      if (start < 0) start = this.#start[j]!;
      end = this.#end[j]!;
    }
    return start < 0 ? 0 : this.#buf.copy(out, at, start, end);
  }

  ref(j: number): SliceRef {
    const a = this.#start[j]!;
    if (a < 0) return null;
    const buf = this.#buf;
    if (!this.#split[j]) return buf.toString('hex', a, a + ID);
    const m = this.pieces;
    let at = a + ((m + 7) >> 3);
    const pieces: (PieceRef | null)[] = new Array(m);
    for (let q = 0; q < m; q++) {
      if (!(buf[a + (q >> 3)]! & (1 << (q & 7)))) {
        pieces[q] = null;
        continue;
      }
      pieces[q] = { id: buf.toString('hex', at, at + ID), offset: buf.readUInt32LE(at + ID) };
      at += PIECE;
    }
    return { pieces };
  }

  /** Check `buf` as decodeSegment does (the same errors), decoding no slice yet. */
  static decode(buf: Buffer, expected: number, what: string, chunkSize?: number): SegmentView {
    const bad = (problem: string) => new HvError('ERR_CORRUPT', `${what}: ${problem}`, { target: what });
    if (buf.length < HEADER || buf.toString('latin1', 0, 4) !== SEGMENT_MAGIC) throw bad('not a segment (no "HVSG" header)');
    const format = buf[4];
    if (format !== SEGMENT_FORMAT && format !== SPLIT_SEGMENT_FORMAT) throw bad(`segment format ${format} is not ${SEGMENT_FORMAT} or ${SPLIT_SEGMENT_FORMAT}`);
    if (buf[5] !== 0 || buf[6] !== 0 || buf[7] !== 0) throw bad('reserved header bytes are not zero');
    const n = buf.readUInt32LE(8);
    if (n !== expected) throw bad(`covers ${n} slices, the manifest needs ${expected}`);
    const bitmap = (n + 7) >> 3;
    const head = format === SEGMENT_FORMAT ? HEADER : HEADER2;
    let m = 0;
    if (format === SPLIT_SEGMENT_FORMAT) {
      if (buf.length < HEADER2) throw bad(`${buf.length} bytes is too short for a format ${format} header`);
      const pieceSize = buf.readUInt32LE(12);
      m = buf.readUInt32LE(16);
      if (pieceSize !== PIECE_SIZE) throw bad(`piece size ${pieceSize} is not ${PIECE_SIZE}`);
      if (m < 2 || (chunkSize !== undefined && m * pieceSize !== chunkSize)) throw bad(`${m} pieces of ${pieceSize} bytes do not make a slice of ${chunkSize ?? 'at least two pieces'}`);
    }
    const maps = format === SEGMENT_FORMAT ? 1 : 2;
    if (buf.length < head + maps * bitmap) throw bad(`${buf.length} bytes is too short for the bitmap of ${n} slices`);
    for (let b = 0; b < maps; b++) if (n & 7 && buf[head + b * bitmap + bitmap - 1]! >> (n & 7)) throw bad('bitmap marks slices past the end');
    const start = new Int32Array(n).fill(-1);
    const end = new Int32Array(n);
    const splitAt = new Uint8Array(n);
    const pieceBitmap = (m + 7) >> 3;
    let at = head + maps * bitmap;
    const id = (i: number) => {
      if (at + ID > buf.length) throw bad(`ends at slice ${i}: ${buf.length} bytes is too short for the ids its bitmap marks`);
      at += ID;
    };
    for (let i = 0; i < n; i++) {
      const bit = 1 << (i & 7);
      const data = buf[head + (i >> 3)]! & bit;
      const split = maps === 2 && buf[head + bitmap + (i >> 3)]! & bit;
      if (split && !data) throw bad(`slice ${i} is marked split but holds no data`);
      if (!data) continue;
      start[i] = at;
      if (!split) {
        id(i);
        end[i] = at;
        continue;
      }
      splitAt[i] = 1;
      if (at + pieceBitmap > buf.length) throw bad(`ends at slice ${i}: too short for its piece bitmap`);
      const map = at;
      at += pieceBitmap;
      if (m & 7 && buf[map + pieceBitmap - 1]! >> (m & 7)) throw bad(`slice ${i}: its piece bitmap marks pieces past the end`);
      let any = false;
      for (let q = 0; q < m; q++) {
        if (!(buf[map + (q >> 3)]! & (1 << (q & 7)))) continue;
        id(i);
        if (at + 4 > buf.length) throw bad(`ends at piece ${q} of slice ${i}`);
        const offset = buf.readUInt32LE(at);
        at += 4;
        if (offset % PIECE_SIZE !== 0 || offset >= m * PIECE_SIZE) throw bad(`piece ${q} of slice ${i}: offset ${offset} is not a multiple of ${PIECE_SIZE} below ${m * PIECE_SIZE}`);
        any = true;
      }
      if (!any) throw bad(`slice ${i} is split into no pieces (a zero slice has no data bit)`);
      end[i] = at;
    }
    if (at !== buf.length) throw bad(`${buf.length - at} bytes after the last chunk id`);
    return new SegmentView(buf, start, end, splitAt, m);
  }
}
