// Gathers sealed chunk blobs into packs of about `target` bytes and stores each pack; one
// index object lists many packs (write order: packs durable → chunks known to this process →
// index object durable → manifest). One file per pack instead of per chunk: a 2 GiB disk at
// 256 KiB chunks is ~40 packs, not ~5000 files each with its own create/fsync/link, and an
// object store gets few large PUTs. One index object per flush (and per INDEX_PACKS packs in
// between) instead of one per pack: a repository start reads ~1/64 of the objects, and a
// pack costs one durable save, not two.
//
// A chunk is `durable` once its pack is: the backup pipeline needs its id then, and it may
// name it in a segment, because every writer is flushed before the manifest is stored and
// flush() stores the index object of every pack of the process still waiting for one (not
// only its own: another writer may have found a chunk in a pack of this one's). A kill before
// that leaves packs without an index object and no manifest naming them: GC rescues or
// deletes them from their trailers.
// Memory: the packs being filled plus at most `maxSaving` packs being stored. Blobs come two
// ways. reserve() lends a region of an open pack (shared memory) that a chunk worker seals a
// run's new chunks into, back to back, and commit() records them: nothing is copied on the main
// thread (copying every blob into its pack there was ~10 % of a full backup's wall time). Each
// open pack is lent to one reservation at a time, so blobs stay back to back; concurrent
// reservations (one per worker) fill packs of their own. add() takes a region the same way
// and copies a blob into it (the caller may reuse its memory at once): for blobs sealed
// without workers, and GC's rewrites. One set of open packs serves both. Pack
// buffers are reused across packs and writers: a backup allocates no memory per chunk, so
// V8 has no dead buffers to collect (one ArrayBuffer per blob kept the main thread's
// collector marking ~30 times in a 2 GiB backup, ~10 % of its CPU on helper threads).
// They are page-aligned, so the local backend writes them with O_DIRECT uncopied.

import { randomBytes } from 'node:crypto';
import { HvError, throwIfAborted, wrapError } from '../errors.ts';
import type { Backend } from './backend.ts';
import type { ChunkIndex } from './chunk-index.ts';
import type { ObjectCodec } from './crypto/codec.ts';
import { encodeIndexObject, encodePackIndex, encodePackTrailer, MAX_PACK_SIZE, type PackEntry } from './pack-format.ts';
import { alignedBuffer, sharedAlignedBuffer } from '../disk/file-io.ts';
import { BufferBin } from './buffer-bin.ts';

export const DEFAULT_PACK_SIZE = 8 * 1024 * 1024;
/**
 * An index object is stored once this many packs wait for one (or INDEX_ENTRIES entries), so
 * a multi-TB backup killed midway leaves at most that many packs for GC to re-index.
 */
export const INDEX_PACKS = 64;
export const INDEX_ENTRIES = 256 * 1024;

