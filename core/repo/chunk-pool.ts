// A pool of worker threads (one per core) that hash, compress, seal and open chunks, so
// both cores work while the main thread does I/O. Two-step writes: the worker hashes and
// keeps the chunks; the main thread decides (dedupe) which to seal and which to drop,
// so known chunks are never compressed. Writes go by the run (the chunks of one 4 MiB read):
// the run's buffer is transferred to the worker and back, never copied, and one message
// each way serves all its chunks — per-chunk messages cost ~0.65 s of each worker's time on
// the 2 GiB bench backup at 256 KiB chunks. threads: 0 runs everything inline (tests, tiny jobs).

import { createHash } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { HvError, type ErrorCode } from '../errors.ts';
import { openChunk, sealChunk, sealedBound } from './chunk-codec.ts';
import { FORMAT_RAW, FORMAT_ZSTD } from './object-format.ts';
import type { ObjectCodec } from './crypto/codec.ts';
import { freeArrayBuffer } from './free-buffer.ts';
import { BufferBin } from './buffer-bin.ts';

/** A chunk within a run buffer. */
export interface Slice {
  offset: number;
  length: number;
}

export interface WorkerRequest {
  op: 'hash' | 'seal' | 'drop' | 'open' | 'openRange' | 'codec';
  /** codec: the codec of a worker started before it was known (ChunkPool.warmUp); no reply. */
  codec?: ReturnType<ObjectCodec['toTransferable']>;
  tid: number;
  data?: Uint8Array;
  /** hash, openRange: the chunks within `data`. */
  slices?: Slice[];
  /** openRange: the id of each slice. */
  ids?: string[];
  /** seal: indexes into the hashed slices to seal (the others are dropped). */
  which?: number[];
  /** seal: the buffer to seal them into, lent by the pool and given back with the reply. */
  arena?: Uint8Array;
  /**
   * seal, instead of `arena`: a view of shared memory (a region of a pack) to seal them into,
   * back to back from its start, raw chunks included; it stays where it is (not transferred).
   */
  into?: Uint8Array;
  id?: string;
  verify?: boolean;
  level?: number;
  /**
   * openRange: buffers the pool recycled, for the worker to decompress chunks into (it keeps
   * those it does not use for later requests, up to SPARES_KEPT).
   */
  spare?: ArrayBuffer[];
}

export interface WorkerReply {
  tid: number;
  ids?: string[];
  data?: Uint8Array;
  /**
   * seal: where each sealed chunk is, in `which` order, as triples: SPAN_LENT, offset, length
   * in `arena`; or SPAN_RUN, offset, length of a raw chunk's plain bytes in the run buffer
   * (its stored form is the format byte 0x00 and those bytes); or, sealed `into`, SPAN_INTO,
   * offset, length of its stored bytes there.
   */
  spans?: number[];
  /** seal: the lent buffer (or a larger one, if it was too small), holding the sealed chunks. */
  arena?: Uint8Array;
  /** seal/drop: the run buffer, given back. */
  back?: Uint8Array;
  error?: WorkerError;
  /**
   * openRange: each chunk's plain bytes, or where they are in the range, or why it did not
   * open, in slice order; the range itself comes back as `data`, to be read into again.
   */
  opened?: (Uint8Array | WorkerError | RangeView)[];
}

/** A raw chunk's plain bytes within a ranged read's buffer (byte offset in its ArrayBuffer). */
export interface RangeView {
  at: number;
  length: number;
}

export interface WorkerError {
  code: ErrorCode;
  message: string;
  target?: string;
}

interface Slot {
  worker: Worker;
  busy: number;
  /** Runs hashed here and not yet sealed or dropped: their seal will come here, so they count as load. */
  runs: number;
  pending: Map<number, { resolve: (r: WorkerReply) => void; reject: (e: unknown) => void }>;
}

