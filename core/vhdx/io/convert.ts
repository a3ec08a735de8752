// Copy one Disk into another, skipping known-zero extents and all-zero blocks, so
// zero ranges stay unallocated in a dynamic destination and holes in a raw one.
import type { Disk } from '../../disk/disk.ts';
import { throwIfAborted } from '../../errors.ts';
import { MiB } from '../format/constants.ts';

export interface CopyOptions {
  /** Granularity of zero detection: the destination's block size (1 MiB for raw). */
  granularity: number;
  /** Bytes per read/write call. */
  chunkSize?: number;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
}

export async function copyDisk(src: Disk, dst: Disk, opts: CopyOptions): Promise<{ dataBytes: number }> {
  const gran = opts.granularity;
  const chunk = Math.max(gran, Math.floor((opts.chunkSize ?? 32 * MiB) / gran) * gran);
  const buf = Buffer.allocUnsafe(chunk);
  const zero = Buffer.alloc(gran);
  let dataBytes = 0;
  for (const ext of await src.extents()) {
    if (ext.kind === 'zero') continue;
    const end = ext.offset + ext.length;
    // Align chunks to the granularity so a skipped piece is a whole destination block.
    for (let pos = ext.offset; pos < end;) {
      throwIfAborted(opts.signal);
      const next = Math.min(end, (Math.floor(pos / gran) * gran) + chunk);
      const b = buf.subarray(0, next - pos);
      await src.read(b, pos);
      dataBytes += await writeNonZeroRuns(dst, b, pos, gran, zero);
      opts.onProgress?.(next, src.size);
      pos = next;
    }
  }
  return { dataBytes };
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
