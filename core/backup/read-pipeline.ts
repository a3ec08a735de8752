// Reads planned runs of a frozen disk with several large reads in flight and hands each
// chunk-sized slice to the repository's chunk writer (which hashes and compresses on
// worker threads), so disk reads, hashing and compression overlap and both cores work.
// Memory stays bounded: `inFlight` runs of `runBytes` plus the writer's capacity.

import type { Disk } from '../disk/disk.ts';
import { throwIfAborted, wrapError } from '../errors.ts';
import type { ChunkWriter, PutResult } from '../repo/index.ts';
import { isAllZero } from '../repo/index.ts';
import type { ChunkRef } from '../repo/manifest-types.ts';
import type { ReadRun, SlicePlan } from './plan.ts';

export interface PipelineOptions {
  chunkSize: number;
  signal?: AbortSignal;
  /** Reads kept in flight ahead of the writer. */
  inFlight?: number;
  /** Called after each run is handed over, with the bytes read by it. */
  onRead?: (bytes: number) => void;
}

/** Fill every 'read' slice of `plan` with its chunk id (or null for an all-zero slice). */
export async function readAndStore(disk: Disk, plan: SlicePlan[], runs: ReadRun[], writer: ChunkWriter, opts: PipelineOptions): Promise<ChunkRef[]> {
  const refs: ChunkRef[] = plan.map((p) => (p === 'read' ? null : p));
  const window = opts.inFlight ?? 4;
  const cs = opts.chunkSize;
  // Each slice is read into its own chunk-sized buffer from a pool: a buffer posted to a
  // worker is copied whole, so it must not be a view into something larger, and it is
  // free again as soon as submit() resolves — no garbage, flat memory.
  const free: Buffer[] = [];
  const take = () => free.pop() ?? Buffer.allocUnsafeSlow(cs);
  const reads: Promise<Buffer[]>[] = [];
  const pending: Promise<void>[] = [];
  let next = 0;
  const startRead = () => {
    const run = runs[next++]!;
    const slices = Array.from({ length: run.count }, (_, k) => take().subarray(0, Math.min(cs, run.offset + run.length - (run.offset + k * cs))));
    const p = Promise.all(slices.map((b, k) => disk.read(b, run.offset + k * cs))).then(() => slices, (err: unknown) => {
      throw wrapError(err, `read ${run.length} bytes at ${run.offset} of ${disk.path}`, disk.path);
    });
    p.catch(() => undefined);
    reads.push(p);
  };
  while (next < runs.length && reads.length < window) startRead();
  for (let r = 0; r < runs.length; r++) {
    throwIfAborted(opts.signal);
    const run = runs[r]!;
    const slices = await reads.shift()!;
    for (let k = 0; k < slices.length; k++) {
      const slice = slices[k]!;
      const idx = run.first + k;
      if (!isAllZero(slice)) {
        const { done } = await writer.submit(slice);
        const stored = done.then((res: PutResult) => { refs[idx] = res.id; });
        stored.catch(() => undefined); // observed by Promise.all below; avoid an unhandled rejection meanwhile
        pending.push(stored);
      }
      free.push(Buffer.from(slice.buffer, 0, cs));
    }
    if (next < runs.length) startRead();
    opts.onRead?.(run.length);
  }
  // flush() first: a new chunk is durable (and its `done` settles) only once its pack is stored.
  await writer.flush();
  await Promise.all(pending);
  return refs;
}