export const SPAN_LENT = 0;
export const SPAN_RUN = 1;
export const SPAN_INTO = 2;
const RAW_FORMAT_BYTE = Buffer.from([FORMAT_RAW]);

/** A sealed chunk: one buffer, or parts stored back to back. */
export type SealedBlob = Buffer | readonly Buffer[];

/**
 * Sealed chunks of a run: views of a buffer the pool lends out again, and of the run buffer,
 * which goes back to its owner, once done() is called.
 */
export interface SealedChunks {
  blobs: SealedBlob[];
  /** Sealed into the caller's shared region (seal's `into`): where each blob is in it. The blobs are views of it. */
  placed?: { offset: number; length: number }[];
  /** The caller has copied what it keeps: the blobs' memory goes back. */
  done(): void;
}

/** The chunks of a run, hashed and held by a worker, waiting for seal() or drop(). */
export interface HashedRun {
  ids: string[];
  /**
   * Seal the chunks at these indexes (in this order); the rest are dropped. Ends the run.
   * `into`: a region of shared memory (sharedAlignedBuffer) with room for sealedBound of each;
   * a worker then seals them there back to back (`placed`) and nothing is copied afterwards.
   * Without workers, or without `into`, the blobs are the pool's own buffers, to be copied.
   */
  seal(which: number[], into?: Buffer): Promise<SealedChunks>;
  /** Seal nothing. Ends the run. */
  drop(): void;
}

/**
 * A small young generation: everything a worker allocates dies within one message, so a
 * large nursery only holds dead objects. Part of keeping a backup of a 2 GiB disk at
 * ~170 MiB RSS (it was ~400 before workers freed their buffers).
 */
const WORKER_LIMITS = { maxYoungGenerationSizeMb: 1 };
/**
 * Bytes of released buffers (decoded chunks, ranged reads) a pool keeps to use again rather
 * than free: restores read and decode ~1.5 GB through buffers of a few MiB in flight, and each
 * new one costs a page fault per 4 KiB on first touch and an unmap when freed (~100,000 faults
 * and a third of a 2 GiB restore's CPU on the bench machine, perf). Only buffers of at least
 * RECYCLE_MIN bytes are kept.
 */
const BIN_BYTES = 16 * 1024 * 1024;
const RECYCLE_MIN = 64 * 1024;
/** Ranged-read buffers are made in whole multiples of this, so that one fits the next range. */
const READ_GRAIN = 256 * 1024;

/** Seal buffers kept for reuse; at most this many, each at most ARENA_KEEP bytes. */
const ARENAS_KEPT = 4;
const ARENA_KEEP = 16 * 1024 * 1024;

export class ChunkPool {
  readonly threads: number;
  readonly #codec: ObjectCodec;
  readonly #slots: Slot[] = [];
  #nextTid = 1;
  #closed = false;
  /**
   * Buffers handed out that release() frees: each is a view of an ArrayBuffer that arrived
   * from a worker (transferred) and belongs to no one else, freed with its last handed-out
   * view. Most ArrayBuffers have one (a decoded chunk); a ranged read's buffer has one per raw
   * chunk in it (openRange).
   */
  readonly #handed = new WeakSet<Uint8Array>();
  readonly #views = new WeakMap<ArrayBufferLike, number>();
  /**
   * Buffers lent to workers to seal runs into, and back. A buffer per sealed chunk sent to the
   * main thread made it allocate ~660 MB of ArrayBuffers in a 2 GiB backup, and V8 ran a full
   * collection for every ~25 MB of them (~10 % of the backup's CPU, on its marking threads).
   */
  readonly #arenas = new BufferBin<Buffer>({ maxItems: ARENAS_KEPT });
  /** Released buffers kept for reuse: decode outputs and ranged reads. */
  readonly #bin = new BufferBin<ArrayBuffer>({ maxBytes: BIN_BYTES });
  #reused = 0;
  /** Buffers readBuffer() made or gave out: all of each is ours, so openRange may transfer it whole. */
  readonly #reads = new WeakSet<ArrayBufferLike>();
  level: number | undefined;

