// Garbage collection: free the stored chunks no restore-point manifest references.
// Under the exclusive lock, so no backup can add a manifest meanwhile:
//   1. load EVERY manifest and every segment it lists — one that fails to load stops GC,
//      because an unknown manifest or segment could reference anything;  2. prune the chunk store to the referenced set
//      (core/repo/prune.ts: delete unused packs and loose chunks, rewrite mixed packs).
// A kill at any moment loses no referenced chunk (see prune.ts for the order); the next
// GC finishes the job.

import { HvError, isHvError, wrapError } from '../errors.ts';
import { log, progress, type OperationContext } from '../progress.ts';
import type { HeldLock } from '../repo/lock.ts';
import { ChunkIdSet } from '../repo/chunk-id-set.ts';
import { addPointChunks } from '../repo/manifest-chunks.ts';
import { pruneChunks, type PruneResult } from '../repo/prune.ts';
import type { Repository } from '../repo/repository.ts';

export interface GcResult extends Pick<PruneResult, 'chunksTotal' | 'chunksReferenced' | 'chunksRemoved' | 'bytesFreed' | 'packsRemoved' | 'packsRewritten'> {
  repository: string;
  status: 'removed' | 'planned';
}

export async function collectGarbageIn(ctx: OperationContext, repo: Repository, opts: { whatIf?: boolean; lock?: HeldLock; ignorePoints?: Set<string> } = {}): Promise<GcResult> {
  const { signal } = ctx;
  const lock = opts.lock ?? (opts.whatIf ? undefined : await repo.lock({ exclusive: true, operation: 'gc', signal }));
  // Compact: ~40 bytes per referenced chunk instead of ~110 for a Set of hex strings (a few,
  // past the memory budget, when it spills to scratch runs).
  const referenced = new ChunkIdSet();
  try {
    // Segments already walked: points sharing an unchanged segment read it once.
    const seen = new Set<string>();
    const ids = await repo.listManifestIds(signal);
    for (const id of ids) {
      if (opts.ignorePoints?.has(id)) continue;
      const m = await repo.loadManifest(id, signal).catch((err: unknown) => {
        throw new HvError('ERR_CORRUPT', `gc stopped, nothing deleted: restore point ${id} does not load, so its chunks are unknown (${(err as Error).message})`, { target: id, cause: err });
      });
      await addPointChunks(repo, m, referenced, { seen, signal }).catch((err: unknown) => {
        if (isHvError(err, 'ERR_CANCELLED')) throw err;
        throw new HvError('ERR_CORRUPT', `gc stopped, nothing deleted: ${(err as Error).message}, so the chunks it lists are unknown`, { target: id, cause: err });
      });
    }
    const pruned = await pruneChunks(repo, referenced, {
      whatIf: opts.whatIf, signal,
      onProgress: (done, total) => { if (done % 16 === 0) progress(ctx, { activity: 'gc', target: repo.location, done, total }); },
    }).catch((err: unknown) => { throw wrapError(err, `gc of ${repo.location}`, repo.location); });
    for (const w of pruned.warnings) log(ctx, 'warning', w, repo.location);
    if (!opts.whatIf) {
      await repo.removeOrphanSummaries(signal);
      // A repair record only matters while a point it names is left (its VM then scans once).
      const left = new Set(ids.filter((id) => !opts.ignorePoints?.has(id)));
      const { records } = await repo.repairRecords(signal);
      for (const [name, r] of records) if (!r.points.some((p) => left.has(p))) await repo.removeRepairRecord(name, signal);
    }
    log(ctx, 'info', `${pruned.chunksRemoved} of ${pruned.chunksTotal} chunks are referenced by no restore point${opts.whatIf ? ' (what if: nothing deleted)' : ''}`, repo.location);
    progress(ctx, { activity: 'gc', target: repo.location, completed: true });
    return {
      repository: repo.location, chunksTotal: pruned.chunksTotal, chunksReferenced: pruned.chunksReferenced, chunksRemoved: pruned.chunksRemoved,
      bytesFreed: pruned.bytesFreed, packsRemoved: pruned.packsRemoved, packsRewritten: pruned.packsRewritten, status: opts.whatIf ? 'planned' : 'removed',
    };
  } finally {
    referenced.close();
    if (!opts.lock) await lock?.release();
  }
}
