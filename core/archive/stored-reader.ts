// Reads stored objects (chunks as the repository stores them) ahead of the media writer.
// For a local repository the files are read straight into a small pool of reused buffers:
// fresh 1 MiB buffers cost page faults that made reading ~3x dearer in CPU than the copy
// itself (bench/archive). A buffer goes back to the pool only once the medium has been
// handed every byte of it (the caller says when, through `release`). Other backends, and
// objects larger than a pool buffer, use the ordinary Backend.load.

import { open } from 'node:fs/promises';
import { HvError, throwIfAborted } from '../errors.ts';
import { LocalBackend } from '../repo/backend-local.ts';
import type { Repository } from '../repo/repository.ts';

export interface StoredObject {
  id: string;
  data: Buffer;
  /** Give the buffer back (no-op for buffers not from the pool). */
  release(): void;
}

export class StoredObjectReader {
  readonly #repo: Repository;
  readonly #free: Buffer[] = [];
  readonly #size: number;
  /** Called while waiting for a buffer: should release what has reached the medium. */
  reclaim: () => void = () => {};

  constructor(repo: Repository, opts: { buffers?: number } = {}) {
    this.#repo = repo;
    this.#size = repo.chunkSize + 64 * 1024;
    if (repo.backend instanceof LocalBackend) {
      for (let i = 0; i < (opts.buffers ?? 16); i++) this.#free.push(Buffer.allocUnsafe(this.#size));
    }
  }

  /**
   * A free pool buffer, else a new one (it joins the pool when released). Never waits: the
   * pipeline's own backpressure (read-ahead window, stream buffers) bounds how many are out,
   * so the pool grows to that working set once and is then recycled.
   */
  #acquire(signal?: AbortSignal): Buffer {
    throwIfAborted(signal);
    this.reclaim();
    return this.#free.pop() ?? Buffer.allocUnsafe(this.#size);
  }

  #release(b: Buffer): void {
    this.#free.push(b);
  }

  async load(type: 'chunks' | 'manifests', id: string, signal?: AbortSignal): Promise<StoredObject> {
    const backend = this.#repo.backend;
    if (type === 'chunks' && backend instanceof LocalBackend) {
      const where = await this.#repo.locateChunk(id, signal);
      const packed = where.handle.type === 'packs';
      if (!packed || where.length <= this.#size) {
        const buf = this.#acquire(signal);
        const want = packed ? where.length : buf.length;
        // A read that fails or comes up short falls through to the repository's own load,
        // whose error names the chunk (missing, or a pack cut short).
        const n = await readInto(backend.pathOf(where.handle), buf, where.offset, want).catch(() => -1);
        if (n >= 0 && n < buf.length && !(packed && n < want)) {
          let released = false;
          return { id, data: buf.subarray(0, n), release: () => { if (!released) { released = true; this.#release(buf); } } };
        }
        this.#release(buf);
      }
    }
    const data = type === 'chunks'
      ? await this.#repo.loadStoredChunk(id, signal)
      : await backend.load(signal, { type, name: id }).catch((err: unknown) => {
        throw backend.isNotFound(err) ? missing(type, id, this.#repo.location, err) : err;
      });
    return { id, data, release: () => {} };
  }

  /** Objects in order, `window` loads ahead of the consumer. */
  async *readAll(type: 'chunks' | 'manifests', ids: string[], signal?: AbortSignal, window = 16): AsyncGenerator<StoredObject> {
    const queue: Promise<StoredObject>[] = [];
    let next = 0;
    const fill = () => {
      while (queue.length < window && next < ids.length) {
        const p = this.load(type, ids[next++]!, signal);
        p.catch(() => {});
        queue.push(p);
      }
    };
    fill();
    while (queue.length > 0) {
      const head = await queue.shift()!;
      fill();
      yield head;
    }
  }
}

/** Reads up to `want` bytes at `offset` of a file into `buf`; returns how many (want when the file may hold more). */
async function readInto(path: string, buf: Buffer, offset: number, want: number): Promise<number> {
  const fh = await open(path, 'r');
  try {
    let n = 0;
    while (n < want) {
      const { bytesRead } = await fh.read(buf, n, want - n, offset + n);
      if (bytesRead === 0) break;
      n += bytesRead;
    }
    return n;
  } finally {
    await fh.close();
  }
}

function missing(type: string, id: string, location: string, cause: unknown): HvError {
  return new HvError('ERR_NOT_FOUND', `<${type}/${id}> is missing from ${location}; run hvbackup verify`, { target: `<${type}/${id}>`, cause });
}
