// Writes chunks with bounded memory: at most `capacityBytes` of chunks are being hashed or
// sealed at once, and submit() waits for room (backpressure). Chunks the repository already has
// are hashed but never compressed or written. New chunks go into packs (pack-writer.ts);
// a chunk is durable once its pack is stored, which happens when a pack fills up or at
// flush(); flush() also stores the index object listing the packs (pack-writer.ts).

import { throwIfAborted } from '../errors.ts';
import type { Backend } from './backend.ts';
import type { ChunkIndex } from './chunk-index.ts';
import type { ChunkPool, HashedRun, Slice } from './chunk-pool.ts';
import type { ObjectCodec } from './crypto/codec.ts';
import { PackWriter, type PackReservation } from './pack-writer.ts';
import { sealedBound } from './chunk-codec.ts';

export interface PutResult {
  id: string;
  /** Bytes written to storage for this chunk (0 when it was already there). */
  stored: number;
  isNew: boolean;
  /** Not stored because the caller's `keepOut` knew where its bytes already are (submitRun). */
  keptOut?: boolean;
}

export interface SubmitRunOptions {
  /**
   * A chunk the repository does not hold whose bytes the caller knows a place for (a scan's
   * piece that an older chunk holds at some offset): not stored; its result says keptOut and
   * the caller points at that place instead. `slice`: its index in the run's slices.
   */
  keepOut?: (id: string, slice: number) => boolean;
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
  /**
   * Queue the chunks `slices` of `run`, handing `run` over: it comes back through `giveBack`
   * once its chunks are hashed and, for new ones, sealed into their pack (the caller
   * reuses it for its next read, so runs are never copied). Resolves once taken, with `done`: a
   * result per slice once all of them are durable; and `known`: the same results as soon as the
   * ids are known and the chunks deduplicated or copied into their pack, before they are durable —
   * for what only names the chunks (a segment), which is safe while the caller's manifest still
   * waits for flush(). One promise each per run, not per slice: a backup submits ~4 runs of 8
   * slices per 2 MiB read, and per-slice promises (and their reactions) were a third of its
   * main thread's garbage.
   */
  submitRun(run: Buffer, slices: Slice[], giveBack?: (run: Buffer) => void, opts?: SubmitRunOptions): Promise<{ done: Promise<PutResult[]>; known: Promise<PutResult[]> }>;
  /** submit(), flush() and wait: simple and durable, but stores a pack per call. */
  put(plain: Buffer): Promise<PutResult>;
  /**
   * Store what is pending and wait until every submitted chunk is durable; rejects with the
   * first failure. With `index: false` the packs are durable but not yet listed by an index
   * object: the caller stores one (Repository.saveIndex) before anything names their chunks.
   */
  flush(opts?: { index?: boolean }): Promise<void>;
  readonly stats: ChunkWriterStats;
}

export interface ChunkStoreState {
  backend: Backend;
  codec: ObjectCodec;
  pool: ChunkPool;
  /** Where every stored chunk is (loaded lazily from index/ and chunks/). */
  index(): Promise<ChunkIndex>;
  /** The repository is older than format 5: one index object per pack (PackWriterOptions.indexPerPack). */
  indexPerPack?(): boolean;
}

export interface ChunkWriterOptions {
  signal?: AbortSignal;
  /** Bytes of chunks being hashed or sealed at once (default 8 MiB: four of the backup's 2 MiB runs); a larger run waits until nothing else is in flight. */
  capacityBytes?: number;
  /** Pack size this writer aims at (default pack-writer's DEFAULT_PACK_SIZE). */
  packSize?: number;
}

interface Staged {
  /** One per slice. */
  results: PutResult[];
  /** Settle when the new chunks, and the copies in flight this run's repeats wait for, are durable (none: all stored already). */
  durable: Promise<void>[];
}

export const DEFAULT_CAPACITY_BYTES = 8 * 1024 * 1024;

