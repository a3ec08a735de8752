// Garbage collection: free the stored chunks no restore-point manifest references.
// Under the exclusive lock, so no backup can add a manifest meanwhile:
//   1. load EVERY manifest — one that fails to load stops GC, because an unknown manifest
//      could reference anything;  2. prune the chunk store to the referenced set
//      (core/repo/prune.ts: delete unused packs and loose chunks, rewrite mixed packs).
// A kill at any moment loses no referenced chunk (see prune.ts for the order); the next
// GC finishes the job.

import { HvError, wrapError } from '../errors.ts';
import { log, progress, type OperationContext } from '../progress.ts';
import type { HeldLock } from '../repo/lock.ts';
import { referencedChunks } from '../repo/manifest.ts';
import { pruneChunks, type PruneResult } from '../repo/prune.ts';
import type { Repository } from '../repo/repository.ts';

export interface GcResult extends Pick<PruneResult, 'chunksTotal' | 'chunksReferenced' | 'chunksRemoved' | 'bytesFreed' | 'packsRemoved' | 'packsRewritten'> {
  repository: string;
  status: 'removed' | 'planned';
}

export async function collectGarbageIn(ctx: OperationContext, repo: Repository, opts: { whatIf?: boolean; lock?: HeldLock; ignorePoints?: Set<string> } = {}): Promise<GcResult> {
  const { signal } = ctx;
  const lock = opts.lock ?? (opts.whatIf ? undefined : await repo.lock({ exclusive: true, operation: 'gc', signal }));
  try {
    const referenced = new Set<string>();
    const ids = await repo.listManifestIds(signal);
    for (const id of ids) {
      if (opts.ignorePoints?.has(id)) continue;
      const m = await repo.loadManifest(id, signal).catch((err: unknown) => {
        throw new HvError('ERR_CORRUPT', `gc stopped, nothing deleted: restore point ${id} does not load, so its chunks are unknown (${(err as Error).message})`, { target: id, cause: err });
      });
      for (const c of referencedChunks(m)) referenced.add(c);
    }
    const pruned = await pruneChunks(repo, referenced, {
      whatIf: opts.whatIf, signal,
      onProgress: (done, total) => { if (done % 16 === 0) progress(ctx, { activity: 'gc', target: repo.location, done, total }); },
    }).catch((err: unknown) => { throw wrapError(err, `gc of ${repo.location}`, repo.location); });
    for (const w of pruned.warnings) log(ctx, 'warning', w, repo.location);
    if (!opts.whatIf) await repo.removeOrphanSummaries(signal);
    log(ctx, 'info', `${pruned.chunksRemoved} of ${pruned.chunksTotal} chunks are referenced by no restore point${opts.whatIf ? ' (what if: nothing deleted)' : ''}`, repo.location);
    progress(ctx, { activity: 'gc', target: repo.location, completed: true });
    return {
      repository: repo.location, chunksTotal: pruned.chunksTotal, chunksReferenced: pruned.chunksReferenced, chunksRemoved: pruned.chunksRemoved,
      bytesFreed: pruned.bytesFreed, packsRemoved: pruned.packsRemoved, packsRewritten: pruned.packsRewritten, status: opts.whatIf ? 'planned' : 'removed',
    };
  } finally {
    if (!opts.lock) await lock?.release();
  }
}
