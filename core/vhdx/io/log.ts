// The VHDX log as a ring of 4 KiB sectors (MS-VHDX 2.3.1): finding the active
// sequence of entries, replaying it, and writing new entries for our own BAT updates.
import type { FileHandle } from 'node:fs/promises';
import { LOG_SECTOR_SIZE, MiB } from '../format/constants.ts';
import type { VhdxHeader } from '../format/header.ts';
import { decodeLogEntry, decodeLogEntryHeader, encodeLogEntry, entryLengthFor, type LogEntry, type LogWrite } from '../format/log.ts';
import { preadFully, pwriteFully, readAt } from '../../disk/file-io.ts';

interface FoundEntry { offset: number; entry: LogEntry }

/** Read `length` bytes of the log ring starting at ring offset `start`, wrapping at the end. */
async function readRing(fh: FileHandle, h: VhdxHeader, start: number, length: number): Promise<Buffer> {
  const b = Buffer.alloc(length);
  const first = Math.min(length, h.logLength - start);
  await preadFully(fh, b, 0, first, h.logOffset + start);
  if (first < length) await preadFully(fh, b, first, length - first, h.logOffset);
  return b;
}

async function scanEntries(fh: FileHandle, h: VhdxHeader): Promise<FoundEntry[]> {
  const ring = await readAt(fh, h.logOffset, h.logLength);
  const found: FoundEntry[] = [];
  for (let off = 0; off < h.logLength; off += LOG_SECTOR_SIZE) {
    const eh = decodeLogEntryHeader(ring.subarray(off, off + 64));
    if (!eh || eh.logGuid !== h.logGuid || eh.entryLength === 0 || eh.entryLength > h.logLength || eh.entryLength % LOG_SECTOR_SIZE) continue;
    const bytes = off + eh.entryLength <= h.logLength ? ring.subarray(off, off + eh.entryLength) : await readRing(fh, h, off, eh.entryLength);
    const r = decodeLogEntry(bytes);
    if (r.ok) found.push({ offset: off, entry: r.entry });
  }
  return found;
}

/**
 * The active sequence: the entry with the highest sequence number and the entries
 * before it with consecutive numbers, back to the one its Tail points at.
 */
export async function findActiveSequence(fh: FileHandle, h: VhdxHeader): Promise<LogEntry[]> {
  const found = await scanEntries(fh, h);
  if (found.length === 0) return [];
  const bySeq = new Map(found.map((f) => [f.entry.sequenceNumber, f]));
  let last = found[0];
  for (const f of found) if (f.entry.sequenceNumber > last.entry.sequenceNumber) last = f;
  const run: FoundEntry[] = [last];
  while (run[0].offset !== last.entry.tail) {
    const prev = bySeq.get(run[0].entry.sequenceNumber - 1n);
    if (!prev) break;
    run.unshift(prev);
  }
  return run.map((f) => f.entry);
}

/** Pages (4 KiB aligned offset → content) the sequence writes, later entries winning. */
export function logOverlay(entries: LogEntry[]): Map<number, Buffer> {
  const pages = new Map<number, Buffer>();
  for (const e of entries) {
    for (const d of e.descriptors) {
      if (d.kind === 'data' && d.data) pages.set(d.fileOffset, d.data);
      else if (d.kind === 'zero') for (let o = 0; o < d.length; o += LOG_SECTOR_SIZE) pages.set(d.fileOffset + o, Buffer.alloc(LOG_SECTOR_SIZE));
    }
  }
  return pages;
}

/** Apply the sequence to the file (the caller flushes and clears LogGuid). */
export async function replayEntries(fh: FileHandle, entries: LogEntry[], path: string): Promise<void> {
  const size = (await fh.stat()).size;
  const last = entries[entries.length - 1];
  if (size < last.flushedFileOffset) {
    throw new RangeError(`${path} is ${size} bytes, shorter than the log's flushed file offset ${last.flushedFileOffset}; the file was truncated`);
  }
  for (const e of entries) {
    for (const d of e.descriptors) {
      if (d.kind === 'data' && d.data) await pwriteFully(fh, d.data, d.fileOffset);
      else if (d.kind === 'zero') await pwriteFully(fh, Buffer.alloc(d.length), d.fileOffset);
    }
  }
  const target = Math.ceil(last.lastFileOffset / MiB) * MiB;
  if ((await fh.stat()).size < target) await fh.truncate(target);
}

/** Appends entries to the ring for one writable session (one LogGuid). */
export class LogWriter {
  #position = 0;
  #sequence = 1n;
  readonly logGuid: string;
  readonly #offset: number;
  readonly #length: number;

  constructor(logGuid: string, logOffset: number, logLength: number) {
    this.logGuid = logGuid;
    this.#offset = logOffset;
    this.#length = logLength;
  }

  /** Largest number of 4 KiB page writes one entry can carry. */
  get capacityPages(): number {
    return Math.floor(this.#length / LOG_SECTOR_SIZE) - 2;
  }

  /** Write one entry (not flushed); entries never wrap, each is its own tail because it is applied before the next. */
  async append(fh: FileHandle, writes: LogWrite[], fileSize: number): Promise<void> {
    const len = entryLengthFor(writes);
    if (len > this.#length) throw new RangeError(`log entry of ${len} bytes does not fit the ${this.#length}-byte log`);
    if (this.#position + len > this.#length) this.#position = 0;
    const entry = encodeLogEntry({
      tail: this.#position, sequenceNumber: this.#sequence++, logGuid: this.logGuid,
      flushedFileOffset: fileSize, lastFileOffset: fileSize,
    }, writes);
    await pwriteFully(fh, entry, this.#offset + this.#position);
    this.#position += len;
  }
}
