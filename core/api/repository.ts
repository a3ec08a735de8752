// Public API: repositories. Validates arguments, then calls core/repo. The CLI (repo
// commands) and the bridge (Initialize-/Get-/Remove- cmdlets) call only these.

import { resolve } from 'node:path';
import { HvError } from '../errors.ts';
import { log, type OperationContext } from '../progress.ts';
import { initRepository as initRepo, openRepository } from '../repo/local.ts';
import type { Repository } from '../repo/repository.ts';
import { loadWindow, windowCount } from '../repo/manifest-chunks.ts';
import { PIECE_SIZE } from '../repo/manifest-segments.ts';
import { LocalBackend } from '../repo/backend-local.ts';
import { FILE_TYPES } from '../repo/backend-util.ts';
import { breakLocks, describeLock } from '../repo/lock.ts';
import { closeIdlePools } from '../repo/chunk-pool.ts';
import { dropSpareBuffers } from '../repo/pack-writer.ts';
import { dropReadBuffers } from '../backup/read-pipeline.ts';
import { dropKeptChunkIndexes } from '../repo/repository.ts';
import { getHost } from '../hosts/index.ts';
import { removeRestorePointsReleasing } from '../retention/release.ts';
import type { RemoveResult, RepositoryInfo, RepositoryStats } from './types.ts';

function requireString(value: unknown, name: string): string {
  if (typeof value !== 'string' || value.trim() === '') throw new HvError('ERR_INVALID_ARGUMENT', `${name} must be a non-empty string`);
  return value;
}

function optionalPassword(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  return requireString(value, 'password');
}

/** Open a repository folder for any API call (password only for encrypted ones). Close it when done. */
/** Opens a repository for an API call; problems that did not stop the open (a damaged key file skipped) go to `log(ctx, 'warning', …)`. */
export function openRepositoryForApi(path: string, password?: string, ctx?: OperationContext): Promise<Repository> {
  const location = requireString(path, 'repository path');
  return openRepository(location, { password, signal: ctx?.signal, onWarning: (w) => log(ctx, 'warning', w, location) });
}

export function repositoryInfo(repo: Repository): RepositoryInfo {
  const c = repo.config;
  return { path: repo.location, id: c.id, formatVersion: c.version, encrypted: c.encryption !== null, chunkSize: c.chunkSize, compression: c.compression, createdAt: c.createdAt };
}

export async function initRepository(ctx: OperationContext, params: { path: string; encrypt?: boolean; password?: string; chunkSize?: number }): Promise<RepositoryInfo> {
  const path = requireString(params.path, 'path');
  const password = optionalPassword(params.password);
  if (params.encrypt && password === undefined) throw new HvError('ERR_INVALID_ARGUMENT', 'an encrypted repository needs a password');
  if (!params.encrypt && password !== undefined) throw new HvError('ERR_INVALID_ARGUMENT', 'a password was given but encrypt is not set');
  if (params.chunkSize !== undefined && (!Number.isSafeInteger(params.chunkSize) || (params.chunkSize & (params.chunkSize - 1)) !== 0)) {
    throw new HvError('ERR_INVALID_ARGUMENT', `chunkSize ${params.chunkSize} must be a power of two`);
  }
  const repo = await initRepo(path, { password: params.encrypt ? password : undefined, chunkSize: params.chunkSize, signal: ctx.signal });
  try {
    return repositoryInfo(repo);
  } finally {
    await repo.close();
  }
}

export async function getRepositoryStats(ctx: OperationContext, params: { path: string; password?: string }): Promise<RepositoryStats> {
  const repo = await openRepositoryForApi(params.path, optionalPassword(params.password), ctx);
  try {
    return await computeStats(repo, ctx.signal);
  } finally {
    await repo.close();
  }
}

