// One DiskManifest → one disk file: a dynamic VHDX of the recorded geometry (or a sparse
// raw image), zero slices never written (they stay unallocated), the chunk list read one
// segment at a time, chunks loaded in parallel ahead of the writer, and consecutive slices coalesced into large writes that
// bypass the page cache (O_DIRECT, where the file system has it), several in flight while the next batch fills.

import { open } from 'node:fs/promises';
import type { ByteRange } from '../disk/disk.ts';
import { alignedBuffer, DirectWriter } from '../disk/file-io.ts';
import { HvError, throwIfAborted, wrapError } from '../errors.ts';
import type { Repository } from '../repo/index.ts';
import { diskWindows, type SliceWindow } from '../repo/manifest-chunks.ts';
import type { DiskManifest, SliceRef, SplitSlice } from '../repo/manifest-types.ts';
import { isSplit, PIECE_SIZE, sliceChunkIds } from '../repo/manifest-segments.ts';
import { createVhdx } from '../vhdx/index.ts';

/**
 * Bytes per write batch, and batches: one fills while the others are being written, side by
 * side (Disk.writeAllocated). Two batches of 8 MiB wrote one at a time, and the disk waited for
 * each (a direct write completes only once the device has it; here a VM's, whose host takes
 * it). Four of 4 MiB keep the same 16 MiB and three writes in flight: a cold restore of a
 * 30-point repository took 4.5–5.1 s against 4.8–6.5 s, faster in 5 of 5 alternations, peak
 * RSS the same. (Four of 8 MiB: as fast, 25 MB more RSS.)
 */
export const WRITE_BYTES = 4 * 1024 * 1024;
export const WRITE_BATCHES = 4;

