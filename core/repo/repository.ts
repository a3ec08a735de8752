// The repository: a config, content-addressed chunks, restore-point manifests and locks
// over any Backend. Write order (docs/architecture.md "Write order"): chunks first, each
// durable before the manifest naming it; the manifest last, create-only; deletion only
// under an exclusive lock. Every stored object goes through the ObjectCodec, so an
// encrypted repository differs only in the codec chosen at open/init.

import { randomBytes } from 'node:crypto';
import { HvError, isHvError, throwIfAborted, wrapError } from '../errors.ts';
import type { Backend } from './backend.ts';
import { ChunkPool } from './chunk-pool.ts';
import { ChunkIndex } from './chunk-index.ts';
import { createChunkWriter, type ChunkStoreState, type ChunkWriter, type ChunkWriterOptions } from './chunk-writer.ts';
import type { Handle, ObjectReader } from './backend.ts';
import { createEncryptedRepositoryKeys, plainCodec, unlockRepository, type KeyOptions } from './crypto/index.ts';
import { decodeConfig, encodeConfig, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE, PACKS_VERSION, READ_ONLY_VERSION, REPOSITORY_VERSION, SEGMENTS_VERSION, type RepositoryConfig } from './config.ts';
import type { ObjectCodec } from './crypto/codec.ts';
import { acquireLock, breakLocks, type HeldLock, type LockInfo } from './lock.ts';
import { ManifestStore } from './manifest-store.ts';
import type { RestorePointManifest, RestorePointSummary } from './manifest-types.ts';

