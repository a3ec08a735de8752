// One DiskManifest → one disk file: a dynamic VHDX of the recorded geometry (or a sparse
// raw image), zero slices never written (they stay unallocated), the chunk list read one
// segment at a time, chunks loaded in parallel ahead of the writer, and consecutive slices coalesced into large writes that
// bypass the page cache (O_DIRECT, where the file system has it) while the next batch fills.

import { open } from 'node:fs/promises';
import type { ByteRange } from '../disk/disk.ts';
import { alignedBuffer, DirectWriter } from '../disk/file-io.ts';
import { HvError, throwIfAborted, wrapError } from '../errors.ts';
import type { Repository } from '../repo/index.ts';
import { diskWindows, type SliceWindow } from '../repo/manifest-chunks.ts';
import type { DiskManifest } from '../repo/manifest-types.ts';
import { createVhdx } from '../vhdx/index.ts';

export const WRITE_BYTES = 8 * 1024 * 1024;

interface Sink {
  /** Data is about to go to `ranges` (one window of slices): a VHDX allocates their blocks in one go. */
  prepare?(ranges: ByteRange[]): Promise<void>;
  write(buf: Buffer, offset: number): Promise<void>;
  close(): Promise<void>;
}

async function rawSink(path: string, size: number, writebackBytes: number, direct: boolean): Promise<Sink> {
  const fh = await open(path, 'wx');
  let dw: DirectWriter | undefined;
  try {
    await fh.truncate(size);
    if (direct) dw = await DirectWriter.open(path);
  } catch (err) {
    await fh.close();
    throw err;
  }
  return withWriteback({
    write: async (buf, offset) => {
      if (dw) return dw.write(fh, buf, offset);
      let done = 0;
      while (done < buf.length) done += (await fh.write(buf, done, buf.length - done, offset + done)).bytesWritten;
    },
    close: async () => {
      try {
        await dw?.close();
        await fh.sync();
      } finally {
        await fh.close();
      }
    },
  }, () => fh.datasync(), writebackBytes);
}

async function vhdxSink(path: string, d: DiskManifest, writebackBytes: number, direct: boolean): Promise<Sink> {
  const disk = await createVhdx(path, {
    size: d.virtualSize, type: 'dynamic', blockSize: d.blockSize,
    logicalSectorSize: d.logicalSectorSize as 512 | 4096, physicalSectorSize: d.physicalSectorSize as 512 | 4096,
    // The staging file is deleted if the run dies, so no flush per write call; close()
    // fsyncs once, before restore.ts moves it to its final name.
    durable: false,
    directWrites: direct,
  });
  // Every block that will hold data in the next window is known from its segment: one BAT
  // update per window (prepare), and the data writes go in place instead of one log
  // transaction each.
  return withWriteback({ prepare: (ranges) => disk.preallocate(ranges), write: (buf, offset) => disk.write(buf, offset), close: () => disk.close() }, () => disk.flush(), writebackBytes);
}

/** Bytes written between background flushes. */
export const WRITEBACK_BYTES = 64 * 1024 * 1024;

/**
 * Start a flush (not awaited) every WRITEBACK_BYTES, one at a time, so the kernel writes
 * back while we decode instead of all at the final fsync: the staging file is not durable
 * per write (durable: false), and 1.5 GiB of dirty pages flushed at close took longer than
 * the decoding itself. close() waits for it and then syncs once more. With direct writes
 * there is next to nothing to write back (it measured the same with and without); it
 * stays for the buffered fallback.
 */
function withWriteback(sink: Sink, flush: () => Promise<void>, every: number): Sink {
  let since = 0;
  let pending: Promise<void> | undefined;
  let failure: unknown;
  return {
    prepare: sink.prepare && ((ranges) => sink.prepare!(ranges)),
    write: async (buf, offset) => {
      if (failure) throw failure;
      await sink.write(buf, offset);
      since += buf.length;
      if (since >= every && !pending) {
        since = 0;
        pending = flush().catch((err: unknown) => { failure = err; }).finally(() => { pending = undefined; });
      }
    },
    close: async () => {
      await pending;
      await sink.close();
      if (failure) throw failure;
    },
  };
}

export interface RestoreDiskOptions {
  signal?: AbortSignal;
  onBytes?: (n: number) => void;
  writebackBytes?: number;
  /** false: buffered writes only, as before direct writes (tests, benchmarks). Default true. */
  directWrites?: boolean;
  /** The restore point's id, for errors about its segments. */
  pointId?: string;
}

/** Data ranges of a window: its non-null slices, consecutive ones joined. */
function windowRanges(w: SliceWindow, chunkSize: number): ByteRange[] {
  const ranges: ByteRange[] = [];
  w.refs.forEach((c, j) => {
    if (!c) return;
    const offset = (w.first + j) * chunkSize, last = ranges[ranges.length - 1];
    if (last && last.offset + last.length === offset) last.length += chunkSize;
    else ranges.push({ offset, length: chunkSize });
  });
  return ranges;
}

