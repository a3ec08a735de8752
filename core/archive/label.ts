// The label (first entry) and trailer (last entry before the tar end blocks) of every
// medium: plain JSON, so an operator can read them with `tar -xOf medium HVBACKUP-LABEL.json`.
// The label says which medium this is; the trailer proves the medium was written to the
// end and says whether the set continues on the next volume.

import { HvError } from '../errors.ts';

export const ARCHIVE_FORMAT = 'hvbackup-archive';
export const ARCHIVE_FORMAT_VERSION = 1;

export interface MediumLabel {
  format: typeof ARCHIVE_FORMAT;
  formatVersion: number;
  /** The medium's barcode-like identity in its pool, e.g. "weekly-0003"; kept when an expired medium is reused. */
  mediumId: string;
  pool: string;
  /** Position of the medium in its pool (1-based); the media file is `<pool>-<seq>.tar`. */
  seq: number;
  /** Export set (one export run) this medium belongs to: 16 hex characters. */
  set: string;
  /** 1-based position of this medium within its set. */
  volume: number;
  writtenAt: string;
  recordSize: number;
  capacity: number;
  retentionDays: number;
  /** Repository the data came from, and whether its chunks are encrypted. */
  repositoryId: string;
  encrypted: boolean;
}

export interface ArchivedPoint {
  id: string;
  vm: string;
  createdAt: string;
}

export interface MediumTrailer {
  format: typeof ARCHIVE_FORMAT;
  mediumId: string;
  set: string;
  volume: number;
  /** True when the set goes on with volume + 1 (an object may be split across the two). */
  continues: boolean;
  /** Chunk and manifest entries (parts count one each) on this medium. */
  entries: number;
  /** On the last volume of a set: the restore points whose manifests the set carries. */
  points: ArchivedPoint[];
}

export function mediumName(pool: string, seq: number): string {
  return `${pool}-${String(seq).padStart(4, '0')}`;
}

export function encodeLabel(label: MediumLabel): Buffer {
  return Buffer.from(JSON.stringify(label, null, 2) + '\n');
}

export function encodeTrailer(trailer: MediumTrailer): Buffer {
  return Buffer.from(JSON.stringify(trailer, null, 2) + '\n');
}

function parseJson(buf: Buffer, what: string, medium: string): Record<string, unknown> {
  try {
    const v = JSON.parse(buf.toString('utf8')) as unknown;
    if (v && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch { /* reported below */ }
  throw new HvError('ERR_CORRUPT', `medium ${medium}: ${what} is not valid JSON`, { target: medium });
}

function need(o: Record<string, unknown>, key: string, type: 'string' | 'number' | 'boolean', what: string, medium: string): void {
  if (typeof o[key] !== type) throw new HvError('ERR_CORRUPT', `medium ${medium}: ${what} has no valid "${key}"`, { target: medium });
}

export function decodeLabel(buf: Buffer, medium: string): MediumLabel {
  const o = parseJson(buf, 'label', medium);
  if (o.format !== ARCHIVE_FORMAT) throw new HvError('ERR_CORRUPT', `medium ${medium}: not an HVBackup archive medium (label format ${JSON.stringify(o.format)})`, { target: medium });
  if (o.formatVersion !== ARCHIVE_FORMAT_VERSION) {
    throw new HvError('ERR_UNSUPPORTED', `medium ${medium}: archive format version ${String(o.formatVersion)} is not supported (this HVBackup reads ${ARCHIVE_FORMAT_VERSION})`, { target: medium });
  }
  for (const k of ['mediumId', 'pool', 'set', 'writtenAt', 'repositoryId'] as const) need(o, k, 'string', 'label', medium);
  for (const k of ['seq', 'volume', 'recordSize', 'capacity', 'retentionDays'] as const) need(o, k, 'number', 'label', medium);
  need(o, 'encrypted', 'boolean', 'label', medium);
  return o as unknown as MediumLabel;
}

export function decodeTrailer(buf: Buffer, medium: string): MediumTrailer {
  const o = parseJson(buf, 'trailer', medium);
  if (o.format !== ARCHIVE_FORMAT) throw new HvError('ERR_CORRUPT', `medium ${medium}: trailer is not an HVBackup trailer`, { target: medium });
  for (const k of ['mediumId', 'set'] as const) need(o, k, 'string', 'trailer', medium);
  for (const k of ['volume', 'entries'] as const) need(o, k, 'number', 'trailer', medium);
  need(o, 'continues', 'boolean', 'trailer', medium);
  if (!Array.isArray(o.points)) throw new HvError('ERR_CORRUPT', `medium ${medium}: trailer has no "points" list`, { target: medium });
  return o as unknown as MediumTrailer;
}
