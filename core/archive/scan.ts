// Reads a medium front to back (a media file or any sequential stream, e.g. a tape
// device) and checks it: label first, only names HVBackup writes (never one that could
// escape a destination folder), trailer last, nothing missing. Truncation is an error
// naming the medium, never a short success.

import { createReadStream } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { basename } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { HvError, isHvError, wrapError } from '../errors.ts';
import { catalogEntry, type CatalogEntry } from './catalog.ts';
import { LABEL_ENTRY, README_ENTRY, TRAILER_ENTRY, parseEntryName, tarEntrySize, type ObjectEntryName } from './entries.ts';
import { decodeLabel, decodeTrailer, type MediumLabel, type MediumTrailer } from './label.ts';
import { decodeTarHeader, isZeroBlock } from './tar-header.ts';

export interface ScannedMedium {
  /** What the user gave us (file path or device), for messages and positional reads. */
  source: string;
  label: MediumLabel;
  trailer: MediumTrailer;
  entries: CatalogEntry[];
  /** Bytes read from the medium (whole records). */
  bytes: number;
}

/** Called for each repository object entry with its data stream; must consume it. */
export type EntryHook = (entry: CatalogEntry, parsed: ObjectEntryName, data: AsyncIterable<Buffer>) => Promise<void>;

/**
 * A media file: its headers are walked by position (entry data is skipped, not read), so
 * scanning costs a few reads per entry, not a pass over the whole medium. With `onObject`
 * the data is needed anyway and the file is streamed.
 */
export async function scanMediumFile(path: string, onObject?: EntryHook): Promise<ScannedMedium> {
  if (onObject) return scanMediumStream(createReadStream(path, { highWaterMark: 1 << 20 }), path, onObject);
  const state: ScanState = { name: basename(path), pos: 0, entries: [], objects: 0, bytes: 0 };
  const fh = await open(path, 'r').catch((e: unknown) => { throw wrapError(e, `open medium ${path}`, path); });
  try {
    const size = (await fh.stat()).size;
    const block = Buffer.alloc(512);
    while (state.pos + 512 <= size) {
      await readExactly(fh, block, state.pos);
      if (isZeroBlock(block)) break;
      const h = decodeTarHeader(block, state.name, state.pos);
      const end = state.pos + tarEntrySize(h.size);
      if (end > size) {
        throw new HvError('ERR_CORRUPT', `medium ${state.name} is truncated: entry ${JSON.stringify(h.name)} needs bytes up to ${end} but the medium ends at ${size}`, { target: path });
      }
      const dataAt = state.pos + 512;
      await checkedEntry(state, { name: h.name, size: h.size, plainFile: h.typeflag === '0' && h.linkname === '' }, async () => {
        const data = Buffer.alloc(h.size);
        await readExactly(fh, data, dataAt);
        return data;
      });
    }
    state.bytes = size;
  } finally {
    await fh.close();
  }
  return finishScan(state, path);
}

async function readExactly(fh: FileHandle, buf: Buffer, at: number): Promise<void> {
  let n = 0;
  while (n < buf.length) {
    const { bytesRead } = await fh.read(buf, n, buf.length - n, at + n);
    if (bytesRead === 0) throw new HvError('ERR_CORRUPT', `medium ended while reading ${buf.length} bytes at ${at}`);
    n += bytesRead;
  }
}

export async function scanMediumStream(input: Readable, source: string, onObject?: EntryHook): Promise<ScannedMedium> {
  const name = basename(source);
  const state: ScanState = { name, pos: 0, entries: [], objects: 0, bytes: 0 };
  const extract = tar.extract();
  extract.on('entry', (header, stream, next) => {
    onEntry(state, header, stream, onObject).then(() => next(), (e: unknown) => next(e as Error));
  });
  input.on('data', (b: Buffer) => { state.bytes += b.length; });
  try {
    await pipeline(input, extract);
  } catch (e) {
    if (isHvError(e)) throw e;
    const msg = (e as Error)?.message ?? String(e);
    throw new HvError('ERR_CORRUPT', `medium ${name} is damaged or truncated (${msg}); it ends after ${state.bytes} bytes${state.label ? ` (label: ${state.label.mediumId}, volume ${state.label.volume} of set ${state.label.set})` : ''}`, { target: source, cause: e });
  }
  return finishScan(state, source);
}

interface ScanState {
  name: string;
  pos: number;
  entries: CatalogEntry[];
  objects: number;
  bytes: number;
  label?: MediumLabel;
  trailer?: MediumTrailer;
}

