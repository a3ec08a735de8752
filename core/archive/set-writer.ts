// Writes one export set: a sequence of media of fixed capacity. Every medium starts
// with its label, README, config and keys; objects fill the media in order and an
// object that does not fit in the space left is split ("chunks/<id>.part1of3") and goes
// on on the next volume. Each finished medium is reported (for the catalog) at once,
// so an interrupted export still leaves a catalog that matches the media.

import { HvError } from '../errors.ts';
import { log, type OperationContext } from '../progress.ts';
import { catalogMediumFromLabel, type CatalogMedium, type MediaPoolDefinition } from './catalog.ts';
import { LABEL_ENTRY, README_ENTRY, TRAILER_ENTRY, objectEntryName, tarEntrySize, type ObjectEntryType } from './entries.ts';
import { ARCHIVE_FORMAT, ARCHIVE_FORMAT_VERSION, encodeLabel, encodeTrailer, type ArchivedPoint, type MediumLabel } from './label.ts';
import type { MediaTarget, OpenMedium } from './media-target.ts';
import { MediumWriter } from './medium-writer.ts';
import { mediumReadme } from './readme.ts';

/** Do not start a part smaller than this at the end of a medium; go to the next one. */
const MIN_PART = 4096;

export interface NextMedium {
  id: string;
  seq: number;
  file: string;
  /** True when this reuses an expired medium (its file may be overwritten). */
  replace: boolean;
}

export interface WrittenMark {
  writer: MediumWriter;
  /** Tar offset on that medium just past the object's last part. */
  end: number;
}

export interface SetWriterOptions {
  target: MediaTarget;
  pool: MediaPoolDefinition;
  set: string;
  repositoryId: string;
  encrypted: boolean;
  /** Objects every medium carries after its label and README: config and keys. */
  perMedium: { name: string; data: Buffer }[];
  nextMedium: () => NextMedium;
  /** Restore points the set carries (written in the last trailer). */
  points: ArchivedPoint[];
  onMedium: (medium: CatalogMedium) => Promise<void>;
  now?: () => Date;
}

interface Current {
  writer: MediumWriter;
  out: OpenMedium;
  label: MediumLabel;
  file: string | undefined;
}

export class MediaSetWriter {
  readonly media: CatalogMedium[] = [];
  readonly #o: SetWriterOptions;
  readonly #ctx: OperationContext;
  readonly #reserve: number;
  #cur: Current | undefined;
  #volume = 0;

  constructor(ctx: OperationContext, opts: SetWriterOptions) {
    this.#o = opts;
    this.#ctx = ctx;
    const worst = encodeTrailer({ format: ARCHIVE_FORMAT, mediumId: 'x'.repeat(80), set: opts.set, volume: 999_999, continues: false, entries: 999_999_999, points: opts.points });
    this.#reserve = tarEntrySize(worst.length);
  }

  /**
   * Writes one object (split across media when it must). Resolves once the pipeline has taken
   * it; `mark.writer.hasWritten(mark.end)` says when its bytes have reached the medium.
   */
  async writeObject(type: ObjectEntryType, name: string, data: Buffer): Promise<WrittenMark> {
    let cur = this.#cur ?? (await this.#openNext());
    if (data.length > cur.writer.room() && cur.writer.room() < Math.min(MIN_PART, data.length)) cur = await this.#rotate();
    if (data.length <= cur.writer.room()) {
      await cur.writer.add(objectEntryName(type, name), data, true);
      return { writer: cur.writer, end: cur.writer.tarBytes };
    }
    const sizes = this.#planParts(data.length, cur.writer.room());
    let off = 0;
    for (let i = 0; i < sizes.length; i++) {
      if (i > 0) cur = await this.#rotate();
      await cur.writer.add(objectEntryName(type, name, i + 1, sizes.length), data.subarray(off, off + sizes[i]!), true);
      off += sizes[i]!;
    }
    return { writer: cur.writer, end: cur.writer.tarBytes };
  }