export function createChunkWriter(store: ChunkStoreState, opts: ChunkWriterOptions = {}): ChunkWriter {
  const capacity = opts.capacityBytes ?? DEFAULT_CAPACITY_BYTES;
  const stats: ChunkWriterStats = { chunks: 0, newChunks: 0, plainBytes: 0, newPlainBytes: 0, storedBytes: 0 };
  const outstanding = new Set<Promise<unknown>>();
  const waiters: (() => void)[] = [];
  // Chunks of this writer not yet durable: a repeat waits for the first copy instead of
  // storing a second. Only this writer's, because only this writer's flush() stores them.
  const inFlight = new Map<string, Promise<void>>();
  let activeBytes = 0;
  let activeRuns = 0;
  let firstError: unknown;
  let packsPromise: Promise<PackWriter> | undefined;
  const packs = () => (packsPromise ??= store.index().then((index) => new PackWriter(store.backend, store.codec, index, {
    signal: opts.signal, target: opts.packSize, indexPerPack: store.indexPerPack?.(),
  })));

  const release = (bytes: number) => {
    activeBytes -= bytes;
    activeRuns--;
    while (waiters.length > 0) waiters.shift()!();
  };

  const track = <T>(p: Promise<T>): Promise<T> => {
    p.catch((err: unknown) => { firstError ??= err; });
    outstanding.add(p);
    void p.finally(() => outstanding.delete(p)).catch(() => {});
    return p;
  };

  /** Dedupe a hashed run, seal the new chunks, hand them to the pack writer. */
  async function stage(hashing: Promise<HashedRun>, sizes: number[], keepOut?: (id: string, slice: number) => boolean): Promise<Staged> {
    const knowing = store.index();
    knowing.catch(() => {});
    const run = await hashing;
    let index: ChunkIndex;
    try {
      index = await knowing;
    } catch (err) {
      run.drop();
      throw err;
    }
    const results: PutResult[] = new Array(sizes.length);
    const waits = new Set<Promise<void>>();
    const fresh: number[] = [];
    // One promise for all of this run's new chunks (they go to one pack, or settle together):
    // what a later repeat of one of them waits for instead of storing a second copy.
    let settle!: { resolve: () => void; reject: (e: unknown) => void };
    const durable = new Promise<void>((resolve, reject) => { settle = { resolve, reject }; });
    durable.catch(() => {});
    for (let i = 0; i < sizes.length; i++) {
      const id = run.ids[i]!;
      stats.chunks++;
      stats.plainBytes += sizes[i]!;
      const pending = inFlight.get(id);
      if (pending) waits.add(pending);
      if (index.has(id) || pending) {
        results[i] = { id, stored: 0, isNew: false };
        continue;
      }
      if (keepOut?.(id, i)) {
        results[i] = { id, stored: 0, isNew: false, keptOut: true };
        continue;
      }
      inFlight.set(id, durable);
      fresh.push(i);
      results[i] = { id, stored: 0, isNew: true };
    }
    if (fresh.length === 0) {
      run.drop();
      settle.resolve();
      return { results, durable: [...waits] };
    }
    waits.add(durable);
    void durable.finally(() => { for (const i of fresh) if (inFlight.get(results[i]!.id) === durable) inFlight.delete(results[i]!.id); }).catch(() => {});
    let reservation: PackReservation | undefined;
    try {
      if (store.pool.threads > 0) {
        // Workers seal straight into a region of an open pack: no copy on this thread.
        try {
          reservation = await (await packs()).reserve(fresh.reduce((a, i) => a + sealedBound(sizes[i]!), 0));
        } catch (err) {
          run.drop();
          throw err;
        }
      }
      const sealed = await run.seal(fresh, reservation?.region);
      try {
        throwIfAborted(opts.signal);
        if (reservation && sealed.placed) {
          const placed = sealed.placed;
          const committed = await reservation.commit(placed.map((p, j) => ({ id: run.ids[fresh[j]!]!, offset: p.offset, length: p.length, plainLength: sizes[fresh[j]!]! })));
          reservation = undefined;
          committed.durable.then(settle.resolve, settle.reject);
          fresh.forEach((i, k) => {
            results[i]!.stored = placed[k]!.length;
            stats.newChunks++;
            stats.newPlainBytes += sizes[i]!;
            stats.storedBytes += placed[k]!.length;
          });
          return { results, durable: [...waits] };
        }
        reservation?.cancel();
        reservation = undefined;
        const pw = await packs();
        const added: Promise<void>[] = [];
        for (let k = 0; k < fresh.length; k++) {
          const i = fresh[k]!;
          const blob = sealed.blobs[k]!;
          const length = Buffer.isBuffer(blob) ? blob.length : blob.reduce((a, b) => a + b.length, 0);
          // add() copies the blob into its pack, so the sealed buffers can go back at the end.
          const { durable: packDurable } = await pw.add(run.ids[i]!, blob, sizes[i]!);
          packDurable.catch(() => {}); // observed through settle below, or dropped with a failure of this run
          added.push(packDurable);
          results[i]!.stored = length;
          stats.newChunks++;
          stats.newPlainBytes += sizes[i]!;
          stats.storedBytes += length;
        }
        Promise.all(added).then(() => settle.resolve(), settle.reject);
      } finally {
        sealed.done();
      }
      return { results, durable: [...waits] };
    } catch (err) {
      reservation?.cancel();
      settle.reject(err);
      throw err;
    }
  }

  async function submitRun(run: Buffer, slices: Slice[], giveBack?: (run: Buffer) => void, runOpts: SubmitRunOptions = {}): Promise<{ done: Promise<PutResult[]>; known: Promise<PutResult[]> }> {
    throwIfAborted(opts.signal);
    if (firstError) throw firstError;
    const bytes = slices.reduce((a, sl) => a + sl.length, 0);
    while (activeRuns > 0 && activeBytes + bytes > capacity) await new Promise<void>((r) => waiters.push(r));
    if (opts.signal?.aborted || firstError) {
      throwIfAborted(opts.signal);
      throw firstError;
    }
    activeBytes += bytes;
    activeRuns++;
    let hashing: Promise<HashedRun>;
    try {
      hashing = store.pool.hashRun(run, slices, giveBack);
    } catch (err) {
      release(bytes);
      throw err;
    }
    const staged = track(stage(hashing, slices.map((sl) => sl.length), runOpts.keepOut));
    void staged.finally(() => release(bytes)).catch(() => {});
    const done = track(staged.then(async (st) => {
      await Promise.all(st.durable);
      return st.results;
    }));
    const known = staged.then((st) => st.results);
    known.catch(() => {}); // a failure also rejects `done` and flush()
    return { done, known };
  }

  async function submit(plain: Buffer): Promise<{ done: Promise<PutResult> }> {
    // A buffer of its own: the caller may reuse `plain` as soon as this resolves.
    const own = Buffer.from(new Uint8Array(plain).buffer);
    const { done } = await submitRun(own, [{ offset: 0, length: own.length }]);
    return { done: done.then((r) => r[0]!) };
  }

  async function flush(flushOpts: { index?: boolean } = {}): Promise<void> {
    // Let every chunk reach its pack, then store the packs, then see every chunk settle.
    while (activeRuns > 0) await new Promise<void>((r) => waiters.push(r));
    if (packsPromise) {
      const pw = await packsPromise;
      await pw.flush(flushOpts).catch((err: unknown) => { firstError ??= err; });
    }
    await Promise.allSettled([...outstanding]);
    if (firstError) throw firstError;
  }

  return {
    submit,
    submitRun,
    async put(plain) {
      const { done } = await submit(plain);
      await flush();
      return done;
    },
    flush,
    stats,
  };
}