export const DEFAULT_CHUNK_SIZE = 256 * 1024;
/** Pack readers readChunks keeps open at once. */
const READERS_OPEN = 8;

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

  private constructor(backend: Backend, config: RepositoryConfig, codec: ObjectCodec, threads?: number, warnings: readonly string[] = []) {
    this.backend = backend;
    this.#config = config;
    this.codec = codec;
    this.warnings = warnings;
    this.pool = ChunkPool.acquire(codec, { threads });
    this.#manifests = new ManifestStore(backend, codec);
    this.#store = { backend, codec, pool: this.pool, index: () => this.chunkIndex() };
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
    return new Repository(backend, config, codec, opts.threads, warnings);
  }

  get location(): string {
    return this.backend.location;
  }

  get config(): RepositoryConfig {
    return this.#config;
  }

  /**
   * Rewrite a format 2 or 3 repository's config as format 4 (split slices), so that HVBackup
   * before segments, or before split slices, refuses it (its "format version 4 is not
   * supported") instead of reading, or garbage-collecting, a repository with manifests or
   * segments it cannot read. Every backup may write split slices (any changed-blocks one), so
   * every backup upgrades first. Under the exclusive lock, so no process of any version is
   * using it meanwhile; the config is re-read under the lock (another process may have
   * upgraded it) and replaced atomically and durably. A no-op on a format 4 repository. Call
   * before taking the lock the writes go under.
   */
  async upgradeFormat(signal?: AbortSignal): Promise<boolean> {
    this.#refuseWrites('write restore points');
    const from = this.#config.version;
    if (from !== PACKS_VERSION && from !== SEGMENTS_VERSION) return false;
    const lock = await this.lock({ exclusive: true, operation: `upgrade repository format ${from} to ${REPOSITORY_VERSION}`, signal }).catch((err: unknown) => {
      throw wrapError(err, `upgrade ${this.location} to repository format ${REPOSITORY_VERSION} (needed once, before its first backup by this HVBackup; it takes the repository to itself for a moment)`, this.location);
    });
    try {
      const where = `${this.location} <config>`;
      const current = decodeConfig(await this.backend.load(signal, { type: 'config', name: 'config' }), where);
      if (current.id !== this.#config.id) throw new HvError('ERR_CORRUPT', `${where} now names repository ${current.id}, not ${this.#config.id} as at open`, { target: where });
      if (current.version === PACKS_VERSION || current.version === SEGMENTS_VERSION) {
        const upgraded: RepositoryConfig = { ...current, version: REPOSITORY_VERSION };
        await this.backend.save(signal, { type: 'config', name: 'config' }, encodeConfig(upgraded), { overwrite: true });
        this.#config = upgraded;
        return true;
      }
      this.#config = current;
      return false;
    } finally {
      await lock.release();
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
   * objects, as on archive media) and kept current by this handle's writes; reloaded after
   * lock() or with refresh.
   */
  chunkIndex(opts: { refresh?: boolean; signal?: AbortSignal } = {}): Promise<ChunkIndex> {
    if (opts.refresh) this.#index = undefined;
    this.#index ??= ChunkIndex.load(this.backend, this.codec, opts.signal).catch((err: unknown) => {
      this.#index = undefined;
      throw wrapError(err, `read the chunk index of ${this.location}`, this.location);
    });
    return this.#index;
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
   * Chunks in order, `window` loads and decodes in flight ahead of the consumer (restore
   * read-ahead). Packs are read through backend readers kept open for the whole call (at
   * most READERS_OPEN at once), not opened and closed per blob.
   */
  async *readChunks(ids: Iterable<string>, opts: { window?: number; verify?: boolean; signal?: AbortSignal } = {}): AsyncGenerator<{ id: string; data: Buffer }> {
    const window = opts.window ?? Math.max(8, this.pool.threads * 4);
    const index = await this.chunkIndex({ signal: opts.signal });
    const readers = new Map<string, Promise<ObjectReader>>();
    const reader = (pack: string): Promise<ObjectReader> => {
      let r = readers.get(pack);
      if (r) {
        readers.delete(pack);
        readers.set(pack, r); // most recently used last
        return r;
      }
      r = this.backend.openReader!(opts.signal, { type: 'packs', name: pack });
      r.catch(() => {});
      readers.set(pack, r);
      if (readers.size > READERS_OPEN) {
        const [oldest, old] = readers.entries().next().value!;
        readers.delete(oldest);
        // Reads already started on it finish first: fs handles serve them before close.
        void old.then((o) => o.close(), () => {});
      }
      return r;
    };
    const load = (id: string): Promise<Buffer> => {
      const loc = index.locate(id);
      if (loc?.pack === undefined || !this.backend.openReader) return this.loadChunk(id, opts);
      const pack = loc.pack;
      // Any failure here is retried the plain way, so the error names the chunk (and a
      // missing pack is ERR_NOT_FOUND for it).
      return reader(pack)
        .then((r) => r.read(loc.offset, loc.length))
        .then((stored) => this.pool.open(id, stored, opts.verify ?? true), (err: unknown) => {
          if (isHvError(err, 'ERR_CANCELLED')) throw err;
          return this.loadChunk(id, opts);
        });
    };
    const queue: { id: string; data: Promise<Buffer> }[] = [];
    const it = ids[Symbol.iterator]();
    const fill = () => {
      while (queue.length < window) {
        const n = it.next();
        if (n.done) return;
        const data = load(n.value);
        data.catch(() => {});
        queue.push({ id: n.value, data });
      }
    };
    try {
      fill();
      while (queue.length > 0) {
        throwIfAborted(opts.signal);
        const head = queue.shift()!;
        const data = await head.data;
        fill();
        yield { id: head.id, data };
      }
    } finally {
      await Promise.allSettled(queue.map((q) => q.data));
      await Promise.allSettled([...readers.values()].map((r) => r.then((o) => o.close())));
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
  findRestorePoints(query: { vmName?: string; latest?: boolean } = {}, signal?: AbortSignal): Promise<RestorePointSummary[]> {
    return this.#manifests.find(query, signal);
  }

  /** Remove points/ summaries whose manifest is gone (a removal killed in between). Only for GC under an exclusive lock. */
  async removeOrphanSummaries(signal?: AbortSignal): Promise<number> {
    this.#refuseWrites('remove restore points');
    const orphans = await this.#manifests.orphanSummaries(signal);
    for (const id of orphans) await this.#manifests.removeSummary(id, signal);
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

  // ---- locks ----

  async lock(opts: { exclusive: boolean; operation: string; signal?: AbortSignal }): Promise<HeldLock> {
    const held = await acquireLock(this.backend, opts);
    // Whatever happened before we held the lock (another process's GC) may have removed
    // chunks: list them afresh rather than skip writing a chunk that is gone.
    this.#index = undefined;
    return held;
  }

  /** Remove stale locks; with force, every lock (the user asserts nobody else is running). */
  breakStaleLocks(opts: { force?: boolean; signal?: AbortSignal } = {}): Promise<{ name: string; info: LockInfo | undefined }[]> {
    return breakLocks(this.backend, opts);
  }

  async close(): Promise<void> {
    await this.pool.retire();
    await this.backend.close();
  }
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
