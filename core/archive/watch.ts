// Linked archive: watch the repository's manifests/ folder and export each new restore
// point to a media pool, one at a time. What has been exported is the catalog's to say,
// so a restart never exports a point twice; the watch state (`catalog/<pool>.watch`)
// only remembers since when points count as new, so points that land while the watcher
// is down are exported after a restart, while history older than the first start is not.

import { basename, dirname, join, resolve } from 'node:path';
import chokidar from 'chokidar';
import { wrapError } from '../errors.ts';
import { log, type OperationContext } from '../progress.ts';
import { isRestorePointId } from '../repo/manifest.ts';
import type { Repository } from '../repo/repository.ts';
import { openRepository } from '../repo/local.ts';
import { loadCatalog } from './catalog-store.ts';
import { exportPoints, type ExportRequest } from './export.ts';
import type { MediaTarget } from './media-target.ts';

export interface WatchState {
  pool: string;
  /** Points finished at or after this time are exported. */
  since: string;
}

export interface WatchSummary {
  pool: string;
  since: string;
  exported: string[];
  failed: { id: string; message: string }[];
}

export function encodeWatchState(s: WatchState): Buffer {
  return Buffer.from(JSON.stringify(s) + '\n');
}

export function decodeWatchState(buf: Buffer): WatchState | undefined {
  try {
    const v = JSON.parse(buf.toString('utf8')) as WatchState;
    return typeof v?.since === 'string' && typeof v.pool === 'string' ? v : undefined;
  } catch {
    return undefined;
  }
}

/** Pure decision: should the watcher export this point? */
export function shouldExport(point: { id: string; vm: string; finishedAt: string }, state: WatchState, exported: Set<string>, vmName?: string): boolean {
  if (exported.has(point.id)) return false;
  if (vmName && point.vm.toLowerCase() !== vmName.toLowerCase()) return false;
  return point.finishedAt >= state.since;
}

async function loadOrCreateState(repo: Repository, pool: string, signal?: AbortSignal): Promise<WatchState> {
  const h = { type: 'catalog' as const, name: `${pool}.watch` };
  try {
    const s = decodeWatchState(repo.codec.open('catalog', h.name, await repo.backend.load(signal, h)));
    if (s) return s;
  } catch (err) {
    if (!repo.backend.isNotFound(err)) throw wrapError(err, `load watch state of pool ${pool}`, `<catalog/${h.name}>`);
  }
  const s = { pool, since: new Date().toISOString() };
  await repo.backend.save(signal, h, repo.codec.seal('catalog', encodeWatchState(s), h.name), { overwrite: true });
  return s;
}

export interface WatchOptions {
  repository: string;
  password?: string;
  target: MediaTarget;
  request: Omit<ExportRequest, 'point' | 'full'>;
}

export async function watchRepository(ctx: OperationContext, o: WatchOptions): Promise<WatchSummary> {
  const signal = ctx.signal;
  const repo = await openRepository(o.repository, { password: o.password, signal, onWarning: (w) => log(ctx, 'warning', w, o.repository) });
  const state = await loadOrCreateState(repo, o.request.pool, signal);
  const summary: WatchSummary = { pool: o.request.pool, since: state.since, exported: [], failed: [] };
  const queue: string[] = [];
  let wake: (() => void) | undefined;
  // Watch the repository folder itself, but only its manifests/ (which may not exist yet):
  // chokidar does not notice a watched folder that is created later.
  const root = resolve(o.repository);
  const manifests = join(root, 'manifests');
  const watcher = chokidar.watch(root, { depth: 1, ignoreInitial: false, ignored: (p: string) => p !== root && p !== manifests && dirname(p) !== manifests });
  watcher.on('add', (path: string) => {
    const id = basename(path);
    if (dirname(path) === manifests && isRestorePointId(id) && !queue.includes(id)) { queue.push(id); wake?.(); }
  });
  watcher.on('error', (e: unknown) => log(ctx, 'warning', `watching ${o.repository}: ${(e as Error).message}`));
  const stopped = new Promise<void>((r) => { if (signal?.aborted) r(); else signal?.addEventListener('abort', () => r(), { once: true }); });
  stopped.then(() => wake?.());
  log(ctx, 'info', `watching ${join(o.repository, 'manifests')} for restore points finished since ${state.since}`);
  try {
    while (!signal?.aborted) {
      const id = queue.shift();
      if (id === undefined) {
        await new Promise<void>((r) => { wake = r; });
        wake = undefined;
        continue;
      }
      await exportOne(ctx, repo, o, state, id, summary);
    }
  } finally {
    await watcher.close();
    await repo.close();
  }
  return summary;
}

async function exportOne(ctx: OperationContext, repo: Repository, o: WatchOptions, state: WatchState, id: string, summary: WatchSummary): Promise<void> {
  // The export itself runs to completion even if a stop is requested meanwhile: half a set helps nobody.
  const inner: OperationContext = { onLog: ctx.onLog, onProgress: ctx.onProgress };
  try {
    const m = await repo.loadManifest(id);
    const cat = await loadCatalog(repo, o.request.pool);
    const exported = new Set(cat?.points.map((p) => p.id) ?? []);
    if (!shouldExport({ id, vm: m.vm.name, finishedAt: m.finishedAt }, state, exported, o.request.vmName)) return;
    const r = await exportPoints(inner, repo, o.target, { ...o.request, point: id });
    summary.exported.push(...r.points.map((p) => p.id));
    log(ctx, 'info', `exported restore point ${id} of ${m.vm.name} to pool ${o.request.pool} (${r.chunksWritten} new chunks on ${r.media.map((x) => x.id).join(', ')})`, id);
  } catch (err) {
    const e = wrapError(err, `export restore point ${id} to pool ${o.request.pool}`, id);
    summary.failed.push({ id, message: e.message });
    log(ctx, 'warning', e.message, id);
  }
}