  /** Workers #pick may start when every started one is busy; prestart(n) sets it. */
  #spawnCap: number;

  constructor(codec: ObjectCodec, opts: { threads?: number; level?: number } = {}) {
    this.#codec = codec;
    this.threads = opts.threads ?? availableParallelism();
    this.level = opts.level;
    this.#spawnCap = this.threads;
  }

  /** Workers started (and not failed). */
  get workers(): number {
    return this.#slots.length;
  }

  /**
   * Hash the chunks `slices` of `run`. The caller hands `run` over (a Buffer filling its own
   * ArrayBuffer, which is transferred to the worker) and gets it back through `giveBack` once
   * the run is dropped, or once its sealed chunks are done with (raw chunks are views of it);
   * until then it must not touch it.
   */
  async hashRun(run: Buffer, slices: Slice[], giveBack: (run: Buffer) => void = () => {}): Promise<HashedRun> {
    if (this.threads === 0) {
      const parts = slices.map((sl) => run.subarray(sl.offset, sl.offset + sl.length));
      const ids = parts.map((p) => this.#codec.chunkId(p));
      let ended = false;
      const end = () => { if (!ended) { ended = true; giveBack(run); } };
      return {
        ids,
        seal: async (which) => {
          try {
            return { blobs: which.map((i) => sealChunk(this.#codec, ids[i]!, parts[i]!, this.level)), done: () => {} };
          } finally {
            end();
          }
        },
        drop: end,
      };
    }
    if (run.byteOffset !== 0 || run.byteLength !== run.buffer.byteLength) throw new HvError('ERR_INTERNAL', 'hashRun needs a buffer that fills its own ArrayBuffer');
    const slot = this.#pick();
    const tid = this.#nextTid++;
    let ended = false;
    const end = () => { if (!ended) { ended = true; slot.runs--; } };
    const taken = (r: WorkerReply) => { if (r.back) giveBack(toBuffer(r.back)); };
    slot.runs++;
    let ids: string[];
    try {
      ids = (await this.#request(slot, { op: 'hash', tid, data: run, slices }, [run.buffer as ArrayBuffer])).ids!;
    } catch (err) {
      end();
      throw err;
    }
    return {
      ids,
      seal: async (which, into) => {
        if (into && into.buffer instanceof SharedArrayBuffer) {
          try {
            const r = await this.#request(slot, { op: 'seal', tid, which, level: this.level, into });
            giveBack(toBuffer(r.back!));
            const spans = r.spans!;
            const placed = which.map((_, k) => ({ offset: spans[3 * k + 1]!, length: spans[3 * k + 2]! }));
            return { blobs: placed.map((p) => into.subarray(p.offset, p.offset + p.length)), placed, done: () => {} };
          } finally {
            end();
          }
        }
        const arena = this.#lend(which.reduce((a, i) => a + sealedBound(slices[i]!.length), 0));
        try {
          const r = await this.#request(slot, { op: 'seal', tid, which, level: this.level, arena }, [arena.buffer as ArrayBuffer]);
          const lent = toBuffer(r.arena!);
          const own = toBuffer(r.back!);
          const spans = r.spans!;
          const blobs = which.map((_, k): SealedBlob => {
            const [where, at, n] = [spans[3 * k]!, spans[3 * k + 1]!, spans[3 * k + 2]!];
            return where === SPAN_RUN ? [RAW_FORMAT_BYTE, own.subarray(at, at + n)] : lent.subarray(at, at + n);
          });
          let returned = false;
          return {
            blobs,
            done: () => {
              if (returned) return;
              returned = true;
              this.#giveBackArena(lent);
              giveBack(own);
            },
          };
        } finally {
          end();
        }
      },
      drop: () => {
        this.#request(slot, { op: 'drop', tid }).then(taken, () => {}).finally(end);
      },
    };
  }

  /** Stored bytes → plain bytes, verified against `id` unless verify is false. */
  async open(id: string, stored: Buffer, verify = true): Promise<Buffer> {
    if (this.threads === 0) return openChunk(this.#codec, id, stored, verify);
    const transferable = stored.byteOffset === 0 && stored.byteLength === stored.buffer.byteLength;
    const data = transferable ? stored : new Uint8Array(stored);
    const reply = await this.#request(this.#pick(), { op: 'open', tid: this.#nextTid++, data, id, verify }, [data.buffer as ArrayBuffer]);
    return this.#adopt(reply.data!);
  }

  /**
   * Open the chunks `chunks` (each an id and its place in `stored`, one coalesced read of a
   * pack) in one worker message: each chunk's plain bytes, verified against its id unless
   * verify is false, or the HvError that names it, in order. One message per range, not per
   * chunk: the range goes to the worker without a copy when it fills its own ArrayBuffer, and
   * a chunk's failure does not hide its neighbours.
   */
  async openRange(stored: Buffer, chunks: readonly { id: string; offset: number; length: number; plain?: number }[], verify = true): Promise<(Buffer | HvError)[]> {
    const view = (c: { offset: number; length: number }) => {
      if (c.offset < 0 || c.offset + c.length > stored.length) throw new HvError('ERR_INTERNAL', `chunk at ${c.offset}+${c.length} is outside a range of ${stored.length} bytes`);
      return stored.subarray(c.offset, c.offset + c.length);
    };
    if (this.threads === 0) {
      return chunks.map((c) => {
        try {
          return openChunk(this.#codec, c.id, view(c), verify);
        } catch (err) {
          return err instanceof HvError ? err : new HvError('ERR_CORRUPT', `<chunks/${c.id}>: ${(err as Error).message}`, { target: `<chunks/${c.id}>`, cause: err });
        }
      });
    }
    for (const c of chunks) view(c);
    const ours = stored.byteOffset === 0 && this.#reads.has(stored.buffer);
    const transferable = ours || (stored.byteOffset === 0 && stored.byteLength === stored.buffer.byteLength);
    const data = transferable ? stored : new Uint8Array(stored);
    const slices = chunks.map((c) => ({ offset: c.offset, length: c.length }));
    // A recycled buffer for each chunk that will be decompressed (its format byte says so,
    // unless the repository is encrypted) and whose plain size is known.
    const spare: ArrayBuffer[] = [];
    for (const c of chunks) {
      if (c.plain === undefined || (!this.#codec.encrypted && stored[c.offset] !== FORMAT_ZSTD)) continue;
      const ab = this.#fromBin(c.plain);
      if (ab) spare.push(ab);
    }
    const request: WorkerRequest = { op: 'openRange', tid: this.#nextTid++, data, slices, ids: chunks.map((c) => c.id), verify, ...(spare.length ? { spare } : {}) };
    const reply = await this.#request(this.#pick(), request, [data.buffer as ArrayBuffer, ...spare]);
    // Raw chunks come back as places in the range, which comes back too (a copy of each cost
    // the workers ~10 % of a restore's CPU).
    const range = reply.data;
    const out = reply.opened!.map((o): Buffer | HvError => {
      if (o instanceof Uint8Array) return this.#adopt(o);
      if ('at' in o && range) return this.#adopt(new Uint8Array(range.buffer, o.at, o.length));
      const e = o as WorkerError;
      return new HvError(e.code, e.message, { target: e.target });
    });
    // No chunk is a view of the range: it can hold the next read now.
    if (range && !this.#views.has(range.buffer)) this.#recycle(range.buffer);
    return out;
  }

  /**
   * A buffer of `length` bytes for a ranged read that will go to openRange: a recycled one when
   * the pool has one that fits, else a new one (whole READ_GRAIN multiples, to fit later ranges).
   */
  readBuffer(length: number): Buffer {
    if (this.threads === 0 || length < RECYCLE_MIN) return Buffer.allocUnsafeSlow(length);
    // allocUnsafeSlow: a new ArrayBuffer would be zero-filled, touching every page for nothing.
    const ab = this.#fromBin(length) ?? Buffer.allocUnsafeSlow(Math.ceil(length / READ_GRAIN) * READ_GRAIN).buffer;
    this.#reads.add(ab);
    return Buffer.from(ab, 0, length);
  }

  /** Released buffers kept for reuse now (bytes), and how many times one was used again. */
  get recycling(): { keptBytes: number; reused: number } {
    return { keptBytes: this.#bin.bytes, reused: this.#reused };
  }

  /** A kept buffer of at least `size` bytes and at most twice that, taken out of the bin. */
  #fromBin(size: number): ArrayBuffer | undefined {
    const ab = this.#bin.take(size, 2 * size);
    if (ab) this.#reused++;
    return ab;
  }

  /**
   * Keep `ab`'s memory (nothing else uses it) for reuse if the bin has room, else free it.
   * Either way `ab` itself is detached, as freeing did before: a view someone kept by mistake
   * reads as empty instead of showing the next chunk's bytes. (transfer() moves the memory to
   * a new ArrayBuffer without copying it.)
   */
  #recycle(ab: ArrayBufferLike): void {
    const detached = (ab as ArrayBuffer & { detached?: boolean }).detached;
    if (this.#closed || detached || !(ab instanceof ArrayBuffer) || ab.byteLength < RECYCLE_MIN) return freeArrayBuffer(ab);
    const moved = ab.transfer();
    if (!this.#bin.give(moved)) freeArrayBuffer(moved);
  }

  /**
   * Free the memory of a buffer this pool returned (seal() or open()) now, instead of
   * whenever V8 next collects: the caller promises it holds no other view of it. V8 only
   * collects ArrayBuffers after their external size has grown by tens of MiB, so without
   * this every thread keeps 50–100 MiB of dead 1 MiB chunks (measured: RSS 400 MiB for a
   * restore of 2 GiB). Buffers the pool did not hand out (threads: 0) are left alone.
   */
  release(buf: Uint8Array): void {
    // Each handed-out buffer counts once, however often it is released.
    if (!this.#handed.delete(buf)) return;
    const ab = buf.buffer;
    const left = (this.#views.get(ab) ?? 1) - 1;
    if (left > 0) {
      this.#views.set(ab, left);
      return;
    }
    this.#views.delete(ab);
    this.#recycle(ab);
  }

  /**
   * `buf` itself if it is a buffer of its own, else (a raw chunk that is a view of a ranged
   * read) a copy of its own, the view released: for a chunk kept for a while, which must not
   * keep its whole range in memory.
   */
  own(buf: Buffer): Buffer {
    // A recycled buffer may be up to twice the chunk it holds (#fromBin): kept as it is.
    if (!this.#handed.has(buf) || this.#views.get(buf.buffer) === 1 && buf.buffer.byteLength <= Math.max(2 * buf.byteLength, buf.byteLength + 4096)) return buf;
    const copy = this.copyOf(buf);
    this.release(buf);
    return copy;
  }

  /** A copy of `buf` in a buffer of its own that release() frees (a chunk handed out more than once). */
  copyOf(buf: Uint8Array): Buffer {
    const ab = this.threads === 0 ? undefined : this.#fromBin(buf.length);
    const copy = ab ? Buffer.from(ab, 0, buf.length) : Buffer.allocUnsafeSlow(buf.length);
    copy.set(buf);
    return this.threads === 0 ? copy : this.#adopt(copy);
  }

  #lend(min: number): Buffer {
    return this.#arenas.take(min) ?? Buffer.allocUnsafeSlow(Math.max(min, 4 * 1024 * 1024 + 64 * 1024));
  }

  #giveBackArena(b: Buffer): void {
    if (b.byteOffset === 0 && b.length === b.buffer.byteLength && b.length <= ARENA_KEEP) this.#arenas.give(b);
  }

  #adopt(u: Uint8Array): Buffer {
    const b = toBuffer(u);
    this.#handed.add(b);
    this.#views.set(u.buffer, (this.#views.get(u.buffer) ?? 0) + 1);
    return b;
  }

  /**
   * Start `n` workers (default: one per thread) now rather than on the first chunk, and start
   * no more than `n` on demand until asked again: a worker takes ~100 ms of CPU to load its
   * modules, which a caller can overlap with its own set-up (a backup's lock, previous manifest
   * and checkpoint), and which a small job (a tracked incremental of a few MiB) is better off
   * without. Workers already started stay. Idle workers do not keep the process alive.
   */
  prestart(n = this.threads): void {
    if (this.#closed) return;
    // Workers warmUp() started (an encrypted open, during scrypt) have paid their start already: take them all.
    this.#spawnCap = Math.max(1, Math.min(Math.max(n, warmWorkers.length + this.#slots.length), this.threads));
    while (this.#slots.length < this.#spawnCap) this.#spawn();
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const ab of this.#bin.drain()) freeArrayBuffer(ab);
    const slots = this.#slots.splice(0);
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }

  /**
   * A pool for `codec`: an idle one kept by retire() in this process if there is one (its
   * workers already started and warm), else a new one. See keepIdlePools.
   */
  static acquire(codec: ObjectCodec, opts: { threads?: number; level?: number } = {}): ChunkPool {
    const key = poolKey(codec, opts.threads ?? availableParallelism());
    const list = idlePools.get(key);
    let pool = list?.pop();
    // One closed while idle (by its owner, or a test) is no pool to hand out.
    while (pool && pool.#closed) pool = list!.pop();
    if (pool) {
      pool.level = opts.level;
      pool.#spawnCap = pool.threads;
      return pool;
    }
    return new ChunkPool(codec, opts);
  }

  /**
   * Done with this pool: keep it for the next acquire() of the same codec if this process keeps
   * idle pools and nothing is in flight, else close it. A long-lived process (the PowerShell
   * module's bridge) then starts its workers once, not for every call: starting two workers
   * cost 120-200 CPU-ms per backup, as much as the data of a 1 % tracked incremental.
   */
  async retire(): Promise<void> {
    const key = poolKey(this.#codec, this.threads);
    const list = idlePools.get(key) ?? [];
    const kept = [...idlePools.values()].reduce((a, l) => a + l.length, 0);
    const quiet = this.#slots.every((s) => s.busy === 0 && s.runs === 0);
    if (this.#closed || !quiet || kept >= keepIdle || this.threads === 0) return this.close();
    list.push(this);
    idlePools.set(key, list);
  }

  #pick(): Slot {
    if (this.#closed) throw new HvError('ERR_INTERNAL', 'chunk pool is closed');
    if (this.#slots.length < this.#spawnCap) {
      const idle = this.#slots.find((s) => s.busy === 0 && s.runs === 0);
      if (!idle) return this.#spawn();
    }
    return this.#slots.reduce((a, b) => (b.busy + b.runs < a.busy + a.runs ? b : a));
  }

  /**
   * Start `threads` workers that know no codec yet, for the next pool to adopt (it sends them
   * its codec). An encrypted repository's open spends ~0.35 s in scrypt before the codec
   * exists: the workers load their modules meanwhile instead of after it. Idle, they do not
   * keep the process alive.
   */
  /** Workers started by warmUp() and not yet adopted by a pool. */
  static get warmCount(): number {
    return warmWorkers.length;
  }

  static warmUp(threads = availableParallelism()): void {
    while (warmWorkers.length < threads) {
      const worker = new Worker(WORKER_ENTRY, { workerData: {}, resourceLimits: WORKER_LIMITS });
      const gone = () => { const i = warmWorkers.indexOf(worker); if (i >= 0) warmWorkers.splice(i, 1); };
      worker.once('error', gone);
      worker.once('exit', gone);
      worker.unref();
      warmWorkers.push(worker);
    }
  }

  #spawn(): Slot {
    const warm = warmWorkers.shift();
    if (warm) warm.removeAllListeners();
    const worker = warm ?? new Worker(WORKER_ENTRY, { workerData: { codec: this.#codec.toTransferable() }, resourceLimits: WORKER_LIMITS });
    if (warm) worker.postMessage({ op: 'codec', tid: 0, codec: this.#codec.toTransferable() } satisfies WorkerRequest);
    const slot: Slot = { worker, busy: 0, runs: 0, pending: new Map() };
    worker.on('message', (r: WorkerReply) => {
      const p = slot.pending.get(r.tid);
      if (!p) return;
      slot.pending.delete(r.tid);
      this.#settle(slot);
      if (r.error) p.reject(new HvError(r.error.code, r.error.message, { target: r.error.target }));
      else p.resolve(r);
    });
    worker.on('error', (err) => this.#failAll(slot, err));
    worker.on('exit', (code) => this.#failAll(slot, new Error(`chunk worker exited with code ${code}`)));
    worker.unref();
    this.#slots.push(slot);
    return slot;
  }

  #request(slot: Slot, msg: WorkerRequest, transfer: ArrayBuffer[] = []): Promise<WorkerReply> {
    return new Promise((resolve, reject) => {
      slot.pending.set(msg.tid, { resolve, reject });
      // Keep the process alive only while a worker owes us an answer.
      if (slot.busy++ === 0) slot.worker.ref();
      slot.worker.postMessage(msg, transfer);
    });
  }

  #settle(slot: Slot): void {
    if (--slot.busy === 0) slot.worker.unref();
  }

  #failAll(slot: Slot, err: unknown): void {
    const idx = this.#slots.indexOf(slot);
    if (idx >= 0) this.#slots.splice(idx, 1);
    for (const p of slot.pending.values()) p.reject(this.#closed ? new HvError('ERR_CANCELLED', 'chunk pool closed') : new HvError('ERR_INTERNAL', `chunk worker failed: ${(err as Error).message}`, { cause: err }));
    slot.pending.clear();
  }
}

const WORKER_ENTRY = new URL('./chunk-worker-entry.mjs', import.meta.url);
/** Workers started by warmUp(), waiting for a pool (and its codec). */
const warmWorkers: Worker[] = [];

/** Pools kept idle by retire(), by codec and thread count. */
const idlePools = new Map<string, ChunkPool[]>();
let keepIdle = 0;

/**
 * How many idle pools this process keeps for reuse (default 0: every pool closes with its
 * repository, so a CLI run exits promptly). Idle workers do not keep the process alive.
 */
export function keepIdlePools(n: number): void {
  keepIdle = n;
}

/**
 * Close every pool kept idle (and every warm worker no pool has adopted): their workers' memory
 * and, for an encrypted repository, its keys. The next acquire() starts workers again.
 * Returns how many workers were stopped.
 */
export async function closeIdlePools(): Promise<number> {
  const pools = [...idlePools.values()].flat();
  idlePools.clear();
  const warm = warmWorkers.splice(0);
  const stopped = pools.reduce((a, p) => a + p.workers, 0) + warm.length;
  await Promise.all([...pools.map((p) => p.close()), ...warm.map((w) => w.terminate())]);
  return stopped;
}

/** The key of a pool's codec: a hash, so no key material is kept as a map key. */
function poolKey(codec: ObjectCodec, threads: number): string {
  return `${threads}:${createHash('sha256').update(JSON.stringify(codec.toTransferable())).digest('hex')}`;
}

function toBuffer(u: Uint8Array): Buffer {
  return Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}
