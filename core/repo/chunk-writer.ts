// Writes chunks with bounded memory: at most `capacity` chunks are being hashed or sealed
// at once, and submit() waits for room (backpressure). Chunks the repository already has
// are hashed but never compressed or written. New chunks go into packs (pack-writer.ts);
// a chunk is durable once its pack and the pack's index are stored, which happens when a
// pack fills up or at flush().

import { throwIfAborted } from '../errors.ts';
import type { Backend } from './backend.ts';
import type { ChunkIndex } from './chunk-index.ts';
import type { ChunkPool } from './chunk-pool.ts';
import type { ObjectCodec } from './crypto/codec.ts';
import { PackWriter } from './pack-writer.ts';

export interface PutResult {
  id: string;
  /** Bytes written to storage for this chunk (0 when it was already there). */
  stored: number;
  isNew: boolean;
}

export interface ChunkWriterStats {
  chunks: number;
  newChunks: number;
  plainBytes: number;
  newPlainBytes: number;
  storedBytes: number;
}

export interface ChunkWriter {
  /**
   * Queue a chunk. Resolves once the writer has taken it (the caller may then reuse
   * `plain`); `done` settles when the chunk is durable (or known to be stored already),
   * which for a new chunk may be only at flush().
   */
  submit(plain: Buffer): Promise<{ done: Promise<PutResult> }>;
  /** submit(), flush() and wait: simple and durable, but stores a pack per call. */
  put(plain: Buffer): Promise<PutResult>;
  /** Store what is pending and wait until every submitted chunk is durable; rejects with the first failure. */
  flush(): Promise<void>;
  readonly stats: ChunkWriterStats;
}

export interface ChunkStoreState {
  backend: Backend;
  codec: ObjectCodec;
  pool: ChunkPool;
  /** Where every stored chunk is (loaded lazily from index/ and chunks/). */
  index(): Promise<ChunkIndex>;
}

export interface ChunkWriterOptions {
  signal?: AbortSignal;
  capacity?: number;
  /** Pack size this writer aims at (default pack-writer's DEFAULT_PACK_SIZE). */
  packSize?: number;
}

interface Staged {
  result: PutResult;
  /** Settles when the chunk is durable; undefined when it was stored already. */
  durable?: Promise<void>;
}

export function createChunkWriter(store: ChunkStoreState, opts: ChunkWriterOptions = {}): ChunkWriter {
  const capacity = opts.capacity ?? Math.max(4, store.pool.threads * 3);
  const stats: ChunkWriterStats = { chunks: 0, newChunks: 0, plainBytes: 0, newPlainBytes: 0, storedBytes: 0 };
  const outstanding = new Set<Promise<unknown>>();
  const waiters: (() => void)[] = [];
  // Chunks of this writer not yet durable: a repeat waits for the first copy instead of
  // storing a second. Only this writer's, because only this writer's flush() stores them.
  const inFlight = new Map<string, Promise<void>>();
  let active = 0;
  let firstError: unknown;
  let packsPromise: Promise<PackWriter> | undefined;
  const packs = () => (packsPromise ??= store.index().then((index) => new PackWriter(store.backend, store.codec, index, {
    signal: opts.signal, target: opts.packSize, release: (b) => store.pool.release(b),
  })));

  const release = () => {
    active--;
    waiters.shift()?.();
  };

  const track = <T>(p: Promise<T>): Promise<T> => {
    p.catch((err: unknown) => { firstError ??= err; });
    outstanding.add(p);
    void p.finally(() => outstanding.delete(p)).catch(() => {});
    return p;
  };

  async function stage(hashing: ReturnType<ChunkPool['hash']>, size: number): Promise<Staged> {
    const knowing = store.index();
    knowing.catch(() => {});
    const h = await hashing;
    let index: ChunkIndex;
    try {
      index = await knowing;
    } catch (err) {
      h.drop();
      throw err;
    }
    stats.chunks++;
    stats.plainBytes += size;
    const pending = inFlight.get(h.id);
    if (index.has(h.id) || pending) {
      h.drop();
      return { result: { id: h.id, stored: 0, isNew: false }, durable: pending };
    }
    let settle!: { resolve: () => void; reject: (e: unknown) => void };
    const durable = new Promise<void>((resolve, reject) => { settle = { resolve, reject }; });
    durable.catch(() => {});
    inFlight.set(h.id, durable);
    try {
      const sealed = await h.seal();
      throwIfAborted(opts.signal);
      const stored = sealed.length;
      const { durable: packed } = await (await packs()).add(h.id, sealed, size);
      packed.then(settle.resolve, settle.reject);
      void durable.finally(() => inFlight.delete(h.id)).catch(() => {});
      stats.newChunks++;
      stats.newPlainBytes += size;
      stats.storedBytes += stored;
      return { result: { id: h.id, stored, isNew: true }, durable };
    } catch (err) {
      inFlight.delete(h.id);
      settle.reject(err);
      throw err;
    }
  }

  async function submit(plain: Buffer): Promise<{ done: Promise<PutResult> }> {
    throwIfAborted(opts.signal);
    if (firstError) throw firstError;
    while (active >= capacity) await new Promise<void>((r) => waiters.push(r));
    if (opts.signal?.aborted || firstError) {
      waiters.shift()?.();
      throwIfAborted(opts.signal);
      throw firstError;
    }
    active++;
    let hashing;
    try {
      hashing = store.pool.hash(plain);
    } catch (err) {
      release();
      throw err;
    }
    const staged = track(stage(hashing, plain.length));
    void staged.finally(release).catch(() => {});
    const done = track(staged.then(async (s) => {
      await s.durable;
      return s.result;
    }));
    return { done };
  }

  async function flush(): Promise<void> {
    // Let every chunk reach its pack, then store the packs, then see every chunk settle.
    while (outstanding.size > 0 && active > 0) await Promise.race([...outstanding].map((p) => p.then(() => {}, () => {})));
    if (packsPromise) {
      const pw = await packsPromise;
      await pw.flush().catch((err: unknown) => { firstError ??= err; });
    }
    await Promise.allSettled([...outstanding]);
    if (firstError) throw firstError;
  }

  return {
    submit,
    async put(plain) {
      const { done } = await submit(plain);
      await flush();
      return done;
    },
    flush,
    stats,
  };
}