interface Sink {
  /** Data is about to go to `ranges` (one window of slices): a VHDX allocates their blocks in one go. */
  prepare?(ranges: ByteRange[]): Promise<void>;
  /**
   * Several run at once, each to its own range within the ranges prepared. A range of the
   * new file never written reads as zeros (a raw file's truncated extension; a VHDX block
   * preallocated in the sparse extension of the file), so the zero pieces of split slices
   * are left out, not written as zeros.
   */
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
  return withWriteback({ prepare: (ranges) => disk.preallocate(ranges), write: (buf, offset) => disk.writeAllocated(buf, offset), close: () => disk.close() }, () => disk.flush(), writebackBytes);
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

/** Bytes of a restored disk written as zeros because what held them did not load (allowDamaged). */
export interface DamagedRange {
  disk: string;
  offset: number;
  length: number;
  /** The chunk that did not load, or the segment (its index) whose whole window is unknown. */
  chunk?: string;
  segment?: number;
  problem: string;
}

export interface RestoreDiskOptions {
  signal?: AbortSignal;
  /**
   * Set: a chunk or segment that does not load is not an error. Its bytes are written as
   * zeros (the disk stays a valid VHDX) and each such range is added here, for the caller to
   * report. Unset (the default), the restore fails on the first one, as before.
   */
  damaged?: DamagedRange[];
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

/** Where a split slice takes one of its chunks: from the window's stream, or kept from an earlier split slice; and whether to keep it for a later one. */
export interface PieceSource {
  id: string;
  fromStream: boolean;
  keep: boolean;
}

/** Decoded piece chunks kept across split slices of a window at most (a bound for a window of many slices sharing chunks far apart). */
export const MAX_KEPT_PIECE_CHUNKS = 32;

/**
 * The chunks window `w` reads, in slice order, and per split slice (by index in the window)
 * where each of its distinct chunks comes from: a chunk that split slices share (their
 * unchanged pieces point into the same earlier chunk, or equal pieces deduplicated) is
 * decoded once per window and kept until its last split slice, up to MAX_KEPT_PIECE_CHUNKS
 * at a time (past that it is read again). Whole slices read their chunk each time, as before.
 */
export function windowChunkPlan(refs: readonly SliceRef[]): { ids: string[]; pieces: Map<number, PieceSource[]> } {
  const last = new Map<string, number>();
  refs.forEach((r, j) => { if (isSplit(r)) for (const id of sliceChunkIds(r)) last.set(id, j); });
  const ids: string[] = [];
  const pieces = new Map<number, PieceSource[]>();
  const kept = new Set<string>();
  refs.forEach((r, j) => {
    if (!isSplit(r)) {
      ids.push(...sliceChunkIds(r));
      return;
    }
    const sources: PieceSource[] = [];
    for (const id of sliceChunkIds(r)) {
      const fromStream = !kept.has(id);
      if (fromStream) ids.push(id);
      const keep = last.get(id)! > j && (kept.has(id) || kept.size < MAX_KEPT_PIECE_CHUNKS);
      if (keep) kept.add(id);
      else kept.delete(id);
      sources.push({ id, fromStream, keep });
    }
    pieces.set(j, sources);
  });
  return { ids, pieces };
}

/**
 * Decoded chunks kept for their next slice when a window holds a chunk more than once: the
 * bench disk's 4,916 data slices hold 4,160 distinct chunks, and each repeat was read from
 * its pack and hashed again.
 */
export const KEEP_REPEATS = 32 * 1024 * 1024;

/** A chunk of the window's stream: its bytes, or (allowDamaged) why it did not load. */
type StreamChunk = { id: string; data: Buffer; error?: undefined } | { id: string; data?: undefined; error: HvError };

/**
 * The chunks of window `w` (windowChunkPlan), loaded and decoded ahead of the writer; with
 * `settled`, one that does not load comes as its error instead of ending the stream.
 */
function windowChunks(repo: Repository, w: SliceWindow, signal: AbortSignal | undefined, settled: boolean): AsyncIterator<StreamChunk> {
  const ids = windowChunkPlan(w.refs).ids;
  const opts = { signal, keepRepeats: KEEP_REPEATS };
  return (settled ? repo.readChunksSettled(ids, opts) : repo.readChunks(ids, opts))[Symbol.asyncIterator]();
}

/**
 * Fill `out` (the slice's bytes) from the pieces of split slice `s`: zero pieces as zeros,
 * every other one copied out of its chunk, each distinct chunk taken once from `next` in
 * sliceChunkIds order. A piece past the slice's end, or reaching past its chunk's end, is
 * ERR_CORRUPT naming `what` and the chunk.
 */
export async function assembleSlice(s: SplitSlice, out: Buffer, next: () => Promise<Buffer>, release: (b: Buffer) => void, what: string): Promise<void> {
  // Indexed loops, not entries(): a restore assembles every split slice of its disk, and the
  // iterators and [index, piece] pairs were the largest part of its main thread's garbage.
  const pieces = s.pieces;
  for (let q = 0; q < pieces.length; q++) {
    const p = pieces[q];
    if (p && q * PIECE_SIZE >= out.length) throw new HvError('ERR_CORRUPT', `${what}: piece ${q} (chunk ${p.id}) starts past the slice's ${out.length} bytes`, { target: p.id });
    // Only the zero pieces (and anything past the last piece) are zeroed: the others are
    // overwritten below, and zeroing whole slices first was a restore's largest memset.
    if (!p) out.fill(0, Math.min(out.length, q * PIECE_SIZE), Math.min(out.length, (q + 1) * PIECE_SIZE));
  }
  out.fill(0, Math.min(out.length, pieces.length * PIECE_SIZE));
  for (const id of sliceChunkIds(s)) {
    const data = await next();
    try {
      for (let q = 0; q < pieces.length; q++) {
        const p = pieces[q];
        if (p?.id !== id) continue;
        const len = Math.min(PIECE_SIZE, out.length - q * PIECE_SIZE);
        if (p.offset + len > data.length) throw new HvError('ERR_CORRUPT', `${what}: piece ${q} takes bytes ${p.offset}..${p.offset + len} of chunk ${id}, which has ${data.length}`, { target: id });
        data.copy(out, q * PIECE_SIZE, p.offset, p.offset + len);
      }
    } finally {
      release(data);
    }
  }
}

/**
 * Write the disk to `path` (which must not exist); returns the bytes of its data slices (the
 * zero pieces of split slices, left as holes, included). The chunk list is read one window
 * (segment) at a time, the next segment loaded meanwhile.
 */
export async function restoreDisk(repo: Repository, d: DiskManifest, path: string, opts: RestoreDiskOptions = {}): Promise<number> {
  const every = opts.writebackBytes ?? WRITEBACK_BYTES;
  const size = Math.max(WRITE_BYTES, d.chunkSize);
  const aligned = opts.directWrites !== false ? Array.from({ length: WRITE_BATCHES }, () => alignedBuffer(size)) : [];
  const direct = aligned.length > 0 && aligned.every((b) => b !== undefined);
  const batches = direct ? aligned as Buffer[] : Array.from({ length: WRITE_BATCHES }, () => Buffer.allocUnsafe(size));
  const damaged = opts.damaged;
  const zeroed = (offset: number, length: number, what: { chunk?: string; segment?: number }, err: HvError) => {
    const last = damaged!.at(-1);
    if (last && last.chunk === what.chunk && last.segment === what.segment && last.offset + last.length === offset) last.length += length;
    else damaged!.push({ disk: d.key, offset, length, ...what, problem: err.message });
  };
  const windowFailed = damaged && ((w: SliceWindow, err: HvError) => {
    const offset = w.first * d.chunkSize;
    zeroed(offset, Math.min(w.refs.length * d.chunkSize, d.virtualSize - offset), { segment: w.k }, err);
  });
  const windows = diskWindows(repo, opts.pointId ?? '(unnamed)', d, opts.signal, windowFailed);
  // Ask for the first window's chunks before creating the file, so that starting the
  // decoding workers (~0.2 s) overlaps creating it.
  let chunks: AsyncIterator<StreamChunk> | undefined;
  const starting = windows.next().then((w) => {
    if (!w.done) chunks = windowChunks(repo, w.value, opts.signal, damaged !== undefined);
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
  // The write in flight from each batch: a batch is filled again only once it is done.
  const writing = new Map<Buffer, Promise<void>>();
  // Piece chunks decoded for one split slice and kept for a later one in the same window.
  const kept = new Map<string, Buffer>();
  // allowDamaged: chunks of this window that did not load (their pieces read as zeros).
  const bad = new Map<string, HvError>();
  let zeros: Buffer | undefined;
  const releaseKept = () => {
    for (const b of kept.values()) repo.pool.release(b);
    kept.clear();
    bad.clear();
  };
  try {
    let batch = batches[0]!;
    let batchOffset = -1;
    let batchLen = 0;
    // Zero pieces of split slices in this batch, as [start, end) pairs within it, joined
    // when they touch: not written (see Sink.write).
    const holes: number[] = [];
    const flush = async () => {
      if (batchLen === 0) return;
      const len = batchLen, from = batch, at = batchOffset;
      const parts: Promise<void>[] = [];
      let pos = 0;
      for (let h = 0; h <= holes.length; h += 2) {
        const end = h < holes.length ? holes[h]! : len;
        if (end > pos) parts.push(sink.write(from.subarray(pos, end), at + pos));
        pos = h < holes.length ? holes[h + 1]! : len;
      }
      holes.length = 0;
      // Settled only once every part has: the batch is not filled again while one still writes from it.
      const w = Promise.allSettled(parts).then((settled) => {
        for (const r of settled) if (r.status === 'rejected') throw r.reason;
        written += len;
        opts.onBytes?.(len);
      });
      w.catch(() => {}); // awaited before its batch fills again, or below
      writing.set(from, w);
      batch = batches[(batches.indexOf(from) + 1) % batches.length]!;
      batchLen = 0;
      // A failed write ends the restore here, at most a few batches after it.
      await writing.get(batch);
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
      chunks ??= windowChunks(repo, w, opts.signal, damaged !== undefined);
      await sink.prepare?.(ranges);
      const { pieces } = windowChunkPlan(w.refs);
      const nextChunk = async (i: number): Promise<StreamChunk> => {
        const got = await chunks!.next();
        throwIfAborted(opts.signal);
        if (got.done) throw new HvError('ERR_INTERNAL', `restore ${d.fileName}: the chunk stream ended before slice ${i}`);
        return got.value;
      };
      for (let j = 0; j < w.refs.length; j++) {
        const ref = w.refs[j]!;
        if (!ref) continue;
        const i = w.first + j;
        const offset = i * d.chunkSize;
        const expected = Math.min(d.chunkSize, d.virtualSize - offset);
        if (batchLen > 0 && (batchOffset + batchLen !== offset || batchLen + expected > batch.length)) await flush();
        if (batchLen === 0) batchOffset = offset;
        if (typeof ref === 'string') {
          const { data, error } = await nextChunk(i);
          if (!data) {
            batch.fill(0, batchLen, batchLen + expected);
            zeroed(offset, expected, { chunk: ref }, error);
          } else {
            if (data.length !== expected) throw wrapError(new Error(`chunk ${ref} has ${data.length} bytes, slice ${i} needs ${expected}`), `restore ${d.fileName}`, ref);
            data.copy(batch, batchLen);
            repo.pool.release(data);
          }
        } else {
          const sources = pieces.get(j)!;
          let k = 0;
          // A chunk that did not load gives zeros to every piece that takes bytes from it.
          const zeroPieces = (id: string, err: HvError) => {
            ref.pieces.forEach((p, q) => { if (p?.id === id) zeroed(offset + q * PIECE_SIZE, Math.min(PIECE_SIZE, expected - q * PIECE_SIZE), { chunk: id }, err); });
            return (zeros ??= Buffer.alloc(d.chunkSize));
          };
          const take = async () => {
            const src = sources[k]!;
            if (!src.fromStream) return bad.has(src.id) ? zeroPieces(src.id, bad.get(src.id)!) : kept.get(src.id)!;
            const got = await nextChunk(i);
            if (got.data) return got.data;
            bad.set(src.id, got.error);
            return zeroPieces(src.id, got.error);
          };
          const done = (data: Buffer) => {
            const src = sources[k++]!;
            if (src.keep) {
              kept.set(src.id, repo.pool.own(data));
              return;
            }
            kept.delete(src.id);
            repo.pool.release(data);
          };
          await assembleSlice(ref, batch.subarray(batchLen, batchLen + expected), take, done, `restore ${d.fileName}: slice ${i}`);
          for (let q = 0; q * PIECE_SIZE < expected; q++) {
            if (q < ref.pieces.length && ref.pieces[q]) continue;
            const a = batchLen + q * PIECE_SIZE, b = batchLen + Math.min(expected, (q + 1) * PIECE_SIZE);
            if (holes.length > 0 && holes[holes.length - 1] === a) holes[holes.length - 1] = b;
            else holes.push(a, b);
          }
        }
        batchLen += expected;
      }
      await chunks.return?.(undefined);
      chunks = undefined;
      releaseKept();
    }
    await flush();
    await Promise.all(writing.values());
  } finally {
    await chunks?.return?.(undefined).catch(() => {});
    await windows.return(undefined).catch(() => {});
    await Promise.allSettled(writing.values());
    releaseKept();
    await sink.close();
  }
  return written;
}