  /** Closes the last medium (trailer says the set ends here). */
  async finish(): Promise<CatalogMedium[]> {
    if (!this.#cur) await this.#openNext();
    await this.#close(false);
    return this.media;
  }

  async abort(): Promise<void> {
    const cur = this.#cur;
    this.#cur = undefined;
    if (cur) { cur.writer.destroy(); await cur.out.abort(); }
  }

  #planParts(length: number, firstRoom: number): number[] {
    const sizes = [firstRoom];
    let rest = length - firstRoom;
    for (let v = this.#volume + 1; rest > 0; v++) {
      const room = this.#freshRoom(v);
      if (room < MIN_PART) throw this.#tooSmall();
      const n = Math.min(rest, room);
      sizes.push(n);
      rest -= n;
    }
    return sizes;
  }

  /** Data bytes an object entry may have on a fresh medium of volume `v`. */
  #freshRoom(v: number): number {
    const { capacity, recordSize } = this.#o.pool;
    const label = this.#label(v, { id: 'x', seq: 0, file: '', replace: false }, new Date());
    let used = tarEntrySize(encodeLabel(label).length) + tarEntrySize(mediumReadme(label).length);
    for (const p of this.#o.perMedium) used += tarEntrySize(p.data.length);
    const usable = Math.floor(capacity / recordSize) * recordSize - 1024 - this.#reserve;
    return Math.max(0, Math.floor((usable - used - 512) / 512) * 512);
  }

  #tooSmall(): HvError {
    return new HvError('ERR_INVALID_ARGUMENT', `media capacity ${this.#o.pool.capacity} bytes of pool ${this.#o.pool.name} is too small for the label, config and keys every medium carries`, { target: this.#o.pool.name });
  }

  #label(volume: number, next: NextMedium, now: Date): MediumLabel {
    const { pool } = this.#o;
    return {
      format: ARCHIVE_FORMAT, formatVersion: ARCHIVE_FORMAT_VERSION, mediumId: next.id, pool: pool.name, seq: next.seq,
      set: this.#o.set, volume, writtenAt: now.toISOString(), recordSize: pool.recordSize, capacity: pool.capacity,
      retentionDays: pool.retentionDays, repositoryId: this.#o.repositoryId, encrypted: this.#o.encrypted,
    };
  }

  async #rotate(): Promise<Current> {
    await this.#close(true);
    return this.#openNext();
  }

  async #openNext(): Promise<Current> {
    const next = this.#o.nextMedium();
    const label = this.#label(++this.#volume, next, this.#o.now?.() ?? new Date());
    const out = await this.#o.target.open(next.id, next.file, { replace: next.replace });
    log(this.#ctx, 'info', `${next.replace ? 'reusing expired' : 'writing'} medium ${next.id} (volume ${label.volume} of set ${label.set})`, next.id);
    const { capacity, recordSize } = this.#o.pool;
    const writer = new MediumWriter(next.id, out, { capacity, recordSize, reserve: this.#reserve, mtime: new Date(label.writtenAt), exactRecords: this.#o.target.exactRecords });
    this.#cur = { writer, out, label, file: this.#o.target.files ? next.file : undefined };
    try {
      await writer.add(LABEL_ENTRY, encodeLabel(label), false);
      await writer.add(README_ENTRY, mediumReadme(label), false);
      for (const p of this.#o.perMedium) await writer.add(p.name, p.data, false);
    } catch (e) {
      await this.abort();
      throw e;
    }
    if (writer.room() < MIN_PART) { await this.abort(); throw this.#tooSmall(); }
    return this.#cur;
  }

  async #close(continues: boolean): Promise<void> {
    const cur = this.#cur!;
    const trailer = {
      format: ARCHIVE_FORMAT, mediumId: cur.label.mediumId, set: cur.label.set, volume: cur.label.volume, continues,
      entries: cur.writer.objectEntries, points: continues ? [] : this.#o.points,
    } as const;
    await cur.writer.add(TRAILER_ENTRY, encodeTrailer(trailer), false);
    const bytes = await cur.writer.finish();
    await cur.out.seal();
    this.#cur = undefined;
    const medium = catalogMediumFromLabel(cur.label, trailer, cur.writer.entries, bytes, cur.file);
    this.media.push(medium);
    await this.#o.onMedium(medium);
    await cur.out.publish();
  }
}
