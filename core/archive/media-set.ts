// Media given by the user (files, in order) turned into what the rest needs: a catalog
// rebuilt from their labels, entries and trailers alone, and a read-only Backend that
// serves repository objects from them.

import { basename, resolve } from 'node:path';
import { HvError } from '../errors.ts';
import { log, progress, type OperationContext } from '../progress.ts';
import { addPoints, catalogMediumFromLabel, emptyCatalog, objectIndex, putMedium, type Catalog } from './catalog.ts';
import { MediaBackend } from './media-backend.ts';
import { checkMediaOrder, scanMediumFile, type ScannedMedium } from './scan.ts';

export async function scanMediaFiles(ctx: OperationContext, paths: string[]): Promise<ScannedMedium[]> {
  if (paths.length === 0) throw new HvError('ERR_INVALID_ARGUMENT', 'no media given (--media <files...>)');
  const scanned: ScannedMedium[] = [];
  for (const [i, p] of paths.entries()) {
    ctx.signal?.throwIfAborted();
    progress(ctx, { activity: 'scan media', target: p, status: `reading ${basename(p)}`, done: i, total: paths.length });
    scanned.push(await scanMediumFile(resolve(p)));
  }
  progress(ctx, { activity: 'scan media', completed: true, done: paths.length, total: paths.length });
  for (const w of checkMediaOrder(scanned)) log(ctx, 'warning', w);
  const pools = new Set(scanned.map((m) => m.label.pool));
  const repos = new Set(scanned.map((m) => m.label.repositoryId));
  if (pools.size > 1 || repos.size > 1) {
    throw new HvError('ERR_INVALID_ARGUMENT', `the media come from ${pools.size > 1 ? `several pools (${[...pools].join(', ')})` : 'several repositories'}; give the media of one pool`, { target: paths[0] });
  }
  return scanned;
}

/** The catalog the export wrote, rebuilt from the media alone (media in the order given). */
export function catalogFromMedia(scanned: ScannedMedium[]): Catalog {
  const newest = [...scanned].sort((a, b) => a.label.writtenAt.localeCompare(b.label.writtenAt)).at(-1)!.label;
  let cat = emptyCatalog({ name: newest.pool, capacity: newest.capacity, recordSize: newest.recordSize, retentionDays: newest.retentionDays }, newest.repositoryId, newest.encrypted);
  // Media in the order they were written, so a reused medium replaces what it held before.
  const byWrite = [...scanned].sort((a, b) => a.label.writtenAt.localeCompare(b.label.writtenAt) || a.label.volume - b.label.volume || a.label.seq - b.label.seq);
  for (const m of byWrite) cat = putMedium(cat, catalogMediumFromLabel(m.label, m.trailer, m.entries, m.bytes, basename(m.source)));
  for (const m of byWrite) if (!m.trailer.continues) cat = addPoints(cat, m.trailer.points.map((p) => ({ ...p, set: m.label.set })));
  return cat;
}

export function mediaBackend(scanned: ScannedMedium[]): MediaBackend {
  const cat = catalogFromMedia(scanned);
  const paths = new Map(scanned.map((m) => [m.label.mediumId, m.source]));
  return new MediaBackend(`media ${scanned.map((m) => basename(m.source)).join(', ')}`, objectIndex(cat), paths);
}
