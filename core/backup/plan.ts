// Which chunk-sized slices of a frozen disk a backup reads. Pure: from the disk's extents
// (VHDX BAT: zero extents are never read), the method's changed ranges, and the previous
// restore point's chunk list (unchanged slices reuse its chunk ids).

import type { ByteRange, DiskExtent } from '../disk/disk.ts';
import type { ChunkRef } from '../repo/manifest-types.ts';

/** Per slice: null (zeros, known without reading), a reused chunk id, or 'read'. */
export type SlicePlan = ChunkRef | 'read';

export interface ReadRun {
  /** First slice index and number of slices; reads [first*chunkSize, ...) in one call. */
  first: number;
  count: number;
  offset: number;
  length: number;
}

export function sliceCount(virtualSize: number, chunkSize: number): number {
  return Math.ceil(virtualSize / chunkSize);
}

/** Slices that overlap any range of `ranges` (sorted or not). */
function touchedSlices(ranges: readonly ByteRange[], chunkSize: number, n: number): Uint8Array {
  const hit = new Uint8Array(n);
  for (const r of ranges) {
    if (r.length <= 0) continue;
    const a = Math.floor(r.offset / chunkSize);
    const b = Math.min(n - 1, Math.floor((r.offset + r.length - 1) / chunkSize));
    for (let i = a; i <= b; i++) hit[i] = 1;
  }
  return hit;
}

/**
 * Plan every slice. `changed` undefined: read all data slices (full or scan). Otherwise
 * read only slices overlapping `changed` and take the rest from `previous`.
 */
export function planSlices(opts: {
  virtualSize: number;
  chunkSize: number;
  extents: readonly DiskExtent[];
  changed?: readonly ByteRange[];
  previous?: readonly ChunkRef[];
}): SlicePlan[] {
  const n = sliceCount(opts.virtualSize, opts.chunkSize);
  const data = touchedSlices(opts.extents.filter((e) => e.kind === 'data'), opts.chunkSize, n);
  const changed = opts.changed ? touchedSlices(opts.changed, opts.chunkSize, n) : undefined;
  const plan: SlicePlan[] = new Array(n);
  for (let i = 0; i < n; i++) {
    if (!data[i]) plan[i] = null;
    else if (!changed || changed[i]) plan[i] = 'read';
    else plan[i] = opts.previous?.[i] === undefined ? 'read' : opts.previous[i]!;
  }
  return plan;
}

/** Group consecutive 'read' slices into large aligned reads of at most `maxBytes`. */
export function readRuns(plan: readonly SlicePlan[], chunkSize: number, virtualSize: number, maxBytes: number): ReadRun[] {
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
    const offset = i * chunkSize;
    runs.push({ first: i, count: j - i, offset, length: Math.min(j * chunkSize, virtualSize) - offset });
    i = j;
  }
  return runs;
}
