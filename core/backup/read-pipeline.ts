// Reads planned runs of a frozen disk with several large reads in flight and hands each
// run's non-zero chunk slices to the repository's chunk writer in one go (it hashes and
// compresses them on a worker thread), so disk reads, hashing and compression overlap and
// both cores work. A run's buffer goes to the worker and comes back (never copied), then
// serves the next read. The chunk ids are collected one window (segment) at a time and
// stored as segment chunks. Memory stays bounded whatever the disk size: `inFlight` reads
// plus the writer's capacity, each a run of at most `runBytes`, and at most
// segmentStoreLimits.maxOpenBytes of windows waiting for their chunk ids. A window's ids come
// back once its chunks are hashed and deduplicated or copied into a pack, not once durable:
// the data and the segments become durable at the writers' flush before the manifest.

import type { Disk } from '../disk/disk.ts';
import { HvError, throwIfAborted } from '../errors.ts';
import type { ChunkWriter, PutResult } from '../repo/index.ts';
import type { Slice } from '../repo/chunk-pool.ts';
import { isAllZero } from '../repo/index.ts';
import { BufferBin } from '../repo/buffer-bin.ts';
import type { ChunkRef, PieceRef, SliceRef, SplitSlice } from '../repo/manifest-types.ts';
import { encodeSegment, isSplit, PIECE_SIZE, SAME_AS_BEFORE, type SegmentView, type SliceEntry, type SliceSource } from '../repo/manifest-segments.ts';
import { isSplitPlan, type ReadRun, type SlicePlan } from './plan.ts';

export interface PipelineOptions {
  chunkSize: number;
  signal?: AbortSignal;
  /** Where segments are stored (default: the writer of the data). */
  segmentWriter?: ChunkWriter;
  /** Reads kept in flight ahead of the writer. */
  inFlight?: number;
  /** Called after each batch is handed over, with the bytes read by it. */
  onRead?: (bytes: number) => void;
  /** Scattered runs are read into one buffer of up to this many bytes (default: the largest run). */
  batchBytes?: number;
  /**
   * For windows with `splitFrom`: where the previous point holds the pieces of these split
   * slices, by their bytes' chunk id (disk-backup.ts pieceAliases). Asked per read batch, beside
   * its disk read.
   */
  aliasesFor?: (prevs: SliceRef[]) => Promise<ReadonlyMap<string, PieceRef>>;
}

/** Runs read into one buffer and handed to the writer together. */
interface Batch {
  runs: ReadRun[];
  bytes: number;
}

/**
 * Group runs into batches of at most `maxBytes`: a changed-blocks backup reads hundreds of
 * scattered one-chunk runs, and one message, one buffer and one read window slot per chunk
 * made it latency-bound (measured: ~600 ms for 100 MB on the bench disk's 1 % change).
 */
export function batchRuns(runs: readonly ReadRun[], maxBytes: number): Batch[] {
  const out: Batch[] = [];
  let cur: Batch | undefined;
  for (const r of runs) {
    if (!cur || cur.bytes + r.length > maxBytes) {
      cur = { runs: [], bytes: 0 };
      out.push(cur);
    }
    cur.runs.push(r);
    cur.bytes += r.length;
  }
  return out;
}

/** One window (segment) of a disk to store: its plan and the reads it needs. */
export interface WindowInput {
  /** Segment index. */
  k: number;
  /** plan[j] is slice first + j. */
  first: number;
  plan: SlicePlan[];
  runs: ReadRun[];
  /** The previous point's segment that the plan's SAME_AS_BEFORE slices come from. */
  from?: SegmentView;
  /**
   * A scan's previous slices (slice j is slice first + j): a piece read of a slice split there
   * whose id is one of that slice's previous pieces' bytes (PipelineOptions.aliasesFor) is not
   * stored but points where those bytes are.
   */
  splitFrom?: SliceSource;
}

/** A window whose segment is not encoded yet: its chunk ids arrive as its chunks are staged (ChunkWriter `known`). */
interface OpenWindow {
  k: number;
  first: number;
  /** A split slice's read pieces are null until their chunks are stored. */
  refs: SliceEntry[];
  from?: SegmentView;
  splitFrom?: SliceSource;
  /** Batches not yet handed to the writer. */
  batchesLeft: number;
  pending: Promise<void>[];
  /** openWindowBytes of its plan, counted while it is open. */
  bytes: number;
  /** Set once every chunk id is known: the encoded segment (null: all slices zero). */
  encoded?: Buffer | null;
  failed?: unknown;
  /** Settles once `encoded` or `failed` is set (after the window is closed). */
  ready?: Promise<void>;
}

