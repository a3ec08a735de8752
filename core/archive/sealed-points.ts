// Restore points of media from an encrypted repository. Their trailers list no points (VM
// names and backup times would be plain text on the media), so a catalog rebuilt from
// such media learns them from the sealed manifests the media carry, opened with the
// repository password (the media's own config and key files suffice).

import { isHvError } from '../errors.ts';
import { log, type OperationContext } from '../progress.ts';
import type { Repository } from '../repo/repository.ts';
import { addPoints, type Catalog, type CatalogPoint } from './catalog.ts';
import type { ScannedMedium } from './scan.ts';

const MANIFEST_ENTRY = /^manifests\/([0-9a-f]{64})(?:\.part\d+of\d+)?$/;

/** Manifest id → the export set carrying it (the latest written, as for trailer points); only sets whose last volume is given. */
export function manifestSets(scanned: ScannedMedium[]): Map<string, string> {
  const ended = new Set(scanned.filter((m) => !m.trailer.continues).map((m) => m.label.set));
  const byWrite = [...scanned].sort((a, b) => a.label.writtenAt.localeCompare(b.label.writtenAt) || a.label.volume - b.label.volume || a.label.seq - b.label.seq);
  const sets = new Map<string, string>();
  for (const m of byWrite) {
    if (!ended.has(m.label.set)) continue;
    for (const e of m.entries) {
      const id = MANIFEST_ENTRY.exec(e.name)?.[1];
      if (id) sets.set(id, m.label.set);
    }
  }
  return sets;
}

/** `cat` (rebuilt from `scanned`) with the points read from the sealed manifests on the media, through `repo` (the media opened with the password). */
export async function addSealedPoints(ctx: OperationContext, cat: Catalog, scanned: ScannedMedium[], repo: Repository): Promise<Catalog> {
  const found: CatalogPoint[] = [];
  for (const [id, set] of manifestSets(scanned)) {
    ctx.signal?.throwIfAborted();
    try {
      const m = await repo.loadManifest(id, ctx.signal);
      found.push({ id: m.id, vm: m.vm.name, createdAt: m.createdAt, set });
    } catch (err) {
      if (!isHvError(err) || err.code === 'ERR_AUTH') throw err;
      log(ctx, 'warning', `restore point manifest <manifests/${id}> on the media cannot be read (${err.message}); it is left out of the catalog`, `<manifests/${id}>`);
    }
  }
  return addPoints(cat, found);
}
