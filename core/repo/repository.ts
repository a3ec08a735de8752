// The repository: a config, content-addressed chunks, restore-point manifests and locks
// over any Backend. Write order (docs/architecture.md "Write order"): chunks first, each
// durable before the manifest naming it; the manifest last, create-only; deletion only
// under an exclusive lock. Every stored object goes through the ObjectCodec, so an
// encrypted repository differs only in the codec chosen at open/init.

import { randomBytes } from 'node:crypto';
import { HvError, isHvError, throwIfAborted, wrapError } from '../errors.ts';
import type { Backend } from './backend.ts';
import { ChunkPool } from './chunk-pool.ts';
import { ChunkIndex, type ChunkLocation } from './chunk-index.ts';
import { createChunkWriter, type ChunkStoreState, type ChunkWriter, type ChunkWriterOptions } from './chunk-writer.ts';
import type { Handle, ObjectReader } from './backend.ts';
import { createEncryptedRepositoryKeys, plainCodec, unlockRepository, type KeyOptions } from './crypto/index.ts';
import { decodeConfig, encodeConfig, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE, MULTI_INDEX_VERSION, PACKS_VERSION, READ_ONLY_VERSION, REPOSITORY_VERSION, SEGMENTS_VERSION, SPLIT_VERSION, type RepositoryConfig } from './config.ts';
import type { ObjectCodec } from './crypto/codec.ts';
import { acquireLock, breakLocks, type HeldLock, type LockInfo } from './lock.ts';
import { ManifestStore, type SummariesOptions } from './manifest-store.ts';
import { saveIndexObject } from './pack-writer.ts';
import type { RestorePointManifest, RestorePointSummary } from './manifest-types.ts';
import { decodeRepairRecord, encodeRepairRecord, type RepairRecord, type RescanSet } from './repair-records.ts';

export const DEFAULT_CHUNK_SIZE = 256 * 1024;
/**
 * Pack readers readChunks keeps open at once. A point after a few tracked incrementals takes
 * its chunks from packs of every backup before it, interleaved slice by slice: with 8 open,
 * a restore of the bench disk's ninth point opened 298 packs 711 times (an open, a stat and a
 * close each, every one a wake of the I/O threads); with 64, once each, and ~10 % less time.
 */
export const READERS_OPEN = 64;
/**
 * readChunks reads chunks that lie close together in one pack with one read of at most this
 * many bytes (one ranged GET on object storage, where each read is a round trip): the bench
 * restore made 4,919 preads of ~170 KiB, one per chunk and one worker message each; now ~500.
 * Small enough that several ranges are in flight within READ_AHEAD_BYTES, keeping both
 * decoding workers busy.
 */
export const RANGE_BYTES = 2 * 1024 * 1024;
/** Bytes between two wanted chunks of a pack that a range reads through rather than split in two reads. */
export const RANGE_GAP = 64 * 1024;
/** Plain bytes of one range's chunks: a range of highly compressible chunks stays a bounded decode. */
const RANGE_PLAIN = 2 * RANGE_BYTES;
/** Plain bytes readChunks holds read ahead of its consumer (restore's memory for read-ahead). */
export const READ_AHEAD_BYTES = 16 * 1024 * 1024;

/** One coalesced read: chunks of one pack, in the order asked for, within [start, end). */
interface ReadRange {
  pack: string;
  start: number;
  end: number;
  plain: number;
  chunks: { id: string; offset: number; length: number; plain: number }[];
}

/** A range being built by readChunks, and the loads of its chunks waiting for it to be read. */
interface BuildingRange {
  r: ReadRange;
  waiting: { resolve: (b: Buffer) => void; reject: (e: unknown) => void }[];
}

function newRange(id: string, pack: string, loc: ChunkLocation): ReadRange {
  const plain = loc.plainLength ?? loc.length;
  return { pack, start: loc.offset, end: loc.offset + loc.length, plain, chunks: [{ id, offset: loc.offset, length: loc.length, plain }] };
}

/**
 * Add the next chunk asked for to range `r` if it lies in r's pack at or after r's start, at
 * most RANGE_GAP past r's end, and the range stays within RANGE_BYTES and RANGE_PLAIN (a chunk
 * asked for twice in a row lies inside the range already and is read once).
 */
function joinRange(r: ReadRange, id: string, loc: ChunkLocation | undefined): boolean {
  if (loc?.pack !== r.pack || loc.offset < r.start || loc.offset > r.end + RANGE_GAP) return false;
  const end = Math.max(r.end, loc.offset + loc.length);
  const plain = loc.plainLength ?? loc.length;
  if (end - r.start > RANGE_BYTES || r.plain + plain > RANGE_PLAIN) return false;
  r.end = end;
  r.plain += plain;
  r.chunks.push({ id, offset: loc.offset, length: loc.length, plain });
  return true;
}

export interface ReadChunksOptions {
  /** Plain bytes read and decoded ahead of the consumer (default READ_AHEAD_BYTES). */
  aheadBytes?: number;
  /** Check each chunk against its id (default true). */
  verify?: boolean;
  /**
   * Bytes of decoded chunks kept for later uses when `ids` (an array, scanned once up front)
   * names a chunk more than once, so a chunk is read and opened once however often a disk
   * holds it. Default 0: every use is read.
   */
  keepRepeats?: number;
  signal?: AbortSignal;
  /**
   * Pack readers to use and leave open (the caller closes them): a caller that reads a little
   * at a time (PointDisk) keeps its packs open across calls instead of each call opening and
   * closing them. Default: the call's own, closed when it ends.
   */
  readers?: PackReaders;
}

