// Export restore points to a media pool: every chunk they need that the pool's live
// media do not hold yet (or all of them with `full`), then their manifests, exactly as
// the repository stores them (compressed, and encrypted when the repository is).
// Runs under a shared repository lock so GC cannot delete a chunk mid-export.

import { randomBytes } from 'node:crypto';
import { HvError } from '../errors.ts';
import { log, progress, type OperationContext } from '../progress.ts';
import { addPointChunks } from '../repo/manifest-chunks.ts';
import type { RestorePointManifest } from '../repo/manifest-types.ts';
import type { Repository } from '../repo/repository.ts';
import { addPoints, emptyCatalog, expiredMedia, heldChunkIds, putMedium, type Catalog, type MediaPoolDefinition } from './catalog.ts';
import { loadCatalog, saveCatalog, checkPoolName } from './catalog-store.ts';
import { objectEntryName } from './entries.ts';
import type { ArchivedPoint } from './label.ts';
import { mediumName } from './label.ts';
import { DirectoryTarget, mediaFileName, type MediaTarget } from './media-target.ts';
import { publishSealedMedia } from './media-recovery.ts';
import { MediaSetWriter, type NextMedium, type WrittenMark } from './set-writer.ts';
import { StoredObjectReader, type StoredObject } from './stored-reader.ts';

export const DEFAULT_RECORD_SIZE = 256 * 1024;
export const DEFAULT_CAPACITY = 12e12; // LTO-8 native
export const DEFAULT_RETENTION_DAYS = 28;

export interface ExportRequest {
  pool: string;
  vmName?: string;
  /** A restore point id (or unique prefix), or 'latest' (newest per VM); default every point. */
  point?: string;
  full?: boolean;
  capacity?: number;
  recordSize?: number;
  retentionDays?: number;
  now?: Date;
}

export interface ExportedMedium { id: string; file?: string; volume: number; bytes: number; reused: boolean }

export interface ExportSummary {
  pool: string;
  set?: string;
  points: ArchivedPoint[];
  skippedPoints: string[];
  media: ExportedMedium[];
  chunksWritten: number;
  chunksAlreadyInPool: number;
  bytesWritten: number;
}

export async function selectPoints(repo: Repository, req: { vmName?: string; point?: string }, signal?: AbortSignal): Promise<RestorePointManifest[]> {
  let points: RestorePointManifest[];
  if (req.point && req.point !== 'latest') {
    points = [await repo.loadManifest(await repo.resolveManifestId(req.point, signal), signal)];
    if (req.vmName && points[0]!.vm.name.toLowerCase() !== req.vmName.toLowerCase()) {
      throw new HvError('ERR_NOT_FOUND', `restore point ${req.point} belongs to VM ${points[0]!.vm.name}, not ${req.vmName}`, { target: req.point });
    }
  } else {
    const found = await repo.findRestorePoints({ vmName: req.vmName, latest: req.point === 'latest' }, signal);
    points = await Promise.all(found.map((p) => repo.loadManifest(p.id, signal)));
  }
  if (points.length === 0) throw new HvError('ERR_NOT_FOUND', `no restore points${req.vmName ? ` of VM ${req.vmName}` : ''} in ${repo.location}`, { target: req.vmName ?? repo.location });
  return points.sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id));
}

export function poolDefinition(existing: MediaPoolDefinition | undefined, req: ExportRequest): MediaPoolDefinition {
  const def: MediaPoolDefinition = {
    name: checkPoolName(req.pool),
    capacity: req.capacity ?? existing?.capacity ?? DEFAULT_CAPACITY,
    recordSize: req.recordSize ?? existing?.recordSize ?? DEFAULT_RECORD_SIZE,
    retentionDays: req.retentionDays ?? existing?.retentionDays ?? DEFAULT_RETENTION_DAYS,
  };
  if (!Number.isSafeInteger(def.recordSize) || def.recordSize < 512 || def.recordSize % 512 !== 0) {
    throw new HvError('ERR_INVALID_ARGUMENT', `record size ${def.recordSize} must be a positive multiple of 512 bytes`, { target: def.name });
  }
  if (def.capacity < def.recordSize * 4) throw new HvError('ERR_INVALID_ARGUMENT', `media capacity ${def.capacity} is smaller than four records of ${def.recordSize} bytes`, { target: def.name });
  if (!(def.retentionDays >= 0)) throw new HvError('ERR_INVALID_ARGUMENT', `retention of ${def.retentionDays} days is not valid`, { target: def.name });
  return def;
}

/** Picks media for a new set: expired media of the pool first (reused in place), then new ones. */
export function mediaAllocator(cat: Catalog, now: Date): () => NextMedium {
  const reusable = expiredMedia(cat, now);
  let nextSeq = cat.media.reduce((max, m) => Math.max(max, m.seq), 0) + 1;
  return () => {
    const old = reusable.shift();
    if (old) return { id: old.id, seq: old.seq, file: old.file ?? mediaFileName(old.id), replace: true };
    const id = mediumName(cat.pool.name, nextSeq);
    return { id, seq: nextSeq++, file: mediaFileName(id), replace: false };
  };
}

