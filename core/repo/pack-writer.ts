// Gathers sealed chunk blobs into packs of about `target` bytes and stores each pack, then
// its index object (write order: pack durable → index durable → chunks known → manifest).
// One file per pack instead of per chunk: a 2 GiB disk at 256 KiB chunks is ~40 packs, not
// ~5000 files each with its own create/fsync/link, and an object store gets few large PUTs.
// Memory: the pack being filled plus at most `maxSaving` packs being stored.

import { randomBytes } from 'node:crypto';
import { throwIfAborted, wrapError } from '../errors.ts';
import type { Backend } from './backend.ts';
import type { ChunkIndex } from './chunk-index.ts';
import type { ObjectCodec } from './crypto/codec.ts';
import { encodePackIndex, encodePackTrailer, MAX_PACK_SIZE, type PackEntry } from './pack-format.ts';

export const DEFAULT_PACK_SIZE = 8 * 1024 * 1024;

interface Settle {
  resolve: () => void;
  reject: (err: unknown) => void;
}

interface OpenPack {
  parts: Buffer[];
  entries: PackEntry[];
  size: number;
  durable: Promise<void>;
  settle: Settle;
}

export interface PackWriterOptions {
  target?: number;
  maxSaving?: number;
  signal?: AbortSignal;
  /** Called with each blob once it is stored (or its pack failed), to free its memory. */
  release?: (blob: Buffer) => void;
}

export class PackWriter {
  readonly #backend: Backend;
  readonly #codec: ObjectCodec;
  readonly #index: ChunkIndex;
  readonly #target: number;
  readonly #maxSaving: number;
  readonly #signal: AbortSignal | undefined;
  readonly #release: (blob: Buffer) => void;
  readonly #saving = new Set<Promise<void>>();
  #open: OpenPack;
  #failure: unknown;

  constructor(backend: Backend, codec: ObjectCodec, index: ChunkIndex, opts: PackWriterOptions = {}) {
    this.#backend = backend;
    this.#codec = codec;
    this.#index = index;
    this.#target = opts.target ?? DEFAULT_PACK_SIZE;
    this.#maxSaving = opts.maxSaving ?? 2;
    this.#signal = opts.signal;
    this.#release = opts.release ?? (() => {});
    this.#open = newPack();
  }

  /**
   * Append a sealed blob. Resolves once it is taken (waiting while `maxSaving` packs are
   * being stored, which is the backpressure); `durable` settles when its pack and index are stored.
   */
  async add(id: string, blob: Buffer, plainLength: number): Promise<{ durable: Promise<void> }> {
    if (this.#failure) throw this.#failure;
    throwIfAborted(this.#signal);
    const pack = this.#open;
    pack.entries.push({ id, offset: pack.size, length: blob.length, plainLength });
    pack.parts.push(blob);
    pack.size += blob.length;
    // Keep the u32 offsets of the format valid whatever the target.
    if (pack.size >= this.#target || pack.size + 256 * 1024 * 1024 > MAX_PACK_SIZE) await this.#cut();
    return { durable: pack.durable };
  }

  /** Store the partly filled pack and wait for every pack in flight; rejects with the first failure. */
  async flush(): Promise<void> {
    if (this.#open.entries.length > 0) await this.#cut();
    while (this.#saving.size > 0) await Promise.allSettled([...this.#saving]);
    if (this.#failure) throw this.#failure;
  }

  async #cut(): Promise<void> {
    const pack = this.#open;
    this.#open = newPack();
    while (this.#saving.size >= this.#maxSaving) await Promise.race(this.#saving);
    const saving = this.#save(pack).then(pack.settle.resolve, (err: unknown) => {
      this.#failure ??= err;
      pack.settle.reject(err);
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
      await this.#backend.save(this.#signal, { type: 'packs', name }, [...pack.parts, sealedIndex, encodePackTrailer(sealedIndex.length)]).catch((err: unknown) => {
        throw wrapError(err, `save ${what}`, `<packs/${name}>`);
      });
      await this.#backend.save(this.#signal, { type: 'index', name }, sealedIndex).catch((err: unknown) => {
        throw wrapError(err, `save <index/${name}> of ${what}`, `<index/${name}>`);
      });
      this.#index.addPack(name, pack.entries);
    } finally {
      for (const b of pack.parts) this.#release(b);
      pack.parts.length = 0;
    }
  }
}

function newPack(): OpenPack {
  let settle!: Settle;
  const durable = new Promise<void>((resolve, reject) => { settle = { resolve, reject }; });
  durable.catch(() => {});
  return { parts: [], entries: [], size: 0, durable, settle };
}
