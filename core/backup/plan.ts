// Which chunk-sized slices of a frozen disk a backup reads, one window (segment) at a time.
// Pure: from the disk's extents (VHDX BAT: zero extents are never read), the method's
// changed ranges, and the previous restore point's chunk list for the window (unchanged
// slices reuse its chunk ids; a slice whose changes cover only some of its 64 KiB pieces is
// split: only those pieces are read, the others point where their bytes already are). A scan
// reads a slice the previous point holds split as pieces too (scanSplitSlice), so that its
// unchanged pieces can point where they are instead of the whole slice being stored again.

import type { ByteRange, DiskExtent } from '../disk/disk.ts';
import type { PieceRef, SliceRef } from '../repo/manifest-types.ts';
import { isSplit, PIECE_SIZE, SAME_AS_BEFORE, SegmentView, SliceList, sliceCount, type SliceSource } from '../repo/manifest-segments.ts';

/** A slice stored as pieces: per piece null (zeros), where its unchanged bytes are, or 'read'. */
export interface SplitPlan {
  split: (PieceRef | null | 'read')[];
}

/**
 * Per slice: null (zeros, known without reading), a reused slice (chunk id or pieces), the
 * previous segment's slice as it is (SAME_AS_BEFORE, when the previous window is one decoded
 * segment: its bytes are copied, not decoded), 'read', or a split.
 */
export type SlicePlan = SliceRef | typeof SAME_AS_BEFORE | 'read' | SplitPlan;

export function isSplitPlan(p: SlicePlan | undefined): p is SplitPlan {
  return typeof p === 'object' && p !== null && 'split' in p;
}

export interface ReadRun {
  /** First slice index and number of slices; reads [first*chunkSize, ...) in one call. */
  first: number;
  count: number;
  offset: number;
  length: number;
  /** Set for pieces of split slice `first`: pieces [piece, piece + count) of PIECE_SIZE bytes, not slices. */
  piece?: number;
}

export { sliceCount } from '../repo/manifest-segments.ts';

/**
 * Ranges sorted by offset, to find the ones a window of slices overlaps without walking
 * them all for every window (a disk is planned one segment at a time).
 */
export class RangeSet {
  readonly #offsets: number[] = [];
  readonly #ends: number[] = [];
  /** #maxEnd[i]: the largest end among ranges 0..i (ranges may overlap, e.g. changed ranges). */
  readonly #maxEnd: number[] = [];

  constructor(ranges: readonly ByteRange[]) {
    const sorted = ranges.filter((r) => r.length > 0).sort((a, b) => a.offset - b.offset);
    let max = -Infinity;
    for (const r of sorted) {
      max = Math.max(max, r.offset + r.length);
      this.#offsets.push(r.offset);
      this.#ends.push(r.offset + r.length);
      this.#maxEnd.push(max);
    }
  }

