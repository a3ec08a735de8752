// The catalog of a media pool: which media exist, what each holds at which byte offset,
// and which restore points the pool can restore. Stored in the repository under
// `catalog/<pool>`; everything in it can be rebuilt by scanning the media alone
// (scan.ts), and the rebuilt catalog equals the one written during export.
// Pure data and queries here; loading and saving are in catalog-store.ts.

import { HvError } from '../errors.ts';
import { parseEntryName } from './entries.ts';
import type { ArchivedPoint, MediumLabel, MediumTrailer } from './label.ts';

export const CATALOG_FORMAT = 'hvbackup-catalog';
export const CATALOG_VERSION = 1;

export interface MediaPoolDefinition {
  name: string;
  /** Bytes per medium (the whole tar, padded to records, never exceeds it). */
  capacity: number;
  recordSize: number;
  /** Days a written medium is protected; after that an export may overwrite it. */
  retentionDays: number;
}

export interface CatalogEntry {
  /** Entry name on the medium, e.g. "chunks/<id>.part1of2". */
  name: string;
  /** Byte offset of the entry's data (after its 512-byte header) from the start of the medium. */
  offset: number;
  length: number;
  /** For a part of a split object: which part, of how many (also in the name). */
  part?: number;
  parts?: number;
}

/** The catalog entry for `name` with its data at `offset`. */
export function catalogEntry(name: string, offset: number, length: number): CatalogEntry {
  const m = /\.part(\d+)of(\d+)$/.exec(name);
  return m ? { name, offset, length, part: Number(m[1]), parts: Number(m[2]) } : { name, offset, length };
}

export interface CatalogMedium {
  id: string;
  seq: number;
  /** Media file name in the media folder ("<pool>-<seq>.tar"); absent for a tape device. */
  file?: string;
  set: string;
  volume: number;
  continues: boolean;
  writtenAt: string;
  expiresAt: string;
  /** Bytes on the medium, padded to whole records. */
  bytes: number;
  entries: CatalogEntry[];
}

export interface CatalogPoint extends ArchivedPoint {
  set: string;
}

export interface Catalog {
  format: typeof CATALOG_FORMAT;
  version: number;
  pool: MediaPoolDefinition;
  repositoryId: string;
  encrypted: boolean;
  /** Sorted by seq. */
  media: CatalogMedium[];
  /** Sorted by createdAt, then id. */
  points: CatalogPoint[];
}

/** Where one part of an object lies. */
export interface ObjectPart {
  medium: string;
  name: string;
  offset: number;
  length: number;
  part: number;
  parts: number;
}

export function emptyCatalog(pool: MediaPoolDefinition, repositoryId: string, encrypted: boolean): Catalog {
  return { format: CATALOG_FORMAT, version: CATALOG_VERSION, pool, repositoryId, encrypted, media: [], points: [] };
}

export function catalogMediumFromLabel(label: MediumLabel, trailer: MediumTrailer, entries: CatalogEntry[], bytes: number, file: string | undefined): CatalogMedium {
  const m: CatalogMedium = {
    id: label.mediumId, seq: label.seq, set: label.set, volume: label.volume, continues: trailer.continues,
    writtenAt: label.writtenAt, expiresAt: expiryOf(label.writtenAt, label.retentionDays), bytes, entries,
  };
  if (file !== undefined) m.file = file;
  return m;
}

export function expiryOf(writtenAt: string, retentionDays: number): string {
  return new Date(Date.parse(writtenAt) + retentionDays * 86_400_000).toISOString();
}

/** Replace (reuse) or add a medium; the catalog forgets whatever the old medium held. */
export function putMedium(cat: Catalog, medium: CatalogMedium): Catalog {
  const media = cat.media.filter((m) => m.id !== medium.id).concat([medium]).sort((a, b) => a.seq - b.seq);
  return dropUnrestorablePoints({ ...cat, media });
}