interface Settle {
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** A pack buffer's room beyond the target: one more chunk of the default size and the index. */
const PACK_ROOM = 512 * 1024;
/** Open packs reservations fill at once: two chunk workers seal at once on a 2-core host (more packs would only be smaller). */
const PLACING = 2;
/** A pack buffer lent to reservations: the target plus the worst case of a 4 MiB run of chunks (a backup's are 2 MiB) and the index. */
const RESERVE_ROOM = 4 * 1024 * 1024 + 2 * PACK_ROOM;
/**
 * Pack buffers kept for reuse by every writer of this process (page-aligned memory is never
 * freed early). Six: a tracked incremental has five in use at once, and with four kept a warm
 * engine made a new one, ~3,000 page faults, on every call.
 */
const spare = new BufferBin<Buffer>({ maxItems: 6 });

function takeBuffer(min: number): Buffer {
  // Shared, so that workers can seal into it (reserve()); page-aligned either way, for O_DIRECT.
  return spare.take(min) ?? sharedAlignedBuffer(min) ?? alignedBuffer(min) ?? Buffer.allocUnsafeSlow(min);
}

/** A region of an open pack lent by reserve(). */
export interface PackReservation {
  /** Shared memory with room for the reserved bytes: seal the blobs into it back to back from its start. */
  region: Buffer;
  /** Record the blobs sealed into `region` (offsets within it, back to back); the pack may then be stored. */
  commit(blobs: readonly { id: string; offset: number; length: number; plainLength: number }[]): Promise<{ durable: Promise<void> }>;
  /** Nothing was sealed (or it failed): the region goes back unused. */
  cancel(): void;
}

function giveBuffer(b: Buffer): void {
  spare.give(b);
}

/** Let go of the pack buffers kept for reuse (a long-lived process gone idle); returns their bytes. */
export function dropSpareBuffers(): number {
  return spare.drain().reduce((a, b) => a + b.length, 0);
}

interface OpenPack {
  buf: Buffer | undefined;
  entries: PackEntry[];
  size: number;
  durable: Promise<void>;
  settle: Settle;
}

export interface PackWriterOptions {
  target?: number;
  maxSaving?: number;
  signal?: AbortSignal;
  /**
   * Store each pack's index as its own index/<pack> object right after the pack, as format 2
   * to 4 did: for a repository not yet upgraded to format 5, whose other readers would not
   * read an index object listing many packs.
   */
  indexPerPack?: boolean;
}

export class PackWriter {
  readonly #backend: Backend;
  readonly #codec: ObjectCodec;
  readonly #index: ChunkIndex;
  readonly #target: number;
  readonly #maxSaving: number;
  readonly #signal: AbortSignal | undefined;
  readonly #perPack: boolean;
  readonly #saving = new Set<Promise<void>>();
  /** Open packs that reserve() and add() lend, not lent at the moment. */
  readonly #placing: OpenPack[] = [];
  /** Open packs, lent or not (at most PLACING). */
  #placingOpen = 0;
  readonly #placingWaiters: (() => void)[] = [];
  #failure: unknown;

  constructor(backend: Backend, codec: ObjectCodec, index: ChunkIndex, opts: PackWriterOptions = {}) {
    this.#backend = backend;
    this.#codec = codec;
    this.#index = index;
    this.#target = opts.target ?? DEFAULT_PACK_SIZE;
    this.#maxSaving = opts.maxSaving ?? 2;
    this.#signal = opts.signal;
    this.#perPack = opts.indexPerPack ?? false;
  }

