// A pool catalog as people read it (CLI table, PowerShell objects): media with their
// state, and the restore points the pool can restore with the media each one needs.

import type { Catalog } from './catalog.ts';
import { objectIndex } from './catalog.ts';

export interface CatalogSummary {
  pool: string;
  capacity: number;
  recordSize: number;
  retentionDays: number;
  repositoryId: string;
  encrypted: boolean;
  media: { id: string; seq: number; file?: string; set: string; volume: number; writtenAt: string; expiresAt: string; bytes: number; chunks: number }[];
  points: { id: string; vm: string; createdAt: string; set: string; manifestOn: string[] }[];
  chunks: number;
}

export function summarizeCatalog(cat: Catalog): CatalogSummary {
  const index = objectIndex(cat);
  let chunks = 0;
  for (const k of index.keys()) if (k.startsWith('chunks/')) chunks++;
  return {
    pool: cat.pool.name, capacity: cat.pool.capacity, recordSize: cat.pool.recordSize, retentionDays: cat.pool.retentionDays,
    repositoryId: cat.repositoryId, encrypted: cat.encrypted,
    media: cat.media.map((m) => ({
      id: m.id, seq: m.seq, ...(m.file ? { file: m.file } : {}), set: m.set, volume: m.volume, writtenAt: m.writtenAt, expiresAt: m.expiresAt, bytes: m.bytes,
      chunks: m.entries.filter((e) => e.name.startsWith('chunks/')).length,
    })),
    points: cat.points.map((p) => ({ id: p.id, vm: p.vm, createdAt: p.createdAt, set: p.set, manifestOn: [...new Set((index.get(`manifests/${p.id}`) ?? []).map((x) => x.medium))] })),
    chunks,
  };
}