export function addPoints(cat: Catalog, points: CatalogPoint[]): Catalog {
  const byId = new Map(cat.points.map((p) => [p.id, p]));
  for (const p of points) byId.set(p.id, p);
  const sorted = [...byId.values()].sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id));
  return dropUnrestorablePoints({ ...cat, points: sorted });
}

/**
 * Every complete object in the pool ("chunks/<id>" → its parts in order; the newest copy
 * when there are several). Orphan parts are ignored. With `asOfSet`, only media written
 * up to and including that set count: the pool as it was when that set was exported.
 */
export function objectIndex(cat: Catalog, asOfSet?: string): Map<string, ObjectPart[]> {
  const building = new Map<string, ObjectPart[]>();
  const complete = new Map<string, ObjectPart[]>();
  // In writing order: a split object's parts follow its set's volumes, whatever the media's seq.
  let ordered = [...cat.media].sort((a, b) => a.writtenAt.localeCompare(b.writtenAt) || a.set.localeCompare(b.set) || a.volume - b.volume);
  if (asOfSet !== undefined) {
    const last = ordered.findLastIndex((m) => m.set === asOfSet);
    if (last >= 0) ordered = ordered.slice(0, last + 1);
  }
  for (const m of ordered) {
    for (const e of m.entries) {
      const n = parseEntryName(e.name, m.id);
      if (!n) continue;
      const key = n.type === 'config' ? 'config' : `${n.type}/${n.name}`;
      const part: ObjectPart = { medium: m.id, name: e.name, offset: e.offset, length: e.length, part: n.part, parts: n.parts };
      const prev = building.get(key);
      if (n.part === 1) building.set(key, [part]);
      else if (prev && prev.length === n.part - 1 && prev[0]!.parts === n.parts) prev.push(part);
      else continue;
      if (n.part === n.parts) complete.set(key, building.get(key)!);
    }
  }
  return complete;
}

export function heldChunkIds(cat: Catalog): Set<string> {
  const ids = new Set<string>();
  for (const key of objectIndex(cat).keys()) if (key.startsWith('chunks/')) ids.add(key.slice(7));
  return ids;
}

/** A point stays in the catalog while its manifest is on some medium (its chunks are checked at restore). */
function dropUnrestorablePoints(cat: Catalog): Catalog {
  const index = objectIndex(cat);
  return { ...cat, points: cat.points.filter((p) => index.has(`manifests/${p.id}`)) };
}

/** Media whose protection period is over at `now` (candidates for reuse), oldest first. */
export function expiredMedia(cat: Catalog, now: Date): CatalogMedium[] {
  return cat.media.filter((m) => Date.parse(m.expiresAt) <= now.getTime()).sort((a, b) => a.writtenAt.localeCompare(b.writtenAt) || a.seq - b.seq);
}

export function encodeCatalog(cat: Catalog): Buffer {
  return Buffer.from(JSON.stringify(cat, null, 1) + '\n');
}

export function decodeCatalog(buf: Buffer, where: string): Catalog {
  let v: unknown;
  try {
    v = JSON.parse(buf.toString('utf8'));
  } catch {
    throw new HvError('ERR_CORRUPT', `catalog ${where} is not valid JSON`, { target: where });
  }
  const c = v as Partial<Catalog>;
  if (c?.format !== CATALOG_FORMAT) throw new HvError('ERR_CORRUPT', `catalog ${where} is not an HVBackup media catalog`, { target: where });
  if (c.version !== CATALOG_VERSION) throw new HvError('ERR_UNSUPPORTED', `catalog ${where} has version ${String(c.version)}; this HVBackup reads version ${CATALOG_VERSION}`, { target: where });
  if (!c.pool || !Array.isArray(c.media) || !Array.isArray(c.points)) throw new HvError('ERR_CORRUPT', `catalog ${where} lacks its pool, media or points`, { target: where });
  return c as Catalog;
}