  /**
   * Append a sealed blob, one buffer or parts (copied: the caller may reuse them once this
   * returns), into an open pack as reserve() lends them. Resolves once it is taken (waiting
   * while `maxSaving` packs are being stored, which is the backpressure); `durable` settles when
   * its pack is stored (its index object at the latest at flush()).
   */
  async add(id: string, blob: Buffer | readonly Buffer[], plainLength: number): Promise<{ durable: Promise<void> }> {
    const parts = Buffer.isBuffer(blob) ? [blob] : blob;
    const length = parts.reduce((a, b) => a + b.length, 0);
    const r = (await this.#lend(length, false))!;
    let at = 0;
    for (const part of parts) at += part.copy(r.region, at);
    return r.commit([{ id, offset: 0, length, plainLength }]);
  }

  /**
   * Store the partly filled packs and wait for every pack in flight; then the index object of
   * every pack of the process still without one, unless `index` is false: the caller then
   * stores one itself (saveIndexObject) before anything names their chunks, e.g. one for two
   * writers flushed side by side. Rejects with the first failure.
   */
  async flush(opts: { index?: boolean } = {}): Promise<void> {
    await this.#cutPlacing();
    while (this.#saving.size > 0) await Promise.allSettled([...this.#saving]);
    if (this.#failure) throw this.#failure;
    if (!this.#perPack && opts.index !== false) await saveIndexObject(this.#backend, this.#codec, this.#index, this.#signal);
  }

  /**
   * Lend a region of `bytes` (at least the sealed size of what goes in) of an open pack in
   * shared memory, or undefined when this process has no shared memory (the caller then
   * copies blobs in with add()). Each open pack is lent once at a time.
   */
  reserve(bytes: number): Promise<PackReservation | undefined> {
    return this.#lend(bytes, true);
  }

  /** reserve(), or for add() (`shared` false) a region of any memory. */
  async #lend(bytes: number, shared: boolean): Promise<PackReservation | undefined> {
    if (this.#failure) throw this.#failure;
    throwIfAborted(this.#signal);
    // At most PLACING packs open at once (one per concurrent sealer of a backup): many small
    // concurrent submits then share them, one after another, instead of each opening a pack.
    while (this.#placing.length === 0 && this.#placingOpen >= PLACING) await new Promise<void>((r) => this.#placingWaiters.push(r));
    if (this.#failure) throw this.#failure;
    let pack = this.#placing.pop();
    if (!pack) {
      pack = newPack();
      this.#placingOpen++;
    }
    if (pack.size > 0 && pack.size + bytes > pack.buf!.length) {
      const full = pack;
      pack = newPack();
      await this.#cutPack(full);
    }
    pack.buf = room(pack.buf, pack.size, bytes, this.#target + RESERVE_ROOM);
    if (shared && !(pack.buf.buffer instanceof SharedArrayBuffer)) {
      this.#giveBackPlacing(pack);
      return undefined;
    }
    const start = pack.size;
    let settled = false;
    return {
      region: pack.buf.subarray(start, start + bytes),
      commit: async (blobs) => {
        if (settled) throw new HvError('ERR_INTERNAL', 'pack reservation used twice');
        settled = true;
        let end = 0;
        for (const b of blobs) {
          if (b.offset !== end || b.offset + b.length > bytes) {
            this.#giveBackPlacing(pack);
            throw new HvError('ERR_INTERNAL', `pack reservation: blob at ${b.offset}+${b.length} is not right after the last one (at ${end}) within ${bytes} bytes`);
          }
          end = b.offset + b.length;
        }
        for (const b of blobs) pack.entries.push({ id: b.id, offset: start + b.offset, length: b.length, plainLength: b.plainLength });
        pack.size = start + end;
        // Keep the u32 offsets of the format valid whatever the target.
        if (pack.size >= this.#target || pack.size + 256 * 1024 * 1024 > MAX_PACK_SIZE) {
          this.#placingOpen--;
          this.#wakePlacing();
          await this.#cutPack(pack);
        } else this.#giveBackPlacing(pack);
        return { durable: pack.durable };
      },
      cancel: () => {
        if (settled) return;
        settled = true;
        this.#giveBackPlacing(pack);
      },
    };
  }

  #giveBackPlacing(pack: OpenPack): void {
    this.#placing.push(pack);
    this.#wakePlacing();
  }

  #wakePlacing(): void {
    this.#placingWaiters.shift()?.();
  }

  /**
   * Store the open packs reservations filled. Two reservations at once fill two packs, so a
   * flush would leave two small packs where one writer used to leave one: the smaller ones are
   * copied into the largest while they fit (a copy at flush only, of less than a pack).
   */
  async #cutPlacing(): Promise<void> {
    this.#placingOpen -= this.#placing.length;
    const packs = this.#placing.splice(0).filter((p) => {
      if (p.entries.length > 0) return true;
      if (p.buf) giveBuffer(p.buf);
      return false;
    }).sort((a, b) => b.size - a.size);
    let into: OpenPack | undefined;
    for (const p of packs) {
      if (into && into.size + p.size <= into.buf!.length) {
        p.buf!.copy(into.buf!, into.size, 0, p.size);
        for (const e of p.entries) into.entries.push({ ...e, offset: into.size + e.offset });
        into.size += p.size;
        into.durable.then(p.settle.resolve, p.settle.reject);
        giveBuffer(p.buf!);
        p.buf = undefined;
        continue;
      }
      if (into) await this.#cutPack(into);
      into = p;
    }
    if (into) await this.#cutPack(into);
  }

  /** Store `pack` (waiting while `maxSaving` packs are being stored). */
  async #cutPack(pack: OpenPack): Promise<void> {
    while (this.#saving.size >= this.#maxSaving) await Promise.race(this.#saving);
    const saving = this.#save(pack).then(() => {
      pack.settle.resolve();
      if (!this.#perPack) return this.#indexIfDue();
    }, (err: unknown) => {
      pack.settle.reject(err);
      throw err;
    }).catch((err: unknown) => {
      this.#failure ??= err;
    });
    this.#saving.add(saving);
    void saving.finally(() => this.#saving.delete(saving));
  }

  async #save(pack: OpenPack): Promise<void> {
    try {
      throwIfAborted(this.#signal);
      const name = randomBytes(32).toString('hex');
      const sealedIndex = this.#codec.seal('index', encodePackIndex(pack.entries), name);
      const what = `<packs/${name}> (${pack.entries.length} chunks)`;
      const trailer = encodePackTrailer(sealedIndex.length);
      let at = pack.size;
      pack.buf = room(pack.buf, at, sealedIndex.length + trailer.length, 0);
      at += sealedIndex.copy(pack.buf, at);
      at += trailer.copy(pack.buf, at);
      await this.#backend.save(this.#signal, { type: 'packs', name }, pack.buf.subarray(0, at)).catch((err: unknown) => {
        throw wrapError(err, `save ${what}`, `<packs/${name}>`);
      });
      if (this.#perPack) {
        await this.#backend.save(this.#signal, { type: 'index', name }, sealedIndex).catch((err: unknown) => {
          throw wrapError(err, `save <index/${name}> of ${what}`, `<index/${name}>`);
        });
        this.#index.addPack(name, pack.entries);
        this.#index.noteObject(name, [name]);
        return;
      }
      this.#index.addPack(name, pack.entries);
      this.#index.markUnindexed(name);
    } finally {
      if (pack.buf) giveBuffer(pack.buf);
      pack.buf = undefined;
    }
  }