/**
 * Memory (estimated) that windows whose chunk ids are not all known yet may hold at once; past
 * it, reading waits until they close. Ids come back once chunks are staged, so only windows
 * whose batches are still with the writer are open: a backstop, as a window costs ~33 KB (zeros
 * and one new chunk) to ~400 KB (4096 ids reused from the previous point). (When ids came back
 * only with durable packs, this bound flushed the writer, storing smaller packs.) Bytes, not
 * windows, for those two extremes. Tests lower it.
 */
export const segmentStoreLimits = { maxOpenBytes: 16 * 1024 * 1024 };

/** #storeByPieces calls at once; reading waits for one to end past this. */
const BY_PIECES_AT_ONCE = 2;

/** What an open window holds, roughly: its refs array, and an id string or a pending promise per data slice (per piece of a split one). */
function openWindowBytes(plan: readonly SlicePlan[]): number {
  let data = 0;
  for (const p of plan) {
    if (p === null || p === SAME_AS_BEFORE) continue;
    if (isSplitPlan(p)) data += 1 + p.split.length;
    else if (isSplit(p)) data += 1 + p.pieces.length;
    else data++;
  }
  return 64 + plan.length * 8 + data * 96;
}

/** A window's initial slice list: what is read is null until stored; a split slice's read pieces too. */
function initialRefs(plan: readonly SlicePlan[]): SliceEntry[] {
  return plan.map((p) => {
    if (p === 'read') return null;
    if (isSplitPlan(p)) return { pieces: p.split.map((q) => (q === 'read' ? null : q)) };
    return p;
  });
}

/**
 * Read buffers given back, for every later read of this process, not only this disk's: a
 * long-lived engine (the bridge) made ~40 MB of new ones per tracked incremental, ~5,000 page
 * faults of its ~7,000 (perf -e page-faults), each a first touch by the kernel's pread.
 * At most 64 MiB are kept.
 */
const readBuffers = new BufferBin<Buffer>({ maxBytes: 64 * 1024 * 1024 });

function takeReadBuffer(size: number): Buffer {
  return readBuffers.take(size, size) ?? Buffer.allocUnsafeSlow(size);
}

function giveReadBuffer(b: Buffer): void {
  readBuffers.give(b);
}

/** Let go of the read buffers kept for reuse (a long-lived process gone idle); returns their bytes. */
export function dropReadBuffers(): number {
  return readBuffers.drain().reduce((a, b) => a + b.length, 0);
}

/**
 * Reads a disk window by window (segments of SEGMENT_SLICES slices) with `inFlight` large
 * reads ahead of the writer, across window boundaries, and stores each window's chunk ids
 * as a segment chunk once they are all known (through `segmentWriter`, else the same writer). Segments are
 * submitted from the caller's flow only (add / finish), never while the writer flushes.
 */
export class SegmentedStore {
  readonly #disk: Disk;
  readonly #writer: ChunkWriter;
  readonly #opts: PipelineOptions;
  readonly #bufBytes: number;
  readonly #reads: { batch: Batch; w: OpenWindow; buf: Promise<Buffer>; aliases?: Promise<ReadonlyMap<string, PieceRef>> }[] = [];
  readonly #open: OpenWindow[] = [];
  #openBytes = 0;
  readonly #chunkId: (plain: Buffer) => string;
  readonly #segments: ChunkRef[] = [];
  readonly #stored: Promise<void>[] = [];
  /** #storeByPieces calls running: each holds a copy of its slices and reads their previous chunks. */
  readonly #byPieces = new Set<Promise<void>>();
  #dataSlices = 0;

  /** `chunkId`: the repository's chunk id function (a segment's id is needed before it is durable). */
  constructor(disk: Disk, writer: ChunkWriter, chunkId: (plain: Buffer) => string, opts: PipelineOptions) {
    this.#disk = disk;
    this.#writer = writer;
    this.#chunkId = chunkId;
    this.#opts = opts;
    this.#bufBytes = Math.max(opts.batchBytes ?? opts.chunkSize, opts.chunkSize);
  }

  /** Window k keeps the previous restore point's segment `id` (nothing in it changed). */
  reuse(k: number, id: ChunkRef, dataSlices: number): void {
    this.#segments[k] = id;
    this.#dataSlices += dataSlices;
  }