/**
 * Decoded chunks kept for their next slice when a window holds a chunk more than once: the
 * bench disk's 4,916 data slices hold 4,160 distinct chunks, and each repeat was read from
 * its pack and hashed again.
 */
export const KEEP_REPEATS = 32 * 1024 * 1024;

/** The chunks of window `w` in slice order, loaded and decoded ahead of the writer. */
function windowChunks(repo: Repository, w: SliceWindow, signal?: AbortSignal): AsyncIterator<{ id: string; data: Buffer }> {
  const ids: string[] = [];
  for (const c of w.refs) if (c) ids.push(c);
  return repo.readChunks(ids, { signal, keepRepeats: KEEP_REPEATS })[Symbol.asyncIterator]();
}

/**
 * Write the disk to `path` (which must not exist); returns the bytes of data written. The
 * chunk list is read one window (segment) at a time, the next segment loaded meanwhile.
 */
export async function restoreDisk(repo: Repository, d: DiskManifest, path: string, opts: RestoreDiskOptions = {}): Promise<number> {
  const every = opts.writebackBytes ?? WRITEBACK_BYTES;
  // Two batches: one is written while the next fills (more, or larger ones, measured no faster).
  const size = Math.max(WRITE_BYTES, d.chunkSize);
  const aligned = opts.directWrites !== false ? [alignedBuffer(size), alignedBuffer(size)] : [];
  const direct = aligned.length === 2 && aligned.every((b) => b !== undefined);
  const batches = direct ? aligned as Buffer[] : [Buffer.allocUnsafe(size), Buffer.allocUnsafe(size)];
  const windows = diskWindows(repo, opts.pointId ?? '(unnamed)', d, opts.signal);
  // Ask for the first window's chunks before creating the file, so that starting the
  // decoding workers (~0.2 s) overlaps creating it.
  let chunks: AsyncIterator<{ id: string; data: Buffer }> | undefined;
  const starting = windows.next().then((w) => {
    if (!w.done) chunks = windowChunks(repo, w.value, opts.signal);
    return w;
  });
  starting.catch(() => {}); // awaited below, or dropped with the generator
  let sink: Sink;
  try {
    sink = d.format === 'vhdx' ? await vhdxSink(path, d, every, direct) : await rawSink(path, d.virtualSize, every, direct);
  } catch (err) {
    await starting.catch(() => {});
    await chunks?.return?.(undefined).catch(() => {});
    await windows.return(undefined).catch(() => {});
    throw err;
  }
  let written = 0;
  let writing: Promise<void> | undefined;
  try {
    let batch = batches[0]!;
    let batchOffset = -1;
    let batchLen = 0;
    const flush = async () => {
      if (batchLen === 0) return;
      // The previous write used the other batch: once it is done that one is free, and
      // writes stay one at a time, in order.
      await writing;
      const len = batchLen;
      writing = sink.write(batch.subarray(0, len), batchOffset).then(() => {
        written += len;
        opts.onBytes?.(len);
      });
      writing.catch(() => {}); // awaited by the next flush, or below
      batch = batch === batches[0] ? batches[1]! : batches[0]!;
      batchLen = 0;
    };
    for (let next = await starting; !next.done; next = await windows.next()) {
      const w = next.value;
      const ranges = windowRanges(w, d.chunkSize);
      if (ranges.length === 0) {
        // All zeros: nothing to load or write (the first window's chunk stream was empty).
        await chunks?.return?.(undefined);
        chunks = undefined;
        continue;
      }
      chunks ??= windowChunks(repo, w, opts.signal);
      await sink.prepare?.(ranges);
      for (let j = 0; j < w.refs.length; j++) {
        const id = w.refs[j];
        if (!id) continue;
        const got = await chunks.next();
        throwIfAborted(opts.signal);
        if (got.done) throw new HvError('ERR_INTERNAL', `restore ${d.fileName}: the chunk stream ended before slice ${w.first + j}`);
        const { data } = got.value;
        const i = w.first + j;
        const offset = i * d.chunkSize;
        const expected = Math.min(d.chunkSize, d.virtualSize - offset);
        if (data.length !== expected) throw wrapError(new Error(`chunk ${id} has ${data.length} bytes, slice ${i} needs ${expected}`), `restore ${d.fileName}`, id);
        if (batchLen > 0 && (batchOffset + batchLen !== offset || batchLen + data.length > batch.length)) await flush();
        if (batchLen === 0) batchOffset = offset;
        data.copy(batch, batchLen);
        batchLen += data.length;
        repo.pool.release(data);
      }
      await chunks.return?.(undefined);
      chunks = undefined;
    }
    await flush();
    await writing;
  } finally {
    await chunks?.return?.(undefined).catch(() => {});
    await windows.return(undefined).catch(() => {});
    await writing?.catch(() => {});
    await sink.close();
  }
  return written;
}
