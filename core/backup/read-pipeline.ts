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
  const reads: Promise<Buffer>[] = [];
  const pending: Promise<void>[] = [];
  let next = 0;
  // Run buffers are reused: the writer copies a slice before submit() resolves.
  const free: Buffer[] = [];
  const maxRun = runs.reduce((a, r) => Math.max(a, r.length), 0);
  const startRead = () => {
    const run = runs[next++]!;
    const whole = free.pop() ?? Buffer.allocUnsafeSlow(maxRun);
    const buf = whole.subarray(0, run.length);
    const p = disk.read(buf, run.offset).then(() => buf, (err: unknown) => {
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
    for (let k = 0; k < run.count; k++) {
      const slice = buf.subarray(k * opts.chunkSize, Math.min((k + 1) * opts.chunkSize, buf.length));
      const idx = run.first + k;
      if (isAllZero(slice)) continue;
      // A view into the 8 MiB run buffer would be structured-cloned whole when posted to a
      // worker; an exact-size copy costs one memcpy of the slice.
      const { done } = await writer.submit(Buffer.from(slice));
      const stored = done.then((res: PutResult) => { refs[idx] = res.id; });
      stored.catch(() => undefined); // observed by Promise.all below; avoid an unhandled rejection meanwhile
      pending.push(stored);
    }
    free.push(Buffer.from(buf.buffer, 0, maxRun));
    if (next < runs.length) startRead();
    opts.onRead?.(run.length);
  }
  await Promise.all(pending);
  await writer.flush();
  return refs;
}
