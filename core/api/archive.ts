// Public API: tape-style archive export, catalog rebuild, restore from media, linked
// archive (watch). Validates and normalises arguments, then calls core/archive. Params
// and results are plain JSON (the PowerShell cmdlets Export-HVArchive, Import-HVArchive,
// Start-HVArchiveWatch call these through the bridge).

import { resolve } from 'node:path';
import { HvError } from '../errors.ts';
import type { OperationContext } from '../progress.ts';
import { summarizeCatalog, type CatalogSummary } from '../archive/catalog-summary.ts';
import { loadCatalog, saveCatalog } from '../archive/catalog-store.ts';
import { exportPoints, type ExportSummary } from '../archive/export.ts';
import { DeviceTarget, DirectoryTarget, type MediaTarget } from '../archive/media-target.ts';
import { catalogFromMedia, scanMediaFiles } from '../archive/media-set.ts';
import { openMediaRepository, restoreFromMedia, type MediaRestoreSummary } from '../archive/restore-media.ts';
import { addSealedPoints } from '../archive/sealed-points.ts';
import { parseSize } from '../archive/size.ts';
import { watchRepository, type WatchSummary } from '../archive/watch.ts';
import { openRepositoryForApi } from './repository.ts';

export type { CatalogSummary, ExportSummary as ArchiveExportResult, MediaRestoreSummary as ArchiveRestoreResult, WatchSummary as ArchiveWatchResult };

export interface ArchiveTargetParams {
  /** Folder for media files (<pool>-<seq>.tar). */
  mediaDir?: string;
  /** Tape device written as one sequential stream (/dev/nst0, \\.\Tape0). */
  device?: string;
  /** Media capacity: bytes, or "4M", "100G", "LTO-8". */
  capacity?: number | string;
  recordSize?: number | string;
  retentionDays?: number;
}

export interface ExportArchiveParams extends ArchiveTargetParams {
  repository: string;
  password?: string;
  pool: string;
  vmName?: string;
  /** Restore point id (or prefix) or 'latest'; default: every point not yet in the pool. */
  point?: string;
  /** Write every chunk the points need, even those the pool already holds (a full set). */
  full?: boolean;
}

function requireString(v: unknown, name: string): string {
  if (typeof v !== 'string' || v.trim() === '') throw new HvError('ERR_INVALID_ARGUMENT', `${name} must be a non-empty string`);
  return v;
}

function optionalString(v: unknown, name: string): string | undefined {
  return v === undefined || v === null ? undefined : requireString(v, name);
}

function requireMedia(v: unknown): string[] {
  if (!Array.isArray(v) || v.length === 0 || !v.every((x) => typeof x === 'string' && x !== '')) {
    throw new HvError('ERR_INVALID_ARGUMENT', 'media must be a non-empty list of media file paths, in order');
  }
  return v.map((x: string) => resolve(x));
}

export function mediaTarget(p: ArchiveTargetParams, changeMedium?: (mediumId: string) => Promise<void>): MediaTarget {
  if ((p.mediaDir === undefined) === (p.device === undefined)) throw new HvError('ERR_INVALID_ARGUMENT', 'give exactly one of mediaDir (media files) or device (tape)');
  return p.mediaDir !== undefined ? new DirectoryTarget(resolve(requireString(p.mediaDir, 'mediaDir'))) : new DeviceTarget(requireString(p.device, 'device'), changeMedium);
}

export function targetOptions(p: ArchiveTargetParams): { capacity?: number; recordSize?: number; retentionDays?: number } {
  if (p.retentionDays !== undefined && (!Number.isFinite(p.retentionDays) || p.retentionDays < 0)) throw new HvError('ERR_INVALID_ARGUMENT', `retentionDays ${p.retentionDays} must be zero or more`);
  return {
    capacity: p.capacity === undefined ? undefined : parseSize(p.capacity, 'capacity'),
    recordSize: p.recordSize === undefined ? undefined : parseSize(p.recordSize, 'record size'),
    retentionDays: p.retentionDays,
  };
}

export async function exportArchive(ctx: OperationContext, params: ExportArchiveParams, changeMedium?: (mediumId: string) => Promise<void>): Promise<ExportSummary> {
  const target = mediaTarget(params, changeMedium);
  const opts = targetOptions(params);
  const repo = await openRepositoryForApi(params.repository, optionalString(params.password, 'password'), ctx);
  try {
    return await exportPoints(ctx, repo, target, {
      pool: requireString(params.pool, 'pool'), vmName: optionalString(params.vmName, 'vmName'), point: optionalString(params.point, 'point'), full: params.full === true, ...opts,
    });
  } finally {
    await repo.close();
  }
}

/**
 * Rebuild a pool's catalog by scanning media alone. With a repository, the rebuilt catalog
 * is stored there (replacing a lost or damaged one); the repository must be the one the media came from.
 * Media of an encrypted repository need the password: their restore points are read from the sealed manifests.
 */
export async function importArchive(ctx: OperationContext, params: { media: string[]; repository?: string; password?: string }): Promise<CatalogSummary> {
  const scanned = await scanMediaFiles(ctx, requireMedia(params.media));
  let cat = catalogFromMedia(scanned);
  if (cat.encrypted) {
    const { repo } = await openMediaRepository(scanned, optionalString(params.password, 'password'), ctx.signal, ctx);
    try {
      cat = await addSealedPoints(ctx, cat, scanned, repo);
    } finally {
      await repo.close();
    }
  }
  if (params.repository !== undefined) {
    const repo = await openRepositoryForApi(params.repository, optionalString(params.password, 'password'), ctx);
    try {
      if (repo.config.id !== cat.repositoryId) throw new HvError('ERR_INVALID_ARGUMENT', `the media come from repository ${cat.repositoryId}, not ${repo.config.id} (${repo.location})`, { target: repo.location });
      await saveCatalog(repo, cat, ctx.signal);
    } finally {
      await repo.close();
    }
  }
  return summarizeCatalog(cat);
}

export async function getArchiveCatalog(ctx: OperationContext, params: { repository: string; password?: string; pool: string }): Promise<CatalogSummary> {
  const repo = await openRepositoryForApi(params.repository, optionalString(params.password, 'password'), ctx);
  try {
    const cat = await loadCatalog(repo, requireString(params.pool, 'pool'), ctx.signal);
    if (!cat) throw new HvError('ERR_NOT_FOUND', `media pool ${params.pool} has no catalog in ${repo.location} (nothing exported yet)`, { target: params.pool });
    return summarizeCatalog(cat);
  } finally {
    await repo.close();
  }
}

export async function restoreFromArchive(ctx: OperationContext, params: { media: string[]; vmName: string; point?: string; to: string; password?: string }): Promise<MediaRestoreSummary> {
  const media = requireMedia(params.media);
  const req = { vmName: requireString(params.vmName, 'vmName'), point: optionalString(params.point, 'point'), to: requireString(params.to, 'to'), password: optionalString(params.password, 'password') };
  const scanned = await scanMediaFiles(ctx, media);
  return restoreFromMedia(ctx, scanned, req);
}

/** Runs until ctx.signal aborts: exports every new restore point of the repository to the pool. */
export async function watchArchive(ctx: OperationContext, params: ExportArchiveParams): Promise<WatchSummary> {
  const target = mediaTarget(params);
  const opts = targetOptions(params);
  const repository = resolve(requireString(params.repository, 'repository'));
  return watchRepository(ctx, {
    repository, password: optionalString(params.password, 'password'), target,
    request: { pool: requireString(params.pool, 'pool'), vmName: optionalString(params.vmName, 'vmName'), ...opts },
  });
}