export async function exportPoints(ctx: OperationContext, repo: Repository, target: MediaTarget, req: ExportRequest): Promise<ExportSummary> {
  const { signal } = ctx;
  const now = req.now ?? new Date();
  const lock = await repo.lock({ exclusive: false, operation: `archive export to pool ${req.pool}`, signal });
  try {
    const chosen = await selectPoints(repo, req, signal);
    const existing = await loadCatalog(repo, req.pool, signal);
    if (existing && target instanceof DirectoryTarget) await publishSealedMedia(ctx, target.location, existing);
    let cat: Catalog = existing ?? emptyCatalog(poolDefinition(undefined, req), repo.config.id, repo.codec.encrypted);
    cat = { ...cat, pool: poolDefinition(cat.pool, req) };
    if (cat.repositoryId !== repo.config.id) {
      throw new HvError('ERR_INVALID_ARGUMENT', `media pool ${req.pool} belongs to repository ${cat.repositoryId}, not ${repo.config.id}`, { target: req.pool });
    }
    const inPool = new Set(cat.points.map((p) => p.id));
    const points = req.full ? chosen : chosen.filter((p) => !inPool.has(p.id));
    const summary: ExportSummary = { pool: req.pool, points: [], skippedPoints: chosen.filter((p) => !points.includes(p)).map((p) => p.id), media: [], chunksWritten: 0, chunksAlreadyInPool: 0, bytesWritten: 0 };
    if (points.length === 0) {
      log(ctx, 'info', `every chosen restore point is already in pool ${req.pool}; nothing to export`, req.pool);
      return summary;
    }
    const live = { ...cat, media: cat.media.filter((m) => !expiredMedia(cat, now).includes(m)) };
    const held = req.full ? new Set<string>() : heldChunkIds(live);
    // Segments and the chunks they list, each segment read once however many points share it.
    const needed = new Set<string>();
    const seen = new Set<string>();
    for (const p of points) await addPointChunks(repo, p, needed, { seen, signal });
    const chunkIds = [...needed];
    const toWrite = chunkIds.filter((id) => !held.has(id));
    summary.chunksAlreadyInPool = chunkIds.length - toWrite.length;
    await writeSet(ctx, repo, target, cat, { points, toWrite, now }, summary);
    return summary;
  } finally {
    await lock.release();
  }
}

interface SetPlan { points: RestorePointManifest[]; toWrite: string[]; now: Date }

async function writeSet(ctx: OperationContext, repo: Repository, target: MediaTarget, start: Catalog, plan: SetPlan, summary: ExportSummary): Promise<void> {
  const { signal } = ctx;
  let cat = start;
  const set = randomBytes(8).toString('hex');
  const archived: ArchivedPoint[] = plan.points.map((p) => ({ id: p.id, vm: p.vm.name, createdAt: p.createdAt }));
  const reused = new Set(expiredMedia(cat, plan.now).map((m) => m.id));
  const writer = new MediaSetWriter(ctx, {
    target, pool: cat.pool, set, repositoryId: repo.config.id, encrypted: repo.codec.encrypted,
    // Encrypted repository: no VM names or backup times in the plain-text trailer; a catalog
    // rebuilt from the media reads them from the sealed manifests (sealed-points.ts).
    perMedium: await perMediumObjects(repo, signal), nextMedium: mediaAllocator(cat, plan.now), points: repo.codec.encrypted ? [] : archived,
    now: () => plan.now,
    onMedium: async (m) => {
      cat = putMedium(cat, m);
      await saveCatalog(repo, cat, signal);
      summary.media.push({ id: m.id, ...(m.file ? { file: m.file } : {}), volume: m.volume, bytes: m.bytes, reused: reused.has(m.id) });
      summary.bytesWritten += m.bytes;
    },
  });
  summary.set = set;
  const reader = new StoredObjectReader(repo);
  const inFlight: { obj: StoredObject; mark: WrittenMark }[] = [];
  reader.reclaim = () => {
    while (inFlight.length > 0 && inFlight[0]!.mark.writer.hasWritten(inFlight[0]!.mark.end)) inFlight.shift()!.obj.release();
  };
  try {
    let done = 0;
    for await (const obj of reader.readAll('chunks', plan.toWrite, signal)) {
      inFlight.push({ obj, mark: await writer.writeObject('chunks', obj.id, obj.data) });
      summary.chunksWritten++;
      if (++done % 16 === 0 || done === plan.toWrite.length) progress(ctx, { activity: 'export', target: start.pool.name, status: 'writing chunks', done, total: plan.toWrite.length });
    }
    for await (const obj of reader.readAll('manifests', plan.points.map((p) => p.id), signal)) await writer.writeObject('manifests', obj.id, obj.data);
    await writer.finish();
  } catch (e) {
    await writer.abort();
    throw e;
  }
  cat = addPoints(cat, archived.map((p) => ({ ...p, set })));
  await saveCatalog(repo, cat, signal);
  summary.points = archived;
  progress(ctx, { activity: 'export', target: start.pool.name, completed: true });
}

async function perMediumObjects(repo: Repository, signal?: AbortSignal): Promise<{ name: string; data: Buffer }[]> {
  const out = [{ name: objectEntryName('config', 'config'), data: await repo.backend.load(signal, { type: 'config', name: 'config' }) }];
  const keys: string[] = [];
  for await (const o of repo.backend.list(signal, 'keys')) keys.push(o.name);
  for (const k of keys.sort()) out.push({ name: objectEntryName('keys', k), data: await repo.backend.load(signal, { type: 'keys', name: k }) });
  return out;
}
