// Tape drives write fixed-size records; a tar stream is re-blocked into exactly
// `recordSize`-byte writes (like `tar -b`), the last record padded with zeros, so the
// same bytes land on a tape device and in a media file. A file does not care where one
// write ends and the next begins, so for media files (`exact: false`) data passes
// through uncopied and only the end is padded: the bytes are identical either way.

import { Transform, type TransformCallback } from 'node:stream';

export class RecordBlocker extends Transform {
  readonly recordSize: number;
  #pending: Buffer;
  #fill = 0;
  /** Bytes pushed downstream so far (a multiple of recordSize once flushed). */
  written = 0;

  readonly #exact: boolean;

  constructor(recordSize: number, opts: { exact?: boolean } = {}) {
    super({ highWaterMark: 2 });
    this.recordSize = recordSize;
    this.#exact = opts.exact ?? true;
    this.#pending = Buffer.allocUnsafe(recordSize);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (!this.#exact) {
      this.#fill = (this.#fill + chunk.length) % this.recordSize;
      this.#emit(chunk);
      return cb();
    }
    let off = 0;
    while (off < chunk.length) {
      if (this.#fill === 0 && chunk.length - off >= this.recordSize) {
        // Whole records straight from the input, without copying.
        this.#emit(chunk.subarray(off, off + this.recordSize));
        off += this.recordSize;
        continue;
      }
      const n = Math.min(this.recordSize - this.#fill, chunk.length - off);
      chunk.copy(this.#pending, this.#fill, off, off + n);
      this.#fill += n;
      off += n;
      if (this.#fill === this.recordSize) {
        this.#emit(this.#pending);
        this.#pending = Buffer.allocUnsafe(this.recordSize);
        this.#fill = 0;
      }
    }
    cb();
  }

  override _flush(cb: TransformCallback): void {
    if (!this.#exact) {
      if (this.#fill > 0) this.#emit(Buffer.alloc(this.recordSize - this.#fill));
      this.#fill = 0;
      return cb();
    }
    if (this.#fill > 0) {
      this.#pending.fill(0, this.#fill);
      this.#emit(this.#pending);
      this.#fill = 0;
    }
    cb();
  }

  #emit(record: Buffer): void {
    this.written += record.length;
    this.push(record);
  }
}

/** Bytes a tar stream of `tarBytes` takes once padded to whole records. */
export function paddedToRecords(tarBytes: number, recordSize: number): number {
  return Math.ceil(tarBytes / recordSize) * recordSize;
}
