// Roll an interrupted export forward: a media file is renamed into place only after the
// catalog names it, so a crash in between leaves `<file>.partial`, sealed and complete,
// for a medium the catalog already lists. Publish those before anything else is written.
// A `.partial` that does not match the catalog is an unfinished medium: left alone (the
// next medium written under that name replaces it).

import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { log, type OperationContext } from '../progress.ts';
import type { Catalog } from './catalog.ts';
import { publishFile } from './media-target.ts';
import { scanMediumFile } from './scan.ts';

export async function publishSealedMedia(ctx: OperationContext, dir: string, cat: Catalog): Promise<string[]> {
  const published: string[] = [];
  for (const m of cat.media) {
    if (!m.file) continue;
    const final = join(dir, m.file);
    const temp = `${final}.partial`;
    if (!(await fsp.stat(temp).then(() => true, () => false))) continue;
    const scanned = await scanMediumFile(temp).catch(() => undefined);
    const l = scanned?.label;
    if (!scanned || l!.mediumId !== m.id || l!.set !== m.set || l!.volume !== m.volume || l!.writtenAt !== m.writtenAt || scanned.bytes !== m.bytes) continue;
    await publishFile(temp, final);
    log(ctx, 'warning', `medium ${m.id}: an interrupted export had written it completely; it is now in place as ${final}`, m.id);
    published.push(m.id);
  }
  return published;
}