async function onEntry(state: ScanState, header: tar.Header, stream: unknown, onObject: EntryHook | undefined): Promise<void> {
  const data = stream as AsyncIterable<Buffer>;
  const plainFile = header.type === 'file' && !header.pax && !(header as { linkname?: string | null }).linkname;
  const parsed = await checkedEntry(state, { name: header.name, size: header.size ?? 0, plainFile }, () => collect(data), onObject ? (e, p) => onObject(e, p, data) : undefined);
  if (parsed !== 'consumed') await drain(data);
}

/**
 * The checks every entry gets, whichever way the medium is read: a safe known name, a plain
 * file, label first, nothing after the trailer. Reads label and trailer through `read`.
 */
async function checkedEntry(state: ScanState, e: { name: string; size: number; plainFile: boolean }, read: () => Promise<Buffer>, onObject?: (entry: CatalogEntry, parsed: ObjectEntryName) => Promise<void>): Promise<'consumed' | 'skipped'> {
  const parsed = parseEntryName(e.name, state.name);
  if (!e.plainFile) {
    throw new HvError('ERR_CORRUPT', `medium ${state.name}: entry ${JSON.stringify(e.name)} is not a plain file (a link, folder or extended header); HVBackup media hold plain files only`, { target: state.name });
  }
  if (state.trailer) throw new HvError('ERR_CORRUPT', `medium ${state.name}: entry ${e.name} follows the trailer`, { target: state.name });
  if (!state.label && e.name !== LABEL_ENTRY) {
    throw new HvError('ERR_CORRUPT', `medium ${state.name} does not start with an HVBackup label (first entry is ${JSON.stringify(e.name)}); it is not an HVBackup archive medium`, { target: state.name });
  }
  const entry = catalogEntry(e.name, state.pos + 512, e.size);
  state.entries.push(entry);
  state.pos += tarEntrySize(e.size);
  if (parsed && (parsed.type === 'chunks' || parsed.type === 'manifests')) state.objects++;
  if (parsed && onObject) {
    await onObject(entry, parsed);
    return 'consumed';
  }
  if (parsed || e.name === README_ENTRY) return 'skipped';
  const data = await read();
  if (e.name === LABEL_ENTRY) {
    if (state.label) throw new HvError('ERR_CORRUPT', `medium ${state.name} has two labels`, { target: state.name });
    state.label = decodeLabel(data, state.name);
  } else {
    state.trailer = decodeTrailer(data, state.name);
  }
  return 'consumed';
}

function finishScan(state: ScanState, source: string): ScannedMedium {
  const { name, label, trailer } = state;
  if (!label) throw new HvError('ERR_CORRUPT', `medium ${name} is empty or not a tar archive (no HVBackup label)`, { target: source });
  if (!trailer) {
    throw new HvError('ERR_CORRUPT', `medium ${name} (${label.mediumId}, volume ${label.volume} of set ${label.set}) is truncated: it ends after ${state.bytes} bytes without its trailer`, { target: source });
  }
  if (trailer.mediumId !== label.mediumId || trailer.set !== label.set || trailer.volume !== label.volume || trailer.entries !== state.objects) {
    throw new HvError('ERR_CORRUPT', `medium ${name}: trailer (${trailer.mediumId}, volume ${trailer.volume}, ${trailer.entries} entries) does not match the label (${label.mediumId}, volume ${label.volume}) and the ${state.objects} entries found`, { target: source });
  }
  return { source, label, trailer, entries: state.entries, bytes: state.bytes };
}

async function collect(stream: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const b of stream) parts.push(b as Buffer);
  return Buffer.concat(parts);
}

async function drain(stream: AsyncIterable<Buffer>): Promise<void> {
  for await (const _ of stream) { /* skip */ }
}

/**
 * Checks media given in one list: within each set, volumes must come in order.
 * A volume missing in the middle is allowed (an expired medium may have been reused);
 * objects split onto it are then simply incomplete.
 */
export function checkMediaOrder(media: ScannedMedium[]): string[] {
  const warnings: string[] = [];
  const lastOfSet = new Map<string, ScannedMedium>();
  for (const m of media) {
    const prev = lastOfSet.get(m.label.set);
    if (prev && m.label.volume <= prev.label.volume) {
      throw new HvError('ERR_INVALID_ARGUMENT', `medium ${basename(m.source)} (${m.label.mediumId}) is volume ${m.label.volume} of set ${m.label.set} but comes after volume ${prev.label.volume} (${basename(prev.source)}); give the media in order (sequence numbers in their labels)`, {
        target: m.source, data: { medium: m.label.mediumId, volume: m.label.volume, after: prev.label.volume },
      });
    }
    if (prev && m.label.volume !== prev.label.volume + 1) warnings.push(`set ${m.label.set}: volumes ${prev.label.volume + 1}..${m.label.volume - 1} not given`);
    lastOfSet.set(m.label.set, m);
  }
  return warnings;
}