/**
 * Open pack readers by pack name, at most READERS_OPEN, least recently used closed first. A
 * reader is opened on the first read of its pack (`signal` is that read's).
 */
export class PackReaders {
  readonly #backend: Backend;
  readonly #open = new Map<string, Promise<ObjectReader>>();

  constructor(backend: Backend) {
    this.#backend = backend;
  }

  get(pack: string, signal?: AbortSignal): Promise<ObjectReader> {
    let r = this.#open.get(pack);
    if (r) {
      this.#open.delete(pack);
      this.#open.set(pack, r); // most recently used last
      return r;
    }
    r = this.#backend.openReader!(signal, { type: 'packs', name: pack });
    r.catch(() => {});
    // A reader that failed to open is not kept: the next read tries again.
    r.catch(() => { if (this.#open.get(pack) === r) this.#open.delete(pack); });
    this.#open.set(pack, r);
    if (this.#open.size > READERS_OPEN) {
      const [oldest, old] = this.#open.entries().next().value!;
      this.#open.delete(oldest);
      // Reads already started on it finish first: fs handles serve them before close.
      void old.then((o) => o.close(), () => {});
    }
    return r;
  }

  async close(): Promise<void> {
    const all = [...this.#open.values()];
    this.#open.clear();
    await Promise.allSettled(all.map((r) => r.then((o) => o.close())));
  }
}

export interface InitOptions {
  chunkSize?: number;
  /** Encrypt with this password (keys/ gets the key file). */
  password?: string;
  /** Key-derivation cost (tests use a cheap one). */
  keyOptions?: KeyOptions;
  signal?: AbortSignal;
}

export interface OpenOptions {
  password?: string;
  signal?: AbortSignal;
  /** Worker threads for hashing/compression; 0 = inline. Default: one per core. */
  threads?: number;
  /**
   * The caller will hash or open chunks (backup, restore, verify): for an encrypted repository,
   * start the chunk workers while the password's key derivation runs (ChunkPool.warmUp).
   */
  warmWorkers?: boolean;
  /** Called for each problem that did not stop the open (e.g. a damaged key file skipped); also kept in `warnings`. */
  onWarning?: (message: string) => void;
}

export class Repository {
  readonly backend: Backend;
  #config: RepositoryConfig;
  readonly codec: ObjectCodec;
  readonly pool: ChunkPool;
  /** Problems found at open that did not stop it, e.g. damaged key files skipped while another one unlocked. */
  readonly warnings: readonly string[];
  readonly #manifests: ManifestStore;
  readonly #store: ChunkStoreState;
  #index: Promise<ChunkIndex> | undefined;
  /** The store may have changed since #index was read (a lock was taken, or refresh asked for). */
  #indexStale = false;
  /** Locks held by writers of this handle (not readers'): while one is, a large index load is stored as an index table. */
  #writeLocks = 0;

  /** Where warnings found while working go (OpenOptions.onWarning). */
  readonly #onWarning: ((message: string) => void) | undefined;

  private constructor(backend: Backend, config: RepositoryConfig, codec: ObjectCodec, threads?: number, warnings: readonly string[] = [], onWarning?: (message: string) => void) {
    this.#onWarning = onWarning;
    this.backend = backend;
    this.#config = config;
    this.codec = codec;
    this.warnings = warnings;
    this.pool = ChunkPool.acquire(codec, { threads });
    // A long-lived process's earlier handle may have left this repository's index: take it, to
    // be refreshed (only what changed is read) rather than read whole.
    const kept = takeKeptIndex(this.#indexKey());
    if (kept) {
      this.#index = Promise.resolve(kept);
      this.#indexStale = true;
    }
    this.#manifests = new ManifestStore(backend, codec, takeKeptSummaries(this.#indexKey()));
    this.#store = { backend, codec, pool: this.pool, index: () => this.chunkIndex(), indexPerPack: () => this.#config.version < MULTI_INDEX_VERSION };
  }

  static async init(backend: Backend, opts: InitOptions = {}): Promise<Repository> {
    const chunkSize = opts.chunkSize ?? DEFAULT_CHUNK_SIZE;
    if (!Number.isSafeInteger(chunkSize) || chunkSize < MIN_CHUNK_SIZE || chunkSize > MAX_CHUNK_SIZE) {
      throw new HvError('ERR_INVALID_ARGUMENT', `chunk size ${chunkSize} is outside ${MIN_CHUNK_SIZE}..${MAX_CHUNK_SIZE} bytes`);
    }
    await refuseNonEmpty(backend, opts.signal);
    let codec = plainCodec();
    let encryption: RepositoryConfig['encryption'] = null;
    if (opts.password !== undefined) {
      const keys = await createEncryptedRepositoryKeys(opts.password, opts.keyOptions);
      codec = keys.codec;
      encryption = keys.configCrypto as Record<string, unknown>;
      await backend.save(opts.signal, { type: 'keys', name: keys.keyId }, keys.keyFile);
    }
    const config: RepositoryConfig = {
      version: REPOSITORY_VERSION,
      id: randomBytes(32).toString('hex'),
      chunkSize,
      compression: 'zstd',
      createdAt: new Date().toISOString(),
      encryption,
    };
    // The config goes last: a folder without it is not (yet) a repository.
    await backend.save(opts.signal, { type: 'config', name: 'config' }, encodeConfig(config));
    return new Repository(backend, config, codec);
  }

  static async open(backend: Backend, opts: OpenOptions = {}): Promise<Repository> {
    let raw: Buffer;
    try {
      raw = await backend.load(opts.signal, { type: 'config', name: 'config' });
    } catch (err) {
      if (backend.isNotFound(err)) {
        throw new HvError('ERR_NOT_FOUND', `${backend.location} is not an HVBackup repository (it has no config file)`, { target: backend.location, cause: err });
      }
      throw wrapError(err, `open repository ${backend.location}`, backend.location);
    }
    const config = decodeConfig(raw, `${backend.location} <config>`);
    // scrypt takes ~0.35 s of one core; the workers' start-up (~0.1 s each) fits beside it.
    if (config.encryption !== null && opts.warmWorkers && opts.threads !== 0) ChunkPool.warmUp(opts.threads);
    const { codec, warnings } = config.encryption === null ? { codec: await plainUnlessKeys(backend, opts.signal), warnings: [] } : await unlock(backend, config, opts);
    for (const w of warnings) opts.onWarning?.(w);
    return new Repository(backend, config, codec, opts.threads, warnings, opts.onWarning);
  }

  get location(): string {
    return this.backend.location;
  }

  get config(): RepositoryConfig {
    return this.#config;
  }

  /**
   * Rewrite a format 2, 3 or 4 repository's config as format 5 (index objects listing many
   * packs), so that HVBackup before them, before split slices, or before segments refuses it
   * (its "format version 5 is not supported") instead of reading, or garbage-collecting, a
   * repository with index objects, manifests or segments it cannot read. Every backup and GC
   * writes such index objects, so each upgrades first. Under the exclusive lock, so no process
   * of any version is using it meanwhile; the config is re-read under the lock (another process
   * may have upgraded it) and replaced atomically and durably. A no-op on a format 5
   * repository. Call before taking the lock the writes go under, or with `locked` when the
   * caller holds the exclusive lock already (GC).
   */
  async upgradeFormat(signal?: AbortSignal, opts: { locked?: boolean } = {}): Promise<boolean> {
    this.#refuseWrites('write restore points');
    const from = this.#config.version;
    const older = (v: number) => v === PACKS_VERSION || v === SEGMENTS_VERSION || v === SPLIT_VERSION;
    if (!older(from)) return false;
    const lock = opts.locked ? undefined : await this.lock({ exclusive: true, operation: `upgrade repository format ${from} to ${REPOSITORY_VERSION}`, signal }).catch((err: unknown) => {
      throw wrapError(err, `upgrade ${this.location} to repository format ${REPOSITORY_VERSION} (needed once, before its first backup by this HVBackup; it takes the repository to itself for a moment)`, this.location);
    });
    try {
      const where = `${this.location} <config>`;
      const current = decodeConfig(await this.backend.load(signal, { type: 'config', name: 'config' }), where);
      if (current.id !== this.#config.id) throw new HvError('ERR_CORRUPT', `${where} now names repository ${current.id}, not ${this.#config.id} as at open`, { target: where });
      if (older(current.version)) {
        const upgraded: RepositoryConfig = { ...current, version: REPOSITORY_VERSION };
        await this.backend.save(signal, { type: 'config', name: 'config' }, encodeConfig(upgraded), { overwrite: true });
        this.#config = upgraded;
        return true;
      }
      this.#config = current;
      return false;
    } finally {
      await lock?.release();
    }
  }

  get chunkSize(): number {
    return this.config.chunkSize;
  }

  // ---- chunks ----

  chunkWriter(opts: ChunkWriterOptions = {}): ChunkWriter {
    this.#refuseWrites('store chunks');
    return createChunkWriter(this.#store, opts);
  }

  /**
   * One index object listing every pack this process stored that none lists yet: after
   * writers flushed with `index: false` (a backup's data and metadata writers, side by side:
   * one object and one durable save per backup instead of one per writer).
   */
  async saveIndex(signal?: AbortSignal): Promise<void> {
    this.#refuseWrites('store chunks');
    if (this.#config.version < MULTI_INDEX_VERSION) return;
    await saveIndexObject(this.#store.backend, this.#store.codec, await this.chunkIndex(), signal);
  }

  /** Format 1 repositories (loose chunks, before packs) are read-only: restore and verify, nothing written. */
  get readOnly(): boolean {
    return this.config.version === READ_ONLY_VERSION;
  }

  #refuseWrites(what: string): void {
    if (!this.readOnly) return;
    throw new HvError('ERR_UNSUPPORTED', `${this.location} is a format ${READ_ONLY_VERSION} repository (made before packs): this HVBackup restores and verifies from it but does not ${what} in it; back up into a new repository (hvbackup repo init)`, { target: this.location });
  }

  chunkId(plain: Buffer): string {
    return this.codec.chunkId(plain);
  }

  /**
   * Where every chunk is, loaded on first use from index/ (packs) and chunks/ (loose
   * objects, as on archive media) and kept current by this handle's writes; brought up to
   * date after lock() or with refresh (ChunkIndex.refresh: only what is new is read, unless
   * something read before is gone). `reread` reads every object again: verify and GC, which
   * must see an object damaged since it was read (index objects are never rewritten, so
   * refresh trusts what it read).
   */
  chunkIndex(opts: { refresh?: boolean; reread?: boolean; signal?: AbortSignal } = {}): Promise<ChunkIndex> {
    if (opts.reread) this.#index = undefined;
    if (opts.refresh) this.#indexStale = true;
    const failed = (err: unknown): never => {
      this.#index = undefined;
      throw wrapError(err, `read the chunk index of ${this.location}`, this.location);
    };
    // verify and GC read every index object, never a table standing in for some (reread).
    const load = () => ChunkIndex.load(this.backend, this.codec, opts.signal, { table: !opts.reread });
    if (this.#index && this.#indexStale) {
      const before = this.#index;
      // A handle whose last read failed starts again from scratch.
      this.#index = before.then((index) => index.refresh(this.backend, this.codec, opts.signal), load).then((index) => this.#afterLoad(index, opts.signal)).catch(failed);
    }
    this.#indexStale = false;
    // Not after a reread either: GC goes through every pack's entries, which a table does not hold.
    this.#index ??= load().then((index) => (opts.reread ? index : this.#afterLoad(index, opts.signal))).catch(failed);
    return this.#index;
  }

  /**
   * After a load or refresh: index tables it could not use become warnings, and under a
   * writer's lock a load that found many records outside any table stores one
   * (ChunkIndex.saveTable), so the next jobs need not read and sort them again. A failure to
   * store one is a warning: the table only saves time.
   */
  async #afterLoad(index: ChunkIndex, signal?: AbortSignal): Promise<ChunkIndex> {
    for (const t of index.tableProblems.splice(0)) this.#onWarning?.(`index table <tables/${t.name}> not used (${t.problem}); read every index object instead. A table only repeats index/: removing it loses nothing`);
    if (this.#writeLocks === 0 || this.readOnly) return index;
    try {
      await index.saveTable(this.backend, this.codec, signal);
    } catch (err) {
      if (signal?.aborted) throw err;
      this.#onWarning?.(`could not store an index table in ${this.location} (jobs go on reading every index object): ${(err as Error).message}`);
    }
    return index;
  }

  /** The object and byte range holding chunk `id` as stored (sealed), or ERR_NOT_FOUND naming <chunks/id>. */
  async locateChunk(id: string, signal?: AbortSignal): Promise<{ handle: Handle; offset: number; length: number }> {
    const loc = (await this.chunkIndex({ signal })).locate(id);
    if (loc?.pack !== undefined) return { handle: { type: 'packs', name: loc.pack }, offset: loc.offset, length: loc.length };
    // Not indexed: try a loose object anyway (written after the index was loaded, or media).
    return { handle: { type: 'chunks', name: id }, offset: 0, length: loc?.length ?? -1 };
  }

  /** A chunk's stored (sealed) bytes, as a loose chunks/<id> object would hold them. */
  async loadStoredChunk(id: string, signal?: AbortSignal): Promise<Buffer> {
    const where = await this.locateChunk(id, signal);
    const range = where.handle.type === 'packs' ? { offset: where.offset, length: where.length } : {};
    return this.backend.load(signal, where.handle, range).catch((err: unknown) => {
      const inPack = where.handle.type === 'packs' ? ` (in <packs/${where.handle.name}>)` : '';
      if (this.backend.isNotFound(err)) {
        throw new HvError('ERR_NOT_FOUND', `chunk <chunks/${id}>${inPack} is missing from ${this.location}`, { target: `<chunks/${id}>`, cause: err, data: { chunk: id } });
      }
      // The index names a range the pack does not have: the pack was cut short (damage).
      if (inPack && isHvError(err, 'ERR_INVALID_ARGUMENT')) {
        throw new HvError('ERR_CORRUPT', `chunk <chunks/${id}>${inPack}: the pack ends before the chunk's ${where.length} bytes at offset ${where.offset} (${err.message})`, { target: `<chunks/${id}>`, cause: err, data: { chunk: id } });
      }
      throw wrapError(err, `load <chunks/${id}>${inPack}`, `<chunks/${id}>`);
    });
  }

  /** Load one chunk's plain bytes, verified against its id (ERR_CORRUPT naming <chunks/id>). */
  async loadChunk(id: string, opts: { verify?: boolean; signal?: AbortSignal } = {}): Promise<Buffer> {
    const stored = await this.loadStoredChunk(id, opts.signal);
    return this.pool.open(id, stored, opts.verify ?? true);
  }

  /**
   * Chunks in order, read and decoded ahead of the consumer (restore, media restore) up to
   * `aheadBytes` of plain bytes. Chunks asked for one after another that lie close together in
   * one pack (the usual case: a backup packs a disk's chunks in disk order) are read with one
   * ranged read of up to RANGE_BYTES (one S3 GET with a Range header), and the range is opened
   * in one worker message; packs are read through backend readers kept open for the whole call
   * (at most READERS_OPEN at once), not opened and closed per blob. Every chunk is still
   * verified against its id, and a chunk that fails names itself and its pack: the first
   * failure ends the stream (restore cannot go on without the chunk).
   */
  async *readChunks(ids: Iterable<string>, opts: ReadChunksOptions = {}): AsyncGenerator<{ id: string; data: Buffer }> {
    for await (const c of this.readChunksSettled(ids, opts)) {
      if (c.error) throw c.error;
      yield c;
    }
  }

  /**
   * readChunks that goes on past a chunk that fails, yielding its error (an HvError naming the
   * chunk) in its place: verify reports every damaged chunk. Cancellation still throws.
   */
  async *readChunksSettled(ids: Iterable<string>, opts: ReadChunksOptions = {}): AsyncGenerator<{ id: string; data: Buffer; error?: undefined } | { id: string; data?: undefined; error: HvError }> {
    const aheadBytes = opts.aheadBytes ?? READ_AHEAD_BYTES;
    const verify = opts.verify ?? true;
    const index = await this.chunkIndex({ signal: opts.signal });
    const readers = opts.readers ?? new PackReaders(this.backend);
    const readRange = (r: ReadRange): Promise<Buffer> => {
      const h: Handle = { type: 'packs', name: r.pack };
      if (!this.backend.openReader) return this.backend.load(opts.signal, h, { offset: r.start, length: r.end - r.start });
      return readers.get(r.pack, opts.signal).then((o) => o.read(r.start, r.end - r.start, this.pool.readBuffer(r.end - r.start)));
    };
    const loadRange = (r: ReadRange): Promise<Buffer>[] => {
      // A failed read is retried chunk by chunk the plain way, so each error names its chunk
      // (and a missing pack is ERR_NOT_FOUND for it, a short one ERR_CORRUPT).
      const opened = readRange(r).then(
        (buf) => this.pool.openRange(buf, r.chunks.map((c) => ({ id: c.id, offset: c.offset - r.start, length: c.length, plain: c.plain })), verify),
        (err: unknown) => {
          if (isHvError(err, 'ERR_CANCELLED')) throw err;
          return undefined;
        },
      );
      return r.chunks.map((c, k) => opened.then((all) => {
        if (!all) return this.loadChunk(c.id, opts);
        const got = all[k]!;
        if (got instanceof HvError) {
          throw new HvError(got.code, `${got.message} (in <packs/${r.pack}> at offset ${c.offset})`, { target: got.target ?? `<chunks/${c.id}>`, cause: got, data: { chunk: c.id, pack: r.pack } });
        }
        return got;
      }));
    };
    const it = ids[Symbol.iterator]();
    let peeked: { id: string; loc: ChunkLocation | undefined } | undefined;
    const take = () => {
      if (peeked) {
        const p = peeked;
        peeked = undefined;
        return p;
      }
      const n = it.next();
      return n.done ? undefined : { id: n.value, loc: index.locate(n.value) };
    };
    const queue: { id: string; bytes: number; data: Promise<Buffer> }[] = [];
    let ahead = 0;
    const push = (id: string, bytes: number, data: Promise<Buffer>) => {
      data.catch(() => {});
      queue.push({ id, bytes, data });
      ahead += bytes;
    };
    // A chunk the list asks for again (keepRepeats): its first read is kept, decoded, until its
    // last use, which gets it; the uses before get copies. Read and verified once, not each time.
    const uses = new Map<string, number>(); // uses not yet queued, of ids asked for more than once
    if (opts.keepRepeats && Array.isArray(ids)) {
      const seen = new Set<string>();
      for (const id of ids as readonly string[]) {
        if (seen.has(id)) uses.set(id, (uses.get(id) ?? 1) + 1);
        else seen.add(id);
      }
    }
    const held = new Map<string, { data: Promise<Buffer>; bytes: number }>();
    let heldBytes = 0;
    /** Queue one use of `id`; false when `load` (a read already made) was not needed. */
    const queueUse = (id: string, bytes: number, load?: Promise<Buffer>): boolean => {
      const left = (uses.get(id) ?? 1) - 1;
      if (left > 0) uses.set(id, left);
      else uses.delete(id);
      const h = held.get(id);
      if (h) {
        if (left > 0) {
          push(id, h.bytes, h.data.then((b) => this.pool.copyOf(b)));
        } else {
          held.delete(id);
          heldBytes -= h.bytes;
          push(id, h.bytes, h.data);
        }
        return false;
      }
      const data = load ?? this.loadChunk(id, opts);
      if (left > 0 && heldBytes + bytes <= (opts.keepRepeats ?? 0)) {
        // Held in a buffer of its own: a raw chunk's view would keep its whole range read alive.
        const kept = data.then((b) => this.pool.own(b));
        held.set(id, { data: kept, bytes });
        heldBytes += bytes;
        kept.catch(() => {});
        push(id, bytes, kept.then((b) => this.pool.copyOf(b)));
      } else {
        push(id, bytes, data);
      }
      return true;
    };
    // Ranges being built, one per pack, while one fill() runs. A point after a few tracked
    // incrementals asks for chunks that alternate between packs (a split slice's earlier chunk,
    // then its new pieces): joining only consecutive chunks made 3,656 ranges of 2.3 chunks for
    // the bench disk's ninth point (each a read, a worker message and their wake-ups), against
    // 502 of 8.3 for a full. A range is read once the next chunk of its pack does not fit it,
    // or when the fill ends; chunks still come out in the order asked for.
    const open = new Map<string, BuildingRange>();
    const issue = (o: BuildingRange) => {
      open.delete(o.r.pack);
      loadRange(o.r).forEach((p, k) => p.then(o.waiting[k]!.resolve, o.waiting[k]!.reject));
    };
    const fill = () => {
      // Refilled once half is used, not after every chunk: a fill of one chunk has nothing
      // to join it with.
      if (queue.length > 0 && ahead > aheadBytes / 2) return;
      let lastPack: string | undefined;
      for (let next = take(); next; next = take()) {
        const loc = next.loc;
        let o = loc?.pack === undefined || held.has(next.id) ? undefined : open.get(loc.pack);
        // Past the read-ahead, only a chunk that joins the range of the chunk before it still
        // goes in (as consecutive chunks always did): that range is read anyway, a small
        // read-ahead would otherwise read chunk by chunk, and memory stays bounded by one range.
        const over = ahead >= aheadBytes;
        const joined = o !== undefined && (!over || loc?.pack === lastPack) && joinRange(o.r, next.id, loc);
        if (over && !joined) {
          peeked = next;
          break;
        }
        lastPack = loc?.pack;
        if (loc?.pack === undefined || held.has(next.id)) {
          // Kept from an earlier use (it ends its pack's range: its bytes are not read again);
          // or a loose object (media, format 1) or one the index does not know, loaded alone.
          const kept = loc?.pack === undefined ? undefined : open.get(loc.pack);
          if (kept) issue(kept);
          queueUse(next.id, held.get(next.id)?.bytes ?? loc?.plainLength ?? this.chunkSize);
          continue;
        }
        if (o && !joined) {
          issue(o);
          o = undefined;
        }
        if (!o) {
          o = { r: newRange(next.id, loc.pack, loc), waiting: [] };
          open.set(loc.pack, o);
        }
        const c = o.r.chunks.at(-1)!;
        const waiting = o.waiting;
        const load = new Promise<Buffer>((resolve, reject) => waiting.push({ resolve, reject }));
        // A chunk twice in one range is opened twice; the second is not needed once the first is kept.
        if (!queueUse(c.id, c.plain, load)) load.then((b) => this.pool.release(b), () => {});
      }
      for (const o of [...open.values()]) issue(o);
    };
    try {
      fill();
      while (queue.length > 0) {
        throwIfAborted(opts.signal);
        const head = queue.shift()!;
        let data: Buffer;
        try {
          data = await head.data;
        } catch (err) {
          if (isHvError(err, 'ERR_CANCELLED')) throw err;
          ahead -= head.bytes;
          fill();
          yield { id: head.id, error: isHvError(err) ? err : wrapError(err, `read <chunks/${head.id}>`, `<chunks/${head.id}>`) };
          continue;
        }
        ahead -= head.bytes;
        fill();
        yield { id: head.id, data };
      }
    } finally {
      // Chunks read ahead or kept that nobody will see: free them now rather than at V8's leisure.
      for (const s of await Promise.allSettled([...queue, ...held.values()].map((q) => q.data))) if (s.status === 'fulfilled') this.pool.release(s.value);
      if (!opts.readers) await readers.close();
    }
  }

  /** Which of `ids` the repository has (from the index). */
  async hasChunks(ids: Iterable<string>, opts: { refresh?: boolean } = {}): Promise<Set<string>> {
    const index = await this.chunkIndex({ refresh: opts.refresh });
    return new Set([...ids].filter((id) => index.has(id)));
  }

  /** Every stored chunk once: its id, stored size, and pack (undefined for a loose object). */
  async *listChunks(signal?: AbortSignal): AsyncIterable<{ id: string; size: number; pack?: string }> {
    for (const [id, loc] of (await this.chunkIndex({ signal })).entries()) yield { id, size: loc.length, pack: loc.pack };
  }

  async listChunkIds(signal?: AbortSignal): Promise<string[]> {
    return [...(await this.chunkIndex({ signal })).entries()].map(([id]) => id);
  }

  // ---- manifests ----

  /** Store a manifest (create-only, after its chunks). Assigns a random id when m.id is empty. Returns the id. */
  async saveManifest(m: RestorePointManifest, signal?: AbortSignal): Promise<string> {
    this.#refuseWrites('write restore points');
    if (m.version > 1 && this.#config.version < SEGMENTS_VERSION) {
      throw new HvError('ERR_UNSUPPORTED', `${this.location} is a format ${this.#config.version} repository: a version ${m.version} manifest (disks in segments) needs it upgraded to format ${REPOSITORY_VERSION} first (upgradeFormat), or HVBackup before segments would misread it`, { target: this.location });
    }
    return this.#manifests.save(m, signal);
  }

  loadManifest(id: string, signal?: AbortSignal): Promise<RestorePointManifest> {
    return this.#manifests.load(id, signal);
  }

  listManifests(signal?: AbortSignal): Promise<RestorePointManifest[]> {
    return this.#manifests.list(signal);
  }

  listManifestIds(signal?: AbortSignal): Promise<string[]> {
    return this.#manifests.ids(signal);
  }

  /** Full id from a unique prefix of at least 8 hex characters (like git). */
  resolveManifestId(prefix: string, signal?: AbortSignal): Promise<string> {
    return this.#manifests.resolve(prefix, signal);
  }

  /** Restore points, newest first; filtered by VM name (case-insensitive); latest: only the newest per VM. */
  findRestorePoints(query: { vmName?: string; latest?: boolean } = {}, signal?: AbortSignal, opts: SummariesOptions = {}): Promise<RestorePointSummary[]> {
    if (opts.consolidate && this.readOnly) opts = { ...opts, consolidate: false };
    return this.#manifests.find(query, signal, opts);
  }

  /** Remove points/ summaries whose manifest is gone (a removal killed in between). Only for GC under an exclusive lock. */
  async removeOrphanSummaries(signal?: AbortSignal): Promise<number> {
    this.#refuseWrites('remove restore points');
    const orphans = await this.#manifests.orphanSummaries(signal);
    for (const id of orphans) await this.#manifests.removeSummary(id, signal);
    // Summary sets no reader reads any more (older than the newest complete one).
    for (const name of await this.#manifests.staleSets(signal)) await this.#manifests.removeSummary(name, signal);
    return orphans.length;
  }

  /** Delete manifests (not chunks: GC is core/retention's job) under an exclusive lock. */
  async removeRestorePoints(ids: string[], opts: { signal?: AbortSignal; lock?: HeldLock } = {}): Promise<string[]> {
    this.#refuseWrites('remove restore points');
    const full = await Promise.all(ids.map((id) => this.resolveManifestId(id, opts.signal)));
    const lock = opts.lock ?? (await this.lock({ exclusive: true, operation: 'remove restore points', signal: opts.signal }));
    try {
      for (const id of full) await this.#manifests.remove(id, opts.signal);
    } finally {
      if (!opts.lock) await lock.release();
    }
    return full;
  }

  // ---- repair records ----

  /** Store a repair record (repair-records.ts) under a random name; the caller holds the exclusive lock. */
  async saveRepairRecord(r: RepairRecord, signal?: AbortSignal): Promise<string> {
    this.#refuseWrites('record a repair');
    const name = randomBytes(32).toString('hex');
    await this.backend.save(signal, { type: 'repairs', name }, this.codec.seal('repairs', encodeRepairRecord(r), name));
    return name;
  }

  /** Every repair record by name; one that does not load is in `unreadable` instead. */
  async repairRecords(signal?: AbortSignal): Promise<{ records: Map<string, RepairRecord>; unreadable: { name: string; problem: string }[] }> {
    const records = new Map<string, RepairRecord>();
    const unreadable: { name: string; problem: string }[] = [];
    for await (const o of this.backend.list(signal, 'repairs')) {
      const what = `<repairs/${o.name}>`;
      try {
        const stored = await this.backend.load(signal, { type: 'repairs', name: o.name });
        records.set(o.name, decodeRepairRecord(this.codec.open('repairs', o.name, stored), what));
      } catch (err) {
        if (isHvError(err, 'ERR_CANCELLED')) throw err;
        unreadable.push({ name: o.name, problem: (err as Error).message });
      }
    }
    return { records, unreadable };
  }

  /** The points whose VMs read their disks whole at their next backup (RescanSet). */
  async pointsToRescan(signal?: AbortSignal): Promise<RescanSet> {
    const { records, unreadable } = await this.repairRecords(signal);
    const points = new Map<string, { repairedAt: string; chunks: number }>();
    for (const r of records.values()) for (const p of r.points) points.set(p, { repairedAt: r.repairedAt, chunks: r.chunks.length });
    return { points, unreadable };
  }

  /** Remove a repair record (GC, once none of its points is left; the caller holds the exclusive lock). */
  async removeRepairRecord(name: string, signal?: AbortSignal): Promise<void> {
    this.#refuseWrites('remove a repair record');
    await this.backend.remove(signal, { type: 'repairs', name });
  }

  // ---- locks ----

  /**
   * `reader`: a shared lock for an operation that only reads (restore, verify), which goes on
   * unlocked, with a warning, when the store is mounted read-only and no lock file can be written.
   */
  async lock(opts: { exclusive: boolean; operation: string; signal?: AbortSignal; reader?: boolean }): Promise<HeldLock> {
    const held = await acquireLock(this.backend, { ...opts, onReadOnly: opts.reader ? (m) => this.#onWarning?.(m) : undefined });
    // Whatever happened before we held the lock (another process's GC) may have removed
    // chunks: list them afresh rather than skip writing a chunk that is gone.
    this.#indexStale = true;
    // A reader's lock (restore, verify) or none (a read-only store): nothing is written, not even a table.
    if (opts.reader || held.name === '') return held;
    this.#writeLocks++;
    let released = false;
    return {
      name: held.name,
      info: held.info,
      check: () => held.check(),
      release: () => {
        if (!released) this.#writeLocks--;
        released = true;
        return held.release();
      },
    };
  }

  /** Remove stale locks; with force, every lock (the user asserts nobody else is running). */
  breakStaleLocks(opts: { force?: boolean; signal?: AbortSignal } = {}): Promise<{ name: string; info: LockInfo | undefined }[]> {
    return breakLocks(this.backend, opts);
  }

  async close(): Promise<void> {
    await this.pool.retire();
    if (keepIndexes > 0) keepSummaries(this.#indexKey(), this.#manifests.summaryCache);
    if (this.#index) {
      const index = await this.#index.catch(() => undefined);
      // Not when packs of this handle's writers wait for an index object (a backup failed
      // before its flush): another process's GC deletes such packs as garbage, and may touch
      // no index object, so the next refresh would not notice and a backup would name them.
      if (keepIndexes > 0 && index && index.damaged.length === 0 && index.unindexed.packs === 0) keepIndex(this.#indexKey(), index);
      // Its scratch files (a large repository's) go now, not when the collector finds it.
      else index?.close();
    }
    await this.backend.close();
  }

  /** Which repository an index is of: where it is, and its id (a repository made anew at the same path is another). */
  #indexKey(): string {
    return `${this.backend.location}\n${this.#config.id}`;
  }
}

/**
 * Chunk indexes kept by closed handles for the next open of the same repository, in a process
 * that serves many calls (the PowerShell module's bridge; keepChunkIndexes). A kept index is
 * refreshed before use like any index after a lock: the index/ listing, plus only the objects it
 * has not read, or read whole again if any it had read is gone (another process's GC). Each
 * handle takes its own (taken out, put back at close), so two handles never share one.
 */
const keptIndexes = new Map<string, ChunkIndex>();
let keepIndexes = 0;

/** How many repositories' indexes this process keeps between handles (default 0: none, a CLI run reads its index once). */
export function keepChunkIndexes(n: number): void {
  keepIndexes = n;
  while (keptIndexes.size > n) dropKept(keptIndexes.keys().next().value!);
  while (keptSummaries.size > n) keptSummaries.delete(keptSummaries.keys().next().value!);
}

/**
 * Forget every kept chunk index and restore-point summary list (a long-lived process gone
 * idle); returns how many indexes. The setting stays.
 */
export function dropKeptChunkIndexes(): number {
  const n = keptIndexes.size;
  for (const key of [...keptIndexes.keys()]) dropKept(key);
  keptSummaries.clear();
  return n;
}

/**
 * Restore-point summaries kept the same way, for as many repositories (ManifestStore.summaryCache):
 * a backup looks up its VM's previous point among every point's summary, and reading them all
 * again was O(points) file reads per call.
 */
const keptSummaries = new Map<string, Map<string, RestorePointSummary>>();

function takeKeptSummaries(key: string): Map<string, RestorePointSummary> | undefined {
  const kept = keptSummaries.get(key);
  keptSummaries.delete(key);
  return kept;
}

function keepSummaries(key: string, summaries: Map<string, RestorePointSummary>): void {
  // Two handles open at once each had their own map: keep what both read (a point's summary
  // never changes, and listing decides which exist).
  const other = keptSummaries.get(key);
  if (other) for (const [id, s] of other) if (!summaries.has(id)) summaries.set(id, s);
  keptSummaries.delete(key);
  keptSummaries.set(key, summaries);
  while (keptSummaries.size > keepIndexes) keptSummaries.delete(keptSummaries.keys().next().value!);
}

function takeKeptIndex(key: string): ChunkIndex | undefined {
  const index = keptIndexes.get(key);
  keptIndexes.delete(key);
  return index;
}

function keepIndex(key: string, index: ChunkIndex): void {
  const before = keptIndexes.get(key);
  if (before !== index) before?.close();
  keptIndexes.delete(key);
  keptIndexes.set(key, index);
  while (keptIndexes.size > keepIndexes) dropKept(keptIndexes.keys().next().value!);
}

/** A kept index let go: nobody holds it (a handle takes its index out while it uses it), so its scratch files close now. */
function dropKept(key: string): void {
  keptIndexes.get(key)?.close();
  keptIndexes.delete(key);
}

async function refuseNonEmpty(backend: Backend, signal?: AbortSignal): Promise<void> {
  for (const type of ['config', 'keys', 'chunks', 'manifests'] as const) {
    for await (const o of backend.list(signal, type)) {
      void o;
      throw new HvError('ERR_ALREADY_EXISTS', `cannot create a repository in ${backend.location}: it already holds ${type === 'config' ? 'a repository' : `${type}/ objects`}`, { target: backend.location });
    }
  }
}

/**
 * An unencrypted config next to key files means someone altered the config (a downgrade):
 * backing up into it would write plaintext where the owner expects ciphertext. Refuse.
 */
async function plainUnlessKeys(backend: Backend, signal?: AbortSignal): Promise<ObjectCodec> {
  for await (const o of backend.list(signal, 'keys')) {
    const where = `${backend.location} <config>`;
    throw new HvError('ERR_CORRUPT', `${where} says the repository is not encrypted, but keys/ holds key file ${o.name}: the config was altered or damaged; refusing to use it unencrypted`, { target: where });
  }
  return plainCodec();
}

async function unlock(backend: Backend, config: RepositoryConfig, opts: OpenOptions): Promise<{ codec: ObjectCodec; warnings: string[] }> {
  if (opts.password === undefined || opts.password === '') {
    throw new HvError('ERR_AUTH', `repository ${backend.location} is encrypted: a password is needed`, { target: backend.location });
  }
  const keyFiles: { name: string; data: Buffer }[] = [];
  for await (const o of backend.list(opts.signal, 'keys')) keyFiles.push({ name: o.name, data: await backend.load(opts.signal, { type: 'keys', name: o.name }) });
  if (keyFiles.length === 0) {
    throw new HvError('ERR_CORRUPT', `repository ${backend.location} is encrypted but has no key files in keys/`, { target: backend.location });
  }
  const { codec, warnings } = await unlockRepository(keyFiles, config.encryption!, opts.password, backend.location);
  return { codec, warnings };
}
