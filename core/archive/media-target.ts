// Where media are written: media files in a folder, or a tape device written as one
// plain sequential stream (never seeked, like `tar -cf /dev/nst0`).

import { closeSync, fdatasync, constants as fsc, openSync, promises as fsp, writevSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { HvError, wrapError } from '../errors.ts';

export interface OpenMedium {
  stream: Writable;
  /** Make the medium durable (media file: fsync, still under its temporary name). */
  seal(): Promise<void>;
  /**
   * Make it visible under its final name (media file: rename into place). Called after the
   * catalog names the medium, so a crash in between leaves a sealed `<file>.partial` that the
   * next export publishes (publishSealedMedia), never a final file the catalog does not know.
   */
  publish(): Promise<void>;
  /** Forget a half-written medium. */
  abort(): Promise<void>;
}

export interface MediaTarget {
  readonly location: string;
  /** True when each medium is a file we can name (and later read back by position). */
  readonly files: boolean;
  /** True when every write must be exactly one record (a tape device); files need not. */
  readonly exactRecords: boolean;
  open(mediumId: string, fileName: string, opts: { replace: boolean }): Promise<OpenMedium>;
}

/**
 * Writes a media file with synchronous vectored writes of up to 4 MiB. Local media files
 * are written at page-cache speed; doing it on the main thread keeps libuv's thread pool
 * for the chunk reads, which otherwise queue ahead of the writes (bench/archive: the
 * write phase took up to 4x longer through fs.WriteStream). Tape devices, which can block
 * for seconds, keep the asynchronous stream.
 */
const FLUSH_EVERY = 64 * 1024 * 1024;

export class SyncFileWriter extends Writable {
  readonly path: string;
  bytesWritten = 0;
  #fd: number | undefined;
  /** Background fdatasync started every FLUSH_EVERY bytes, so the disk writes while we copy. */
  #flushing: Promise<void> | undefined;
  #flushedTo = 0;

  constructor(path: string) {
    super({ highWaterMark: 4 * 1024 * 1024 });
    this.path = path;
  }

  override _construct(cb: (err?: Error | null) => void): void {
    try {
      this.#fd = openSync(this.path, 'w');
      cb();
    } catch (e) {
      cb(e as Error);
    }
  }

  override _writev(chunks: { chunk: Buffer }[], cb: (err?: Error | null) => void): void {
    try {
      let bufs = chunks.map((c) => c.chunk);
      while (bufs.length > 0) {
        let n = writevSync(this.#fd!, bufs);
        this.bytesWritten += n;
        this.#startFlush();
        while (bufs.length > 0 && n >= bufs[0]!.length) n -= bufs.shift()!.length;
        if (n > 0) bufs[0] = bufs[0]!.subarray(n);
      }
      cb();
    } catch (e) {
      cb(e as Error);
    }
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this._writev([{ chunk }], cb);
  }

  #startFlush(): void {
    if (this.#flushing || this.bytesWritten - this.#flushedTo < FLUSH_EVERY || this.#fd === undefined) return;
    this.#flushedTo = this.bytesWritten;
    const fd = this.#fd;
    this.#flushing = new Promise<void>((resolve) => fdatasync(fd, () => resolve())).then(() => { this.#flushing = undefined; });
  }

  override _final(cb: (err?: Error | null) => void): void {
    // Never close the descriptor under a running background flush.
    void (this.#flushing ?? Promise.resolve()).then(() => this._destroy(null, cb));
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    const fd = this.#fd;
    this.#fd = undefined;
    try {
      if (fd !== undefined) closeSync(fd);
    } catch (e) {
      return cb(err ?? (e as Error));
    }
    cb(err);
  }
}

export function mediaFileName(mediumId: string): string {
  return `${mediumId}.tar`;
}

export async function publishFile(temp: string, final: string): Promise<void> {
  await fsp.rename(temp, final);
  const dir = await fsp.open(dirname(final), 'r').catch(() => undefined);
  if (dir) { try { await dir.sync(); } catch { /* not supported on every platform */ } finally { await dir.close(); } }
}

export class DirectoryTarget implements MediaTarget {
  readonly location: string;
  readonly files = true;
  readonly exactRecords = false;
  constructor(dir: string) {
    this.location = dir;
  }

  async open(mediumId: string, fileName: string, opts: { replace: boolean }): Promise<OpenMedium> {
    const final = join(this.location, fileName);
    await fsp.mkdir(this.location, { recursive: true });
    if (!opts.replace && (await fsp.stat(final).then(() => true, () => false))) {
      // A file the catalog does not know: someone else's, or a pool whose catalog was lost. Never overwrite it.
      throw new HvError('ERR_ALREADY_EXISTS', `media file ${final} exists but the pool's catalog does not know it; move it away or rebuild the catalog (hvbackup archive catalog)`, { target: final });
    }
    const temp = `${final}.partial`;
    const stream = new SyncFileWriter(temp);
    return {
      stream,
      async seal() {
        await finished(stream).catch(() => undefined);
        const fh = await fsp.open(temp, 'r+');
        try { await fh.sync(); } finally { await fh.close(); }
      },
      publish: () => publishFile(temp, final),
      async abort() {
        stream.destroy();
        await fsp.rm(temp, { force: true });
      },
    };
  }
}

export class DeviceTarget implements MediaTarget {
  readonly location: string;
  readonly files = false;
  readonly exactRecords = true;
  readonly #changeMedium: ((mediumId: string) => Promise<void>) | undefined;
  #opened = 0;

  constructor(device: string, changeMedium?: (mediumId: string) => Promise<void>) {
    this.location = device;
    this.#changeMedium = changeMedium;
  }

  async open(mediumId: string): Promise<OpenMedium> {
    if (this.#opened++ > 0) {
      if (!this.#changeMedium) throw new HvError('ERR_INVALID_ARGUMENT', `the export needs another medium (${mediumId}) but nobody can change the tape in ${this.location}; use a larger capacity or media files`, { target: this.location });
      await this.#changeMedium(mediumId);
    }
    // O_WRONLY without O_CREAT/O_TRUNC: opens an existing device (OPEN_EXISTING on Windows).
    const fh = await fsp.open(this.location, fsc.O_WRONLY).catch((e: unknown) => { throw wrapError(e, `open tape device ${this.location}`, this.location); });
    const stream = fh.createWriteStream();
    return {
      stream,
      async seal() { await finished(stream).catch(() => undefined); },
      async publish() {},
      async abort() { stream.destroy(); },
    };
  }
}
