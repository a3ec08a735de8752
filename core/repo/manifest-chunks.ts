// A restore point's chunk lists read from the repository, for both manifest versions:
// version 1 lists a disk's chunks inline, version 2 in segment chunks (manifest-segments.ts)
// read one at a time, so whoever walks a disk (restore, verify, GC, archive export) holds
// one segment of it, not the whole list.

import { HvError, isHvError, wrapError } from '../errors.ts';
import { namedChunks } from './manifest.ts';
import { decodeSegment, SegmentView, segmentCount, segmentRange, SEGMENT_SLICES, SliceList, sliceChunkIds, sliceCount, type SliceSource } from './manifest-segments.ts';
import type { ChunkRef, DiskManifest, RestorePointManifest, SliceRef } from './manifest-types.ts';
import type { Repository } from './repository.ts';

/** A run of consecutive slices of a disk: refs[j] is slice first + j. */
export interface SliceWindow {
  /** Index of the run (the segment index for a version-2 disk). */
  k: number;
  first: number;
  /** Shared between windows when all null: never modify. A version-1 list has no split slices. */
  refs: readonly SliceRef[];
  /** Version 2: the segment's chunk id (null: an all-zero segment, never stored). Undefined for version 1. */
  segment?: ChunkRef;
}

export function diskSliceCount(d: DiskManifest): number {
  return sliceCount(d.virtualSize, d.chunkSize);
}

/** Slices per window when walking `d`: its segment size, or SEGMENT_SLICES for an inline (version 1) list. */
export function windowSlices(d: DiskManifest): number {
  return d.segments ? d.segmentSlices! : SEGMENT_SLICES;
}

export function windowCount(d: DiskManifest): number {
  return segmentCount(diskSliceCount(d), windowSlices(d));
}

/** How a segment is named in errors: the point, the disk and the segment. */
export function segmentWhat(pointId: string, d: DiskManifest, k: number): string {
  return `restore point ${pointId} disk ${d.key}: segment ${k} of ${d.segments?.length ?? 0}`;
}

const allNull = new Map<number, readonly ChunkRef[]>();

/** `count` nulls, one shared array per count: a large sparse disk is mostly all-zero segments, walked one after another. */
function noData(count: number): readonly ChunkRef[] {
  let a = allNull.get(count);
  if (!a) {
    a = Object.freeze(new Array<ChunkRef>(count).fill(null));
    if (allNull.size > 64) allNull.clear();
    allNull.set(count, a);
  }
  return a;
}

/** Slices of window k of `d`, loading its segment for a version-2 disk. Errors name the point, the disk and the segment. */
export async function loadWindow(repo: Repository, pointId: string, d: DiskManifest, k: number, signal?: AbortSignal): Promise<SliceWindow> {
  const { first, count } = segmentRange(k, diskSliceCount(d), windowSlices(d));
  if (!d.segments) return { k, first, refs: d.chunks!.slice(first, first + count) };
  const id = d.segments[k]!;
  if (id === null) return { k, first, refs: noData(count), segment: null };
  const what = `${segmentWhat(pointId, d, k)} (<chunks/${id}>)`;
  const plain = await loadSegment(repo, pointId, d, k, id, what, signal);
  try {
    return { k, first, refs: decodeSegment(plain, count, what, d.chunkSize), segment: id };
  } finally {
    repo.pool.release(plain);
  }
}

/** Window k of `d` as loadWindow reads it, but a segment is checked whole and decoded a slice at a time when asked (SegmentView). */
export async function loadWindowSource(repo: Repository, pointId: string, d: DiskManifest, k: number, signal?: AbortSignal): Promise<{ k: number; first: number; source: SliceSource; segment?: ChunkRef }> {
  const id = d.segments?.[k];
  if (!id) {
    const w = await loadWindow(repo, pointId, d, k, signal);
    return { k, first: w.first, source: new SliceList(w.refs), segment: w.segment };
  }
  const { first, count } = segmentRange(k, diskSliceCount(d), windowSlices(d));
  const what = `${segmentWhat(pointId, d, k)} (<chunks/${id}>)`;
  const plain = await loadSegment(repo, pointId, d, k, id, what, signal);
  // Its own copy: the view outlives the pool's buffer.
  const own = Buffer.from(plain);
  repo.pool.release(plain);
  return { k, first, source: SegmentView.decode(own, count, what, d.chunkSize), segment: id };
}

