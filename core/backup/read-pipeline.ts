// Reads planned runs of a frozen disk with several large reads in flight and hands each
// run's non-zero chunk slices to the repository's chunk writer in one go (it hashes and
// compresses them on a worker thread), so disk reads, hashing and compression overlap and
// both cores work. A run's buffer goes to the worker and comes back (never copied), then
// serves the next read. Memory stays bounded: `inFlight` reads plus the writer's capacity,
// each a run of at most `runBytes`.

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
  const window = opts.inFlight ?? 2;
  const cs = opts.chunkSize;
  const runBytes = runs.reduce((a, r) => Math.max(a, r.length), 0);
  // Run buffers fill their own ArrayBuffer (so they can be transferred to a worker) and are
  // reused: fresh 4 MiB buffers cost page faults on every touch.
  const free: Buffer[] = [];
  const take = () => free.pop() ?? Buffer.allocUnsafeSlow(runBytes);
  const giveBack = (b: Buffer) => { free.push(b); };
  const reads: Promise<Buffer>[] = [];
  const pending: Promise<void>[] = [];
  let next = 0;
  const startRead = () => {
    const run = runs[next++]!;
    const buf = take();
    const p = disk.read(buf.subarray(0, run.length), run.offset).then(() => buf, (err: unknown) => {
      free.push(buf);
      throw wrapError(err, `read ${run.length} bytes at ${run.offset} of ${disk.path}`, disk.path);
    });
    p.catch(() => undefined);
    reads.push(p);
  };
  while (next < runs.length && reads.length < window) startRead();
  for (let r = 0; r < runs.length; r++) {
    throwIfAborted(opts.signal);
    const run = runs[r]!;
    const buf = await reads.shift()!;
    const slices: { offset: number; length: number }[] = [];
    const idx: number[] = [];
    for (let k = 0; k < run.count; k++) {
      const offset = k * cs;
      const length = Math.min(cs, run.length - offset);
      if (isAllZero(buf.subarray(offset, offset + length))) continue;
      slices.push({ offset, length });
      idx.push(run.first + k);
    }
    if (slices.length === 0) {
      free.push(buf);
    } else {
      const { done } = await writer.submitRun(buf, slices, giveBack);
      done.forEach((d, j) => {
        const stored = d.then((res: PutResult) => { refs[idx[j]!] = res.id; });
        stored.catch(() => undefined); // observed by Promise.all below; avoid an unhandled rejection meanwhile
        pending.push(stored);
      });
    }
    if (next < runs.length) startRead();
    opts.onRead?.(run.length);
  }
  // flush() first: a new chunk is durable (and its `done` settles) only once its pack is stored.
  await writer.flush();
  await Promise.all(pending);
  return refs;
}
