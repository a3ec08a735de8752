// Writes one medium: a tar stream (tar-stream's pack, ustar headers) re-blocked into
// fixed records, with byte-exact accounting of where each entry's data lands, so the
// catalog can point at it and the medium never exceeds its capacity.

import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { HvError, wrapError } from '../errors.ts';
import { catalogEntry, type CatalogEntry } from './catalog.ts';
import { tarEntrySize } from './entries.ts';
import type { OpenMedium } from './media-target.ts';
import { RecordBlocker } from './records.ts';

const END_BLOCKS = 1024;

export class MediumWriter {
  readonly mediumId: string;
  readonly entries: CatalogEntry[] = [];
  /** Tar bytes written so far (headers + padded data). */
  tarBytes = 0;
  /** Entry count of repository objects (not label, README, trailer). */
  objectEntries = 0;
  readonly #usable: number;
  readonly #pack = tar.pack();
  readonly #blocker: RecordBlocker;
  readonly #done: Promise<void>;
  readonly #mtime: Date;
  #error: unknown;
  #finished = false;
  readonly #out: OpenMedium;

  /** `reserve`: tar bytes kept free for the trailer entry. */
  constructor(mediumId: string, out: OpenMedium, opts: { capacity: number; recordSize: number; reserve: number; mtime: Date; exactRecords: boolean }) {
    this.mediumId = mediumId;
    this.#out = out;
    this.#mtime = opts.mtime;
    this.#blocker = new RecordBlocker(opts.recordSize, { exact: opts.exactRecords });
    this.#usable = Math.floor(opts.capacity / opts.recordSize) * opts.recordSize - END_BLOCKS - opts.reserve;
    this.#done = pipeline(this.#pack, this.#blocker, out.stream).catch((e: unknown) => {
      this.#error = e;
      throw wrapError(e, `write medium ${mediumId}`, mediumId);
    });
    this.#done.catch(() => undefined);
  }

  /** Largest data length (a multiple of 512) one more entry may have on this medium. */
  room(): number {
    return Math.max(0, Math.floor((this.#usable - this.tarBytes - 512) / 512) * 512);
  }

  async add(name: string, data: Buffer, isObject: boolean): Promise<void> {
    if (this.#error) throw wrapError(this.#error, `write medium ${this.mediumId}`, this.mediumId);
    if (isObject && data.length > this.room()) {
      throw new HvError('ERR_INTERNAL', `entry ${name} (${data.length} bytes) does not fit on medium ${this.mediumId}`, { target: this.mediumId });
    }
    this.entries.push(catalogEntry(name, this.tarBytes + 512, data.length));
    this.tarBytes += tarEntrySize(data.length);
    if (isObject) this.objectEntries++;
    await new Promise<void>((resolve, reject) => {
      this.#pack.entry({ name, size: data.length, mode: 0o644, mtime: this.#mtime, type: 'file', uname: 'hvbackup', gname: 'hvbackup' }, data, (err) => (err ? reject(err) : resolve()));
    }).catch((e: unknown) => { throw wrapError(this.#error ?? e, `write ${name} to medium ${this.mediumId}`, this.mediumId); });
  }

  /** Ends the tar (two zero blocks), pads the last record; returns the medium's bytes. */
  async finish(): Promise<number> {
    this.#pack.finalize();
    await this.#done;
    this.#finished = true;
    return this.#blocker.written;
  }

  /** True once the first `end` tar bytes have been handed to the medium (their buffers may be reused). */
  hasWritten(end: number): boolean {
    const written = (this.#out.stream as { bytesWritten?: number }).bytesWritten;
    return this.#finished || (typeof written === 'number' && written >= end);
  }

  destroy(): void {
    this.#pack.destroy();
  }
}