async function loadSegment(repo: Repository, pointId: string, d: DiskManifest, k: number, id: string, what: string, signal?: AbortSignal): Promise<Buffer> {
  try {
    return await repo.loadChunk(id, { signal });
  } catch (err) {
    if (isHvError(err, 'ERR_CANCELLED')) throw err;
    const data = { point: pointId, disk: d.key, segment: k, chunk: id };
    if (isHvError(err, 'ERR_NOT_FOUND')) throw new HvError('ERR_NOT_FOUND', `${what} is missing: ${(err as Error).message}`, { target: `<chunks/${id}>`, cause: err, data });
    if (isHvError(err, 'ERR_CORRUPT')) throw new HvError('ERR_CORRUPT', `${what} is corrupt: ${(err as Error).message}`, { target: `<chunks/${id}>`, cause: err, data });
    throw wrapError(err, `load ${what}`, `<chunks/${id}>`);
  }
}

/**
 * A disk's slices window by window, in order; for a version-2 disk the next segment is
 * loaded while the caller works on this one. A version-2 disk whose segments hold another
 * number of data slices than its manifest says fails at the end (ERR_CORRUPT). With
 * `onFailure`, a segment that does not load is not an error: its window comes as all zero
 * slices, `onFailure` hears why, and the count is not checked (a restore that keeps going).
 */
export async function* diskWindows(repo: Repository, pointId: string, d: DiskManifest, signal?: AbortSignal, onFailure?: (w: SliceWindow, err: HvError) => void): AsyncGenerator<SliceWindow> {
  const n = windowCount(d);
  let data = 0;
  let failed = false;
  const load = (k: number): Promise<SliceWindow> => {
    const p = loadWindow(repo, pointId, d, k, signal);
    if (!onFailure) return p;
    return p.catch((err: unknown) => {
      if (!isHvError(err) || err.code === 'ERR_CANCELLED') throw err;
      const { first, count } = segmentRange(k, diskSliceCount(d), windowSlices(d));
      const w = { k, first, refs: noData(count) };
      failed = true;
      onFailure(w, err);
      return w;
    });
  };
  let next: Promise<SliceWindow> | undefined = n > 0 ? load(0) : undefined;
  try {
    for (let k = 0; k < n; k++) {
      const w = await next!;
      next = k + 1 < n ? load(k + 1) : undefined;
      next?.catch(() => {}); // awaited next round, or dropped with the generator
      for (const r of w.refs) if (r !== null) data++;
      yield w;
    }
  } finally {
    await next?.catch(() => {});
  }
  if (d.segments && data !== d.dataSlices && !failed) {
    throw new HvError('ERR_CORRUPT', `restore point ${pointId} disk ${d.key}: its segments list ${data} data slices, the manifest says ${d.dataSlices}`, { target: pointId, data: { point: pointId, disk: d.key } });
  }
}

/**
 * Add every chunk point `m` needs to `into`: the chunks it names (version-1 lists, config
 * files, segment ids) and the chunks its segments list. A segment in `seen` is not read
 * again (its chunks are already in `into`); segments read are added to it. Errors name
 * the point, disk and segment that did not load.
 */
export async function addPointChunks(repo: Repository, m: RestorePointManifest, into: { add(id: string): unknown }, opts: { seen?: Set<string>; signal?: AbortSignal } = {}): Promise<void> {
  const seen = opts.seen ?? new Set<string>();
  for (const id of namedChunks(m)) into.add(id);
  for (const d of m.disks) {
    if (!d.segments) continue;
    for (let k = 0; k < d.segments.length; k++) {
      const id = d.segments[k];
      if (!id || seen.has(id)) continue;
      const w = await loadWindow(repo, m.id, d, k, opts.signal);
      // A split slice's pieces name ordinary chunks (new pieces, or earlier whole slices): needed like any other.
      for (const r of w.refs) for (const c of sliceChunkIds(r)) into.add(c);
      seen.add(id);
    }
  }
}

/** Every chunk point `m` needs (see addPointChunks). */
export async function pointChunks(repo: Repository, m: RestorePointManifest, signal?: AbortSignal): Promise<Set<string>> {
  const out = new Set<string>();
  await addPointChunks(repo, m, out, { signal });
  return out;
}
