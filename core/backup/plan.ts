// Which chunk-sized slices of a frozen disk a backup reads, one window (segment) at a time.
// Pure: from the disk's extents (VHDX BAT: zero extents are never read), the method's
// changed ranges, and the previous restore point's chunk list for the window (unchanged
// slices reuse its chunk ids).

import type { ByteRange, DiskExtent } from '../disk/disk.ts';
import type { ChunkRef } from '../repo/manifest-types.ts';
import { sliceCount } from '../repo/manifest-segments.ts';

/** Per slice: null (zeros, known without reading), a reused chunk id, or 'read'. */
export type SlicePlan = ChunkRef | 'read';

export interface ReadRun {
  /** First slice index and number of slices; reads [first*chunkSize, ...) in one call. */
  first: number;
  count: number;
  offset: number;
  length: number;
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
 * `previous` (previous[j] is slice first + j of the restore point built on).
 */
export function planWindow(opts: {
  first: number;
  count: number;
  chunkSize: number;
  data: RangeSet;
  changed?: RangeSet;
  previous?: readonly ChunkRef[];
}): SlicePlan[] {
  const { first, count, chunkSize } = opts;
  const data = opts.data.touched(first, count, chunkSize);
  const changed = opts.changed?.touched(first, count, chunkSize);
  const plan: SlicePlan[] = new Array(count);
  for (let j = 0; j < count; j++) {
    if (!data[j]) plan[j] = null;
    else if (!changed || changed[j]) plan[j] = 'read';
    else plan[j] = opts.previous?.[j] === undefined ? 'read' : opts.previous[j]!;
  }
  return plan;
}

/** planWindow over a whole disk at once (small disks, tests). */
export function planSlices(opts: {
  virtualSize: number;
  chunkSize: number;
  extents: readonly DiskExtent[];
  changed?: readonly ByteRange[];
  previous?: readonly ChunkRef[];
}): SlicePlan[] {
  return planWindow({
    first: 0, count: sliceCount(opts.virtualSize, opts.chunkSize), chunkSize: opts.chunkSize,
    data: new RangeSet(opts.extents.filter((e) => e.kind === 'data')),
    changed: opts.changed ? new RangeSet(opts.changed) : undefined,
    previous: opts.previous,
  });
}

/** Group consecutive 'read' slices into large aligned reads of at most `maxBytes`; plan[j] is slice first + j. */
export function readRuns(plan: readonly SlicePlan[], chunkSize: number, virtualSize: number, maxBytes: number, first = 0): ReadRun[] {
  const per = Math.max(1, Math.floor(maxBytes / chunkSize));
  const runs: ReadRun[] = [];
  let i = 0;
  while (i < plan.length) {
    if (plan[i] !== 'read') {
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
