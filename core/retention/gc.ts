// Garbage collection: delete chunks no restore-point manifest references.
// Order (crash-safe, under the exclusive lock so no backup can add a manifest meanwhile):
//   1. list every chunk;  2. load EVERY manifest — one that fails to load stops GC,
//   because an unknown manifest could reference anything;  3. delete the listed chunks
//   that no manifest references.
// A kill at any moment leaves only some unreferenced chunks undeleted; the next GC
// finishes the job. Referenced chunks are never touched.

import { HvError, wrapError } from '../errors.ts';
import { log, progress, type OperationContext } from '../progress.ts';
import type { HeldLock } from '../repo/lock.ts';
import { referencedChunks } from '../repo/manifest.ts';
import type { Repository } from '../repo/repository.ts';

export interface GcResult {
  repository: string;
  chunksTotal: number;
  chunksReferenced: number;
  chunksRemoved: number;
  bytesFreed: number;
  status: 'removed' | 'planned';
}

export async function collectGarbageIn(ctx: OperationContext, repo: Repository, opts: { whatIf?: boolean; lock?: HeldLock; ignorePoints?: Set<string> } = {}): Promise<GcResult> {
  const { signal } = ctx;
  const lock = opts.lock ?? (opts.whatIf ? undefined : await repo.lock({ exclusive: true, operation: 'gc', signal }));
  try {
    const chunks: { id: string; size: number }[] = [];
    for await (const c of repo.listChunks(signal)) chunks.push(c);
    const referenced = new Set<string>();
    const ids = await repo.listManifestIds(signal);
    for (const id of ids) {
      if (opts.ignorePoints?.has(id)) continue;
      const m = await repo.loadManifest(id, signal).catch((err: unknown) => {
        throw new HvError('ERR_CORRUPT', `gc stopped, nothing deleted: restore point ${id} does not load, so its chunks are unknown (${(err as Error).message})`, { target: id, cause: err });
      });
      for (const c of referencedChunks(m)) referenced.add(c);
    }
    const garbage = chunks.filter((c) => !referenced.has(c.id));
    const result: GcResult = { repository: repo.location, chunksTotal: chunks.length, chunksReferenced: chunks.length - garbage.length, chunksRemoved: 0, bytesFreed: 0, status: opts.whatIf ? 'planned' : 'removed' };
    log(ctx, 'info', `${garbage.length} of ${chunks.length} chunks are referenced by no restore point${opts.whatIf ? ' (what if: nothing deleted)' : ''}`, repo.location);
    for (const [i, c] of garbage.entries()) {
      if (!opts.whatIf) await repo.removeChunk(c.id, signal).catch((err: unknown) => { throw wrapError(err, `gc: remove <chunks/${c.id}>`, c.id); });
      result.chunksRemoved++;
      result.bytesFreed += c.size;
      if (i % 64 === 0) progress(ctx, { activity: 'gc', target: repo.location, done: i, total: garbage.length });
    }
    progress(ctx, { activity: 'gc', target: repo.location, completed: true });
    return result;
  } finally {
    if (!opts.lock) await lock?.release();
  }
}
