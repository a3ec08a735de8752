// Gathers sealed chunk blobs into packs of about `target` bytes and stores each pack, then
// its index object (write order: pack durable → index durable → chunks known → manifest).
// One file per pack instead of per chunk: a 2 GiB disk at 256 KiB chunks is ~40 packs, not
// ~5000 files each with its own create/fsync/link, and an object store gets few large PUTs.
// Memory: the pack being filled plus at most `maxSaving` packs being stored. Blobs are copied
// into the pack's buffer as they come (the caller may reuse its memory at once), and pack
// buffers are reused across packs and writers: a backup allocates no memory per chunk, so
// V8 has no dead buffers to collect (one ArrayBuffer per blob kept the main thread's
// collector marking ~30 times in a 2 GiB backup, ~10 % of its CPU on helper threads).
// They are page-aligned, so the local backend writes them with O_DIRECT uncopied.

import { randomBytes } from 'node:crypto';
import { throwIfAborted, wrapError } from '../errors.ts';
import type { Backend } from './backend.ts';
import type { ChunkIndex } from './chunk-index.ts';
import type { ObjectCodec } from './crypto/codec.ts';
import { encodePackIndex, encodePackTrailer, MAX_PACK_SIZE, type PackEntry } from './pack-format.ts';
import { alignedBuffer } from '../disk/file-io.ts';

export const DEFAULT_PACK_SIZE = 8 * 1024 * 1024;

interface Settle {
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** A pack buffer's room beyond the target: one more chunk of the default size and the index. */
const PACK_ROOM = 512 * 1024;
/** Pack buffers kept for reuse by every writer of this process (page-aligned memory is never freed early). */
const spare: Buffer[] = [];
const SPARE_MAX = 4;

function takeBuffer(min: number): Buffer {
  const i = spare.findIndex((b) => b.length >= min);
  if (i >= 0) return spare.splice(i, 1)[0]!;
  return alignedBuffer(min) ?? Buffer.allocUnsafeSlow(min);
}

function giveBuffer(b: Buffer): void {
  if (spare.length < SPARE_MAX) spare.push(b);
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
}

export class PackWriter {
  readonly #backend: Backend;
  readonly #codec: ObjectCodec;
  readonly #index: ChunkIndex;
  readonly #target: number;
  readonly #maxSaving: number;
  readonly #signal: AbortSignal | undefined;
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
    this.#open = newPack();
  }

  /**
   * Append a sealed blob, one buffer or parts (copied: the caller may reuse them once this returns). Resolves
   * once it is taken (waiting while `maxSaving` packs are being stored, which is the
   * backpressure); `durable` settles when its pack and index are stored.
   */
  async add(id: string, blob: Buffer | readonly Buffer[], plainLength: number): Promise<{ durable: Promise<void> }> {
    if (this.#failure) throw this.#failure;
    throwIfAborted(this.#signal);
    const pack = this.#open;
    const parts = Buffer.isBuffer(blob) ? [blob] : blob;
    const length = parts.reduce((a, b) => a + b.length, 0);
    pack.buf = room(pack.buf, pack.size, length, this.#target + PACK_ROOM);
    let at = pack.size;
    for (const part of parts) at += part.copy(pack.buf, at);
    pack.entries.push({ id, offset: pack.size, length, plainLength });
    pack.size += length;
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
      const trailer = encodePackTrailer(sealedIndex.length);
      let at = pack.size;
      pack.buf = room(pack.buf, at, sealedIndex.length + trailer.length, 0);
      at += sealedIndex.copy(pack.buf, at);
      at += trailer.copy(pack.buf, at);
      await this.#backend.save(this.#signal, { type: 'packs', name }, pack.buf.subarray(0, at)).catch((err: unknown) => {
        throw wrapError(err, `save ${what}`, `<packs/${name}>`);
      });
      await this.#backend.save(this.#signal, { type: 'index', name }, sealedIndex).catch((err: unknown) => {
        throw wrapError(err, `save <index/${name}> of ${what}`, `<index/${name}>`);
      });
      this.#index.addPack(name, pack.entries);
    } finally {
      if (pack.buf) giveBuffer(pack.buf);
      pack.buf = undefined;
    }
  }
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
