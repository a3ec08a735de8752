// Reads a medium front to back (a media file or any sequential stream, e.g. a tape
// device) and checks it: label first, only names HVBackup writes (never one that could
// escape a destination folder), trailer last, nothing missing. Truncation is an error
// naming the medium, never a short success.

import { createReadStream } from 'node:fs';
import { basename } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { HvError, isHvError } from '../errors.ts';
import type { CatalogEntry } from './catalog.ts';
import { LABEL_ENTRY, README_ENTRY, TRAILER_ENTRY, parseEntryName, tarEntrySize, type ObjectEntryName } from './entries.ts';
import { decodeLabel, decodeTrailer, type MediumLabel, type MediumTrailer } from './label.ts';

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

export async function scanMediumFile(path: string, onObject?: EntryHook): Promise<ScannedMedium> {
  return scanMediumStream(createReadStream(path, { highWaterMark: 1 << 20 }), path, onObject);
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
  const parsed = parseEntryName(header.name, state.name);
  const size = header.size ?? 0;
  if (header.type !== 'file' || header.pax || (header as { linkname?: string | null }).linkname) {
    throw new HvError('ERR_CORRUPT', `medium ${state.name}: entry ${JSON.stringify(header.name)} is a ${header.type ?? 'unknown'} entry with extended headers or links; HVBackup media hold plain files only`, { target: state.name });
  }
  if (state.trailer) throw new HvError('ERR_CORRUPT', `medium ${state.name}: entry ${header.name} follows the trailer`, { target: state.name });
  if (!state.label && header.name !== LABEL_ENTRY) {
    throw new HvError('ERR_CORRUPT', `medium ${state.name} does not start with an HVBackup label (first entry is ${JSON.stringify(header.name)}); it is not an HVBackup archive medium`, { target: state.name });
  }
  const entry: CatalogEntry = { name: header.name, offset: state.pos + 512, length: size };
  state.entries.push(entry);
  state.pos += tarEntrySize(size);
  if (parsed && (parsed.type === 'chunks' || parsed.type === 'manifests')) state.objects++;
  if (parsed && onObject) return onObject(entry, parsed, stream as unknown as AsyncIterable<Buffer>);
  if (parsed || header.name === README_ENTRY) return drain(stream as unknown as AsyncIterable<Buffer>);
  const data = await collect(stream as unknown as AsyncIterable<Buffer>);
  if (header.name === LABEL_ENTRY) {
    if (state.label) throw new HvError('ERR_CORRUPT', `medium ${state.name} has two labels`, { target: state.name });
    state.label = decodeLabel(data, state.name);
  } else if (header.name === TRAILER_ENTRY) {
    state.trailer = decodeTrailer(data, state.name);
  }
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
