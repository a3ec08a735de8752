// Copy one Disk into another, skipping known-zero extents and all-zero blocks, so
// zero ranges stay unallocated in a dynamic destination and holes in a raw one.
import type { ByteRange, Disk, DiskExtent } from '../../disk/disk.ts';
import { throwIfAborted } from '../../errors.ts';
import { MiB } from '../format/constants.ts';

export interface CopyOptions {
  /** Granularity of zero detection: the destination's block size (1 MiB for raw). */
  granularity: number;
  /** Bytes per read/write call. */
  chunkSize?: number;
  /** Chunks in flight (default 2). */
  parallel?: number;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
  /** Start a background flush of the destination every this many bytes written (0: never). */
  writebackBytes?: number;
}

/**
 * `parallel` workers each read a chunk and write it, so reads of the source overlap
 * writes of the destination; the writes themselves are serialised.
 */
export async function copyDisk(src: Disk, dst: Disk, opts: CopyOptions): Promise<{ dataBytes: number }> {
  const gran = opts.granularity;
  const chunk = Math.max(gran, Math.floor((opts.chunkSize ?? 32 * MiB) / gran) * gran);
  const zero = Buffer.alloc(gran);
  const it = chunks(await src.extents(), gran, chunk);
  let dataBytes = 0;
  // Writes go one at a time, in order: concurrent writes to one file contend for its lock.
  let writing: Promise<unknown> = Promise.resolve();
  const writeback = backgroundFlusher(dst, opts.writebackBytes ?? 64 * MiB);
  const worker = async () => {
    const buf = Buffer.allocUnsafe(chunk);
    for (let n = it.next(); !n.done; n = it.next()) {
      throwIfAborted(opts.signal);
      const piece = n.value;
      const b = buf.subarray(0, piece.length);
      await src.read(b, piece.offset);
      const w = writing.then(() => writeNonZeroRuns(dst, b, piece.offset, gran, zero));
      writing = w.catch(() => {});
      const written = await w;
      dataBytes += written;
      writeback.wrote(written);
      opts.onProgress?.(piece.offset + piece.length, src.size);
    }
  };
  try {
    await Promise.all(Array.from({ length: opts.parallel ?? 2 }, worker));
  } finally {
    await writeback.settle();
  }
  return { dataBytes };
}

/**
 * Flushes started (not awaited) as data accumulates, one at a time, so the kernel writes
 * back while we copy instead of all of it at the final fsync (restore does the same).
 */
function backgroundFlusher(dst: Disk, every: number): { wrote(n: number): void; settle(): Promise<void> } {
  let since = 0;
  let pending: Promise<void> | undefined;
  let failure: unknown;
  return {
    wrote(n) {
      if (failure) throw failure;
      since += n;
      if (every <= 0 || since < every || pending) return;
      since = 0;
      pending = dst.flush().catch((err: unknown) => { failure = err; }).finally(() => { pending = undefined; });
    },
    async settle() {
      await pending;
      if (failure) throw failure;
    },
  };
}

/** Data extents cut into chunks aligned to the granularity (a skipped piece is a whole destination block). */
function* chunks(extents: DiskExtent[], gran: number, chunk: number): Generator<ByteRange> {
  for (const ext of extents) {
    if (ext.kind === 'zero') continue;
    const end = ext.offset + ext.length;
    for (let pos = ext.offset; pos < end;) {
      const next = Math.min(end, Math.floor(pos / gran) * gran + chunk);
      yield { offset: pos, length: next - pos };
      pos = next;
    }
  }
}

/** Write the runs of `b` whose granule is not all zeros; returns the bytes written. */
async function writeNonZeroRuns(dst: Disk, b: Buffer, pos: number, gran: number, zero: Buffer): Promise<number> {
  let written = 0, runStart = -1;
  const flushRun = async (upTo: number) => {
    if (runStart < 0) return;
    await dst.write(b.subarray(runStart, upTo), pos + runStart);
    written += upTo - runStart;
    runStart = -1;
  };
  for (let o = 0; o < b.length;) {
    const granEnd = Math.min(b.length, Math.floor((pos + o) / gran) * gran + gran - pos);
    const isZero = b.subarray(o, granEnd).equals(zero.subarray(0, granEnd - o));
    if (isZero) await flushRun(o);
    else if (runStart < 0) runStart = o;
    o = granEnd;
  }
  await flushRun(b.length);
  return written;
}