  /** After a pack is stored: an index object once enough packs wait (counted as part of the save: the next pack waits for it, and a failure fails the writer). */
  async #indexIfDue(): Promise<void> {
    const waiting = this.#index.unindexed;
    if (waiting.packs >= INDEX_PACKS || waiting.entries >= INDEX_ENTRIES) await saveIndexObject(this.#backend, this.#codec, this.#index, this.#signal);
  }
}

/**
 * Store one index object listing every pack of `index` waiting for one. Index objects are
 * stored one after another (a pack goes into exactly one); a call waits for those before it,
 * so when it resolves every pack that was waiting when it was made is listed in a durable
 * object. On failure the packs wait again (a later flush tries again).
 */
export function saveIndexObject(backend: Backend, codec: ObjectCodec, index: ChunkIndex, signal?: AbortSignal): Promise<void> {
  const saving = index.indexing.then(async () => {
    const packs = index.takeUnindexed();
    if (packs.length === 0) return;
    // Random, like pack names: create-only saves of two writers never meet, and an encrypted repository's names say nothing of what they index.
    const name = randomBytes(32).toString('hex');
    try {
      throwIfAborted(signal);
      await backend.save(signal, { type: 'index', name }, codec.seal('index', encodeIndexObject(packs), name));
    } catch (err) {
      for (const p of packs) index.markUnindexed(p.name);
      throw wrapError(err, `save <index/${name}> (${packs.length} packs)`, `<index/${name}>`);
    }
    index.noteObject(name, packs.map((p) => p.name));
  });
  index.indexing = saving.catch(() => {});
  return saving;
}

function newPack(): OpenPack {
  let settle!: Settle;
  const durable = new Promise<void>((resolve, reject) => { settle = { resolve, reject }; });
  durable.catch(() => {});
  return { buf: undefined, entries: [], size: 0, durable, settle };
}

/** `buf` (taken or grown as needed) with room for `more` bytes after `used`; new buffers get at least `min`. */
function room(buf: Buffer | undefined, used: number, more: number, min: number): Buffer {
  if (buf && used + more <= buf.length) return buf;
  const bigger = takeBuffer(Math.max(min, used + more + (buf ? PACK_ROOM : 0)));
  if (buf) {
    buf.copy(bigger, 0, 0, used);
    giveBuffer(buf);
  }
  return bigger;
}
