// Writes chunks with bounded memory: at most `capacity` chunks are between submit() and
// durable at once; submit() waits for room (backpressure). Chunks the repository already
// has are hashed but never compressed or written.

import { HvError, isHvError, throwIfAborted } from '../errors.ts';
import type { Backend } from './backend.ts';
import type { ChunkPool } from './chunk-pool.ts';

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
   * `plain`); `done` settles when the chunk is durable (or known to be stored already).
   */
  submit(plain: Buffer): Promise<{ done: Promise<PutResult> }>;
  /** submit() and wait until durable: simple, but one chunk at a time. */
  put(plain: Buffer): Promise<PutResult>;
  /** Wait until every submitted chunk is durable; rejects with the first failure. */
  flush(): Promise<void>;
  readonly stats: ChunkWriterStats;
}

export interface ChunkStoreState {
  backend: Backend;
  pool: ChunkPool;
  /** Ids known to be stored (loaded lazily from a listing of chunks/). */
  knownIds(): Promise<Set<string>>;
  /** Ids being written right now, shared by every writer of this repository. */
  inFlight: Map<string, Promise<void>>;
}

export function createChunkWriter(store: ChunkStoreState, opts: { signal?: AbortSignal; capacity?: number } = {}): ChunkWriter {
  const capacity = opts.capacity ?? Math.max(4, store.pool.threads * 3);
  const stats: ChunkWriterStats = { chunks: 0, newChunks: 0, plainBytes: 0, newPlainBytes: 0, storedBytes: 0 };
  const outstanding = new Set<Promise<PutResult>>();
  const waiters: (() => void)[] = [];
  let active = 0;
  let firstError: unknown;

  const release = () => {
    active--;
    waiters.shift()?.();
  };

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
    let hashed;
    try {
      hashed = store.pool.hash(plain);
    } catch (err) {
      release();
      throw err;
    }
    const size = plain.length;
    const done = storeChunk(store, hashed, size, opts.signal, stats).finally(release);
    done.catch((err: unknown) => { firstError ??= err; });
    outstanding.add(done);
    void done.finally(() => outstanding.delete(done)).catch(() => {});
    return { done };
  }

  return {
    submit,
    put: async (plain) => (await submit(plain)).done,
    async flush() {
      await Promise.allSettled([...outstanding]);
      if (firstError) throw firstError;
    },
    stats,
  };
}

async function storeChunk(store: ChunkStoreState, hashing: ReturnType<ChunkPool['hash']>, size: number, signal: AbortSignal | undefined, stats: ChunkWriterStats): Promise<PutResult> {
  const knowing = store.knownIds();
  knowing.catch(() => {});
  const h = await hashing;
  let known: Set<string>;
  try {
    known = await knowing;
  } catch (err) {
    h.drop();
    throw err;
  }
  stats.chunks++;
  stats.plainBytes += size;
  const pending = store.inFlight.get(h.id);
  if (known.has(h.id) || pending) {
    h.drop();
    if (pending) await pending;
    return { id: h.id, stored: 0, isNew: false };
  }
  let stored = 0;
  const write = (async () => {
    const sealed = await h.seal();
    throwIfAborted(signal);
    try {
      await store.backend.save(signal, { type: 'chunks', name: h.id }, sealed);
      stored = sealed.length;
    } catch (err) {
      // Someone else (another process) stored it first: same id, same content.
      if (!isHvError(err, 'ERR_ALREADY_EXISTS')) throw err instanceof HvError ? err : new HvError('ERR_IO', `save <chunks/${h.id}>: ${(err as Error).message}`, { cause: err });
    } finally {
      // Backends copy or write what they are given before save() settles.
      store.pool.release(sealed);
    }
    known.add(h.id);
  })();
  store.inFlight.set(h.id, write);
  try {
    await write;
  } finally {
    store.inFlight.delete(h.id);
  }
  if (stored > 0) {
    stats.newChunks++;
    stats.newPlainBytes += size;
    stats.storedBytes += stored;
  }
  return { id: h.id, stored, isNew: stored > 0 };
}