async function computeStats(repo: Repository, signal?: AbortSignal): Promise<RepositoryStats> {
  const manifests = await repo.listManifests(signal);
  const chunkSizes = new Map<string, number>();
  for await (const c of repo.listChunks(signal)) chunkSizes.set(c.id, c.size);
  let storedBytes = 0;
  for (const type of FILE_TYPES) {
    for await (const o of repo.backend.list(signal, type)) storedBytes += o.size;
  }
  let logicalBytes = 0;
  const unique = new Map<string, number>();
  const seenSegments = new Set<string>();
  for (const m of manifests) {
    for (const d of m.disks) {
      logicalBytes += d.virtualSize;
      for (let k = 0; k < windowCount(d); k++) {
        // A segment shared with a point already counted lists nothing new: not read again.
        const segment = d.segments?.[k];
        if (segment === null || (segment && seenSegments.has(segment))) continue;
        if (segment) seenSegments.add(segment);
        const w = await loadWindow(repo, m.id, d, k, signal);
        w.refs.forEach((r, j) => {
          const len = Math.min(d.chunkSize, d.virtualSize - (w.first + j) * d.chunkSize);
          if (typeof r === 'string') unique.set(r, len);
          // A piece's chunk is at least as long as the bytes taken from it (its plain length is not at hand).
          else if (r) r.pieces.forEach((p, q) => { if (p) unique.set(p.id, Math.max(unique.get(p.id) ?? 0, p.offset + Math.min(PIECE_SIZE, len - q * PIECE_SIZE))); });
        });
      }
    }
    for (const f of m.configFiles) {
      logicalBytes += f.size;
      f.chunks.forEach((id, i) => { if (id) unique.set(id, Math.min(repo.chunkSize, f.size - i * repo.chunkSize)); });
    }
  }
  // The engine scans a VM whose newest point a repair record names (or every VM, while a record does not load).
  const rescan = await repo.pointsToRescan(signal);
  const vmsToRescan = (await repo.findRestorePoints({ latest: true }, signal)).filter((p) => rescan.points.has(p.id) || rescan.unreadable.length > 0).map((p) => p.vm.name).sort();
  let uniqueBytes = 0;
  let storedChunkBytes = 0;
  for (const [id, len] of unique) {
    uniqueBytes += len;
    storedChunkBytes += chunkSizes.get(id) ?? 0;
  }
  return {
    ...repositoryInfo(repo),
    restorePoints: manifests.length,
    vms: new Set(manifests.map((m) => m.vm.id)).size,
    logicalBytes,
    uniqueBytes,
    storedBytes,
    chunkCount: chunkSizes.size,
    dedupeRatio: uniqueBytes > 0 ? logicalBytes / uniqueBytes : 0,
    compressionRatio: storedChunkBytes > 0 ? uniqueBytes / storedChunkBytes : 0,
    vmsToRescan,
  };
}

/** Delete restore points (manifests only; chunks stay until garbage collection). whatIf: resolve ids, delete nothing. */
export async function removeRestorePoints(ctx: OperationContext, params: { repository: string; password?: string; ids: string[]; whatIf?: boolean }): Promise<RemoveResult> {
  if (!Array.isArray(params.ids) || params.ids.length === 0) throw new HvError('ERR_INVALID_ARGUMENT', 'ids must list at least one restore point id');
  const repo = await openRepositoryForApi(params.repository, optionalPassword(params.password), ctx);
  try {
    if (params.whatIf) {
      const ids = await Promise.all(params.ids.map((id) => repo.resolveManifestId(requireString(id, 'restore point id'), ctx.signal)));
      return { ids, status: 'planned' };
    }
    // Hyper-V keeps a reference point per backup: release those no remaining point needs.
    const { ids } = await removeRestorePointsReleasing(ctx, repo, params.ids, { getHost: (kind) => getHost(kind, { onLog: ctx.onLog }) });
    for (const id of ids) log(ctx, 'info', `removed restore point ${id}`, id);
    return { ids, status: 'removed' };
  } finally {
    await repo.close();
  }
}

/**
 * Remove stale locks (a killed backup's), or with force every lock. Needs no password:
 * locks are plain objects. Returns who held the locks that were removed.
 */
export async function unlockRepository(ctx: OperationContext, params: { path: string; force?: boolean }): Promise<{ removed: { name: string; hostname?: string; pid?: number; time?: string; operation?: string }[] }> {
  const backend = new LocalBackend(resolve(requireString(params.path, 'path')));
  try {
    await backend.stat(ctx.signal, { type: 'config', name: 'config' });
  } catch (err) {
    if (backend.isNotFound(err)) throw new HvError('ERR_NOT_FOUND', `${backend.location} is not an HVBackup repository (it has no config file)`, { target: backend.location });
    throw err;
  }
  const removed = await breakLocks(backend, { force: params.force, signal: ctx.signal });
  for (const l of removed) log(ctx, 'info', `removed lock ${l.name.slice(0, 8)}${l.info ? ` (${describeLock(l.info)})` : ' (unreadable)'}`, backend.location);
  return { removed: removed.map((l) => ({ name: l.name, ...(l.info ?? {}) })) };
}

/**
 * For a long-lived process serving many calls (the bridge): keep up to `n` idle chunk-worker
 * pools between operations instead of starting workers for every repository opened.
 */
export { keepIdlePools as keepIdleWorkerPools } from '../repo/chunk-pool.ts';
export { keepChunkIndexes } from '../repo/repository.ts';

/**
 * For that process once it has been idle a while: stop the kept chunk workers (their memory
 * and, for an encrypted repository, the keys they hold) and let go of the kept pack and read buffers,
 * chunk indexes and restore-point summaries. The next call starts workers and reads its index
 * again, as a first one does; what to keep (keepIdleWorkerPools, keepChunkIndexes) stays as set.
 */
export async function releaseKeptResources(): Promise<{ workers: number; packBufferBytes: number; readBufferBytes: number; indexes: number }> {
  const indexes = dropKeptChunkIndexes();
  const packBufferBytes = dropSpareBuffers();
  const readBufferBytes = dropReadBuffers();
  const workers = await closeIdlePools();
  return { workers, packBufferBytes, readBufferBytes, indexes };
}