  /** Whether any range overlaps slices first..first+count-1 (no allocation: most windows of a large sparse disk have no data). */
  any(first: number, count: number, chunkSize: number): boolean {
    const start = first * chunkSize, end = (first + count) * chunkSize;
    const hi = lowerBound(this.#offsets, end);
    for (let i = lowerBound(this.#maxEnd, start + 1); i < hi; i++) if (this.#ends[i]! > start) return true;
    return false;
  }

  /** Slices first..first+count-1 that any range overlaps: hit[j] = 1 for slice first + j. */
  touched(first: number, count: number, chunkSize: number): Uint8Array {
    const hit = new Uint8Array(count);
    const start = first * chunkSize, end = (first + count) * chunkSize;
    const lo = lowerBound(this.#maxEnd, start + 1); // first range that could reach past start
    const hi = lowerBound(this.#offsets, end); // ranges from here on start at or after end
    for (let i = lo; i < hi; i++) {
      if (this.#ends[i]! <= start) continue;
      const a = Math.max(first, Math.floor(this.#offsets[i]! / chunkSize));
      const b = Math.min(first + count - 1, Math.floor((this.#ends[i]! - 1) / chunkSize));
      for (let s = a; s <= b; s++) hit[s - first] = 1;
    }
    return hit;
  }
}

/** First index of sorted `xs` whose value is >= v. */
function lowerBound(xs: readonly number[], v: number): number {
  let lo = 0, hi = xs.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (xs[mid]! < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Plan slices first..first+count-1. `changed` undefined: read every data slice (full or
 * scan). Otherwise read only slices overlapping `changed` and take the rest from
 * `previous` (its slice j is slice first + j of the restore point built on; from a
 * SegmentView they are SAME_AS_BEFORE, and only changed slices are decoded). With `pieces`
 * (pieces per slice, piecesPerSlice: 0 or absent never splits) a changed slice whose
 * changes miss some of its pieces is split (splitSlice).
 */
export function planWindow(opts: {
  first: number;
  count: number;
  chunkSize: number;
  data: RangeSet;
  changed?: RangeSet;
  previous?: SliceSource | readonly SliceRef[];
  pieces?: number;
  /** Needed with `pieces`: the disk's size (the last slice has fewer pieces). */
  virtualSize?: number;
  /**
   * A scan (`changed` undefined) that reads the slices `previous` holds split as pieces
   * (scanSplitSlice): needs `pieces` and `previous`. Every other data slice is read whole.
   */
  splitLikePrevious?: boolean;
}): SlicePlan[] {
  const { first, count, chunkSize } = opts;
  const data = opts.data.touched(first, count, chunkSize);
  const changed = opts.changed?.touched(first, count, chunkSize);
  const previous = Array.isArray(opts.previous) ? new SliceList(opts.previous as readonly SliceRef[]) : opts.previous as SliceSource | undefined;
  const keep = previous instanceof SegmentView;
  const plan: SlicePlan[] = new Array(count);
  for (let j = 0; j < count; j++) {
    const known = previous !== undefined && j < previous.length;
    if (!data[j]) plan[j] = null;
    else if (!changed) plan[j] = opts.splitLikePrevious && opts.pieces && known && splitAt(previous, j) ? scanSplitSlice(first + j, opts as PieceGeometry) : 'read';
    else if (changed[j]) plan[j] = opts.pieces && known ? splitSlice(first + j, previous.ref(j), opts as PieceGeometry) : 'read';
    else plan[j] = !known ? 'read' : keep ? SAME_AS_BEFORE : previous.ref(j);
  }
  return plan;
}

/** Slice j of `source` is split (a segment says so without decoding the slice). */
function splitAt(source: SliceSource, j: number): boolean {
  return source instanceof SegmentView ? source.isSplitAt(j) : isSplit(source.ref(j));
}

export interface PieceGeometry {
  chunkSize: number;
  data: RangeSet;
  changed: RangeSet;
  /** Pieces per slice (piecesPerSlice). */
  pieces: number;
  virtualSize: number;
}

/**
 * The pieces of changed slice i: how many lie on the disk (the last slice may have fewer),
 * which hold data and which changed, and whether every piece on the disk is a changed data
 * piece (then the whole slice is read, not split). One rule for the plan (splitSlice) and for
 * the bytes a backup announces before planning (changedSliceBytes).
 */
export function changedPieces(i: number, o: PieceGeometry): { onDisk: number; data: Uint8Array; changed: Uint8Array; whole: boolean } {
  const m = o.pieces;
  const onDisk = Math.ceil((Math.min((i + 1) * o.chunkSize, o.virtualSize) - i * o.chunkSize) / PIECE_SIZE);
  const data = o.data.touched(i * m, m, PIECE_SIZE);
  const changed = o.changed.touched(i * m, m, PIECE_SIZE);
  let reads = 0;
  for (let q = 0; q < onDisk; q++) if (data[q] && changed[q]) reads++;
  return { onDisk, data, changed, whole: reads === onDisk };
}

/** Bytes a changed-blocks backup reads of changed slice i: the whole slice, or its changed data pieces. */
export function changedSliceBytes(i: number, o: PieceGeometry): number {
  const len = Math.min(o.chunkSize, o.virtualSize - i * o.chunkSize);
  const { onDisk, data, changed, whole } = changedPieces(i, o);
  if (whole) return len;
  let bytes = 0;
  for (let q = 0; q < onDisk; q++) if (data[q] && changed[q]) bytes += Math.min(PIECE_SIZE, len - q * PIECE_SIZE);
  return bytes;
}

/**
 * Changed slice i, whose previous content is `before`: 'read' when every piece of it on the
 * disk changed, else per piece: zeros (not data now, or zeros before and unchanged), 'read'
 * (changed), or the previous bytes' place: the previous whole chunk at the piece's offset, or
 * the previous piece itself (which points at a chunk holding plain data: never a chain).
 */
function splitSlice(i: number, before: SliceRef, o: PieceGeometry): SlicePlan {
  const m = o.pieces;
  const { onDisk, data, changed, whole } = changedPieces(i, o);
  if (whole) return 'read';
  const split: SplitPlan['split'] = new Array(m);
  for (let q = 0; q < m; q++) {
    if (q >= onDisk || !data[q]) split[q] = null;
    else if (changed[q]) split[q] = 'read';
    else if (before === null) split[q] = null;
    else if (typeof before === 'string') split[q] = { id: before, offset: q * PIECE_SIZE };
    else split[q] = before.pieces[q] ?? null;
  }
  return { split };
}

/**
 * Data slice i of a scan, split in the previous point: every data piece read, as pieces. The
 * whole slice was never stored as one chunk, so read whole it would be stored again whole
 * (after tracked incrementals had split a slice, a scan stored every such slice anew: a 64 KiB
 * change after seven tracked points of the bench disk stored 341 MB, half a full). Read as
 * pieces, each piece's id can be matched with the bytes the previous point has there
 * (disk-backup.ts, pieceAliases).
 */
function scanSplitSlice(i: number, o: Omit<PieceGeometry, 'changed'>): SplitPlan {
  const m = o.pieces;
  const onDisk = Math.ceil((Math.min((i + 1) * o.chunkSize, o.virtualSize) - i * o.chunkSize) / PIECE_SIZE);
  const data = o.data.touched(i * m, m, PIECE_SIZE);
  const split: SplitPlan['split'] = new Array(m);
  for (let q = 0; q < m; q++) split[q] = q < onDisk && data[q] ? 'read' : null;
  return { split };
}

/** planWindow over a whole disk at once (small disks, tests). */
export function planSlices(opts: {
  virtualSize: number;
  chunkSize: number;
  extents: readonly DiskExtent[];
  changed?: readonly ByteRange[];
  previous?: readonly SliceRef[];
  pieces?: number;
}): SlicePlan[] {
  return planWindow({
    first: 0, count: sliceCount(opts.virtualSize, opts.chunkSize), chunkSize: opts.chunkSize,
    data: new RangeSet(opts.extents.filter((e) => e.kind === 'data')),
    changed: opts.changed ? new RangeSet(opts.changed) : undefined,
    previous: opts.previous,
    pieces: opts.pieces,
    virtualSize: opts.virtualSize,
  });
}

/**
 * Group consecutive 'read' slices into large aligned reads of at most `maxBytes`, and a split
 * slice's consecutive 'read' pieces into one read each; plan[j] is slice first + j.
 */
export function readRuns(plan: readonly SlicePlan[], chunkSize: number, virtualSize: number, maxBytes: number, first = 0): ReadRun[] {
  const per = Math.max(1, Math.floor(maxBytes / chunkSize));
  const runs: ReadRun[] = [];
  let i = 0;
  while (i < plan.length) {
    const p = plan[i];
    if (isSplitPlan(p)) {
      for (let q = 0; q < p.split.length;) {
        if (p.split[q] !== 'read') {
          q++;
          continue;
        }
        let r = q;
        while (r < p.split.length && p.split[r] === 'read') r++;
        const offset = (first + i) * chunkSize + q * PIECE_SIZE;
        runs.push({ first: first + i, piece: q, count: r - q, offset, length: Math.min((first + i) * chunkSize + r * PIECE_SIZE, virtualSize) - offset });
        q = r;
      }
      i++;
      continue;
    }
    if (p !== 'read') {
      i++;
      continue;
    }
    let j = i;
    while (j < plan.length && plan[j] === 'read' && j - i < per) j++;
    const offset = (first + i) * chunkSize;
    runs.push({ first: first + i, count: j - i, offset, length: Math.min((first + j) * chunkSize, virtualSize) - offset });
    i = j;
  }
  return runs;
}