  /** Read and store window `input`; resolves once its reads are started (some may still be in flight). */
  async add(input: WindowInput): Promise<void> {
    const w: OpenWindow = {
      k: input.k, first: input.first, refs: initialRefs(input.plan), from: input.from, splitFrom: input.splitFrom, batchesLeft: 0, pending: [],
      bytes: openWindowBytes(input.plan) + (input.from?.bytes.length ?? 0),
    };
    this.#open.push(w);
    this.#openBytes += w.bytes;
    const batches = batchRuns(input.runs, this.#bufBytes);
    w.batchesLeft = batches.length;
    if (batches.length === 0) this.#close(w);
    for (const batch of batches) {
      while (this.#reads.length >= (this.#opts.inFlight ?? 2)) await this.#drainOne();
      this.#startRead(batch, w);
    }
    await this.#submitReady();
    if (this.#openBytes > segmentStoreLimits.maxOpenBytes) await this.#settle();
  }

  /**
   * Every chunk handed to the writer and every segment submitted: the segment ids in order, the
   * count of data slices, and `durable`, which settles once every segment is durable. Neither the
   * data chunks nor the last segments are durable before their writers' next flush (the
   * caller's, before the manifest: the engine flushes both writers once, after the last disk), so
   * the last data pack is shared with the next disk and the metadata pack is stored beside it
   * instead of after it.
   */
  async finish(): Promise<{ segments: ChunkRef[]; dataSlices: number; durable: Promise<void> }> {
    await this.#settle();
    const durable = Promise.all(this.#stored).then(() => {});
    durable.catch(() => {}); // the caller awaits it
    return { segments: this.#segments, dataSlices: this.#dataSlices, durable };
  }

  /** Hand every read to the writer, learn every chunk id, submit every open window's segment. */
  async #settle(): Promise<void> {
    while (this.#reads.length > 0) await this.#drainOne();
    await Promise.all(this.#open.map((w) => w.ready));
    await this.#submitReady();
  }

  #startRead(batch: Batch, w: OpenWindow): void {
    const buf = takeReadBuffer(this.#bufBytes);
    let pos = 0;
    const p = Promise.all(batch.runs.map((run) => {
      const at = pos;
      pos += run.length;
      // Disk.read's errors name the disk, the offset and the length already.
      return this.#disk.read(buf.subarray(at, at + run.length), run.offset);
    })).then(() => buf, (err: unknown) => {
      giveReadBuffer(buf);
      throw err;
    });
    p.catch(() => undefined);
    const aliases = this.#aliasesOf(batch, w);
    aliases?.catch(() => undefined); // awaited when the batch is handed over
    this.#reads.push({ batch, w, buf: p, aliases });
  }

  /** The aliases of the pieces batch `batch` reads of slices split in its window's previous point, if any. */
  #aliasesOf(batch: Batch, w: OpenWindow): Promise<ReadonlyMap<string, PieceRef>> | undefined {
    const from = w.splitFrom;
    if (!from || !this.#opts.aliasesFor) return undefined;
    const prevs: SplitSlice[] = [];
    let last = -1;
    for (const run of batch.runs) {
      const j = run.first - w.first;
      if (run.piece === undefined || j === last || j >= from.length) continue;
      last = j;
      const prev = from.ref(j);
      if (isSplit(prev)) prevs.push(prev);
    }
    return prevs.length > 0 ? this.#opts.aliasesFor(prevs) : undefined;
  }

  async #drainOne(): Promise<void> {
    throwIfAborted(this.#opts.signal);
    // A scan of a much changed disk would otherwise start one #storeByPieces per batch, each
    // with its own copy and read-ahead, as fast as the disk reads: their memory had no bound.
    while (this.#byPieces.size >= BY_PIECES_AT_ONCE) await Promise.race(this.#byPieces);
    const { batch, w, buf: reading, aliases: finding } = this.#reads.shift()!;
    const buf = await reading;
    let aliases: ReadonlyMap<string, PieceRef> | undefined;
    try {
      aliases = await finding;
    } catch (err) {
      giveReadBuffer(buf);
      throw err;
    }
    const cs = this.#opts.chunkSize;
    const slices: { offset: number; length: number }[] = [];
    // Where each stored chunk goes: slice idx[j] of the window, or piece piece[j] of it (-1: the whole slice).
    const idx: number[] = [];
    const piece: number[] = [];
    let pos = 0;
    for (const run of batch.runs) {
      // A split slice's run reads pieces; each is stored as a chunk of its own.
      const unit = run.piece === undefined ? cs : PIECE_SIZE;
      for (let k = 0; k < run.count; k++) {
        const offset = pos + k * unit;
        const length = Math.min(unit, run.length - k * unit);
        if (isAllZero(buf.subarray(offset, offset + length))) continue;
        slices.push({ offset, length });
        idx.push(run.piece === undefined ? run.first + k - w.first : run.first - w.first);
        piece.push(run.piece === undefined ? -1 : run.piece + k);
      }
      pos += run.length;
    }
    if (slices.length === 0) {
      giveReadBuffer(buf);
    } else {
      // A scan: a whole slice whose bytes are new and which the previous point held whole is not
      // stored here but compared piece by piece with that chunk (#storeByPieces). Its bytes are
      // copied out of the batch buffer once the writer gives that back.
      const from = this.#opts.aliasesFor ? w.splitFrom : undefined;
      const wholeBefore = from && ((k: number) => piece[k]! < 0 && typeof from.ref(idx[k]!) === 'string');
      let giveBack: (b: Buffer) => void = giveReadBuffer;
      const returned = wholeBefore && new Promise<Buffer>((r) => { giveBack = r; });
      const keepOut = aliases || wholeBefore ? (id: string, k: number) => (piece[k]! >= 0 ? aliases?.has(id) === true : wholeBefore?.(k) === true) : undefined;
      // Batch buffers are reused (readBuffers): fresh batch buffers cost page faults on every touch.
      // A segment only names its chunks, so it waits for their ids, not their packs: the manifest
      // still waits for the writer's flush (the engine's, after the last disk).
      const { known } = await this.#writer.submitRun(buf, slices, giveBack, { keepOut });
      const stored = known.then(async (results: PutResult[]) => {
        const changed: { j: number; at: number; length: number }[] = [];
        results.forEach((res, k) => {
          if (piece[k]! >= 0) (w.refs[idx[k]!] as SplitSlice).pieces[piece[k]!] = res.keptOut ? aliases!.get(res.id)! : { id: res.id, offset: 0 };
          else if (res.keptOut) changed.push({ j: idx[k]!, at: slices[k]!.offset, length: slices[k]!.length });
          else w.refs[idx[k]!] = res.id;
        });
        if (!returned) return;
        if (changed.length === 0) {
          void returned.then(giveReadBuffer);
          return;
        }
        const job = this.#storeByPieces(w, from!, changed, returned);
        const settled = job.then(() => {}, () => {}).finally(() => this.#byPieces.delete(settled));
        this.#byPieces.add(settled);
        await job;
      });
      stored.catch(() => undefined); // observed when the window closes; avoid an unhandled rejection meanwhile
      w.pending.push(stored);
    }
    this.#opts.onRead?.(batch.bytes);
    if (--w.batchesLeft === 0) this.#close(w);
  }

  /**
   * A scan's slices `changed` (window slice j, at `at` in the batch buffer `returned` brings
   * back), each new as a whole and whole in the previous point: hashed piece by piece beside the
   * pieces of that previous chunk (PipelineOptions.aliasesFor). A slice with a piece that the
   * previous chunk or any stored chunk holds is stored split, only its other pieces new (a 64 KiB
   * write into a 256 KiB slice stores 64 KiB, not 256); one with none is stored whole, as before.
   * The pieces are hashed first without storing anything, then the chosen chunks are submitted.
   */
  async #storeByPieces(w: OpenWindow, from: SliceSource, changed: { j: number; at: number; length: number }[], returned: Promise<Buffer>): Promise<void> {
    const batch = await returned;
    const own = Buffer.allocUnsafeSlow(changed.reduce((a, c) => a + c.length, 0));
    const places: number[] = [];
    let o = 0;
    for (const c of changed) {
      batch.copy(own, o, c.at, c.at + c.length);
      places.push(o);
      o += c.length;
    }
    giveReadBuffer(batch);
    const aliases = await this.#opts.aliasesFor!(changed.map((c) => from.ref(c.j)));
    // The data pieces of every slice, hashed; nothing stored (every new one kept out).
    const pieces: Slice[] = [];
    const owner: { c: number; q: number }[] = [];
    changed.forEach((c, i) => {
      for (let q = 0; q * PIECE_SIZE < c.length; q++) {
        const offset = places[i]! + q * PIECE_SIZE;
        const length = Math.min(PIECE_SIZE, c.length - q * PIECE_SIZE);
        if (isAllZero(own.subarray(offset, offset + length))) continue;
        pieces.push({ offset, length });
        owner.push({ c: i, q });
      }
    });
    let hashedBack!: (b: Buffer) => void;
    const hashed = new Promise<Buffer>((r) => { hashedBack = r; });
    const first = await (await this.#writer.submitRun(own, pieces, hashedBack, { keepOut: () => true })).known;
    const run = await hashed;
    // Per slice: its pieces (null: zeros) as far as known, and whether any is known at all.
    const split = changed.map(() => ({ pieces: new Array<PieceRef | null>(this.#opts.chunkSize / PIECE_SIZE).fill(null), known: false, store: [] as number[] }));
    first.forEach((res, k) => {
      const { c, q } = owner[k]!;
      const s = split[c]!;
      const place = !res.keptOut ? { id: res.id, offset: 0 } : aliases.get(res.id);
      if (place) {
        s.pieces[q] = place;
        s.known = true;
      } else s.store.push(k);
    });
    // Stored now: the new pieces of slices with a known piece, and the other slices whole.
    const second: Slice[] = [];
    const goes: { c: number; q: number }[] = [];
    changed.forEach((c, i) => {
      const s = split[i]!;
      if (!s.known) {
        second.push({ offset: places[i]!, length: c.length });
        goes.push({ c: i, q: -1 });
        return;
      }
      for (const k of s.store) {
        second.push(pieces[k]!);
        goes.push(owner[k]!);
      }
    });
    const results = second.length > 0 ? await (await this.#writer.submitRun(run, second)).known : [];
    results.forEach((res, k) => {
      const { c, q } = goes[k]!;
      if (q < 0) w.refs[changed[c]!.j] = res.id;
      else split[c]!.pieces[q] = { id: res.id, offset: 0 };
    });
    changed.forEach((c, i) => {
      if (split[i]!.known) w.refs[c.j] = { pieces: split[i]!.pieces };
    });
  }

  /** Every batch of `w` is with the writer: encode its segment once its chunk ids are all in. */
  #close(w: OpenWindow): void {
    const encode = () => {
      let data = 0;
      for (let j = 0; j < w.refs.length; j++) {
        const r = w.refs[j]!;
        // A split slice whose read pieces were all zeros, and the rest zeros too, is a zero slice.
        if (r === SAME_AS_BEFORE) data += w.from!.isNull(j) ? 0 : 1;
        else if (isSplit(r) && r.pieces.every((p) => p === null)) w.refs[j] = null;
        else if (r !== null) data++;
      }
      this.#dataSlices += data;
      w.encoded = data === 0 ? null : encodeSegment(w.refs, this.#opts.chunkSize, w.from);
      w.refs = [];
      w.from = undefined;
      w.splitFrom = undefined;
      w.pending = [];
    };
    if (w.pending.length === 0) {
      encode();
      w.ready = Promise.resolve();
      return;
    }
    w.ready = Promise.all(w.pending).then(encode, (err: unknown) => { w.failed = err; });
  }

  async #submitReady(): Promise<void> {
    for (let i = 0; i < this.#open.length;) {
      const w = this.#open[i]!;
      if (w.failed) throw w.failed;
      if (w.encoded === undefined) {
        i++;
        continue;
      }
      this.#open.splice(i, 1);
      this.#openBytes -= w.bytes;
      if (w.encoded === null) {
        this.#segments[w.k] = null;
        continue;
      }
      const id = this.#chunkId(w.encoded);
      const { done } = await (this.#opts.segmentWriter ?? this.#writer).submit(w.encoded);
      this.#segments[w.k] = id;
      // Only the number: the segment stays in flight until its writer's pack is stored (often
      // at the end of the backup), and the window must not (its bytes and its slices' promises
      // were ~40 MiB of heap for the 64 windows of one metadata pack).
      const k = w.k;
      const stored = done.then((r) => {
        if (r.id !== id) throw new HvError('ERR_INTERNAL', `segment ${k} of ${this.#disk.path} was stored as chunk ${r.id}, not ${id} as hashed beforehand`, { target: this.#disk.path });
      });
      stored.catch(() => undefined); // awaited through finish()'s `durable`
      this.#stored.push(stored);
    }
  }
}
