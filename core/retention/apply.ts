// Apply a retention policy to a repository: decide (gfs.ts), remove the manifests of
// points no rule keeps under the exclusive lock (the repository's own removal), then,
// with prune, collect the chunks nothing references any more — under the same lock.

import { log, type OperationContext } from '../progress.ts';
import type { Repository } from '../repo/repository.ts';
import { collectGarbageIn, type GcResult } from './gc.ts';
import { checkPolicy, selectRetention, type RetentionPolicy } from './gfs.ts';
import { removeRestorePointsReleasing, type HostGetter } from './release.ts';

export interface RetentionAction {
  id: string;
  vm: string;
  createdAt: string;
  action: 'keep' | 'remove';
  reasons: string[];
}

export interface RetentionResult {
  repository: string;
  status: 'applied' | 'planned';
  points: RetentionAction[];
  removed: number;
  kept: number;
  /** Host objects (Hyper-V reference points) released because no remaining point needs them. */
  referencesReleased?: number;
  gc?: GcResult;
}

export async function applyRetentionIn(ctx: OperationContext, repo: Repository, policy: RetentionPolicy, opts: { vmName?: string; whatIf?: boolean; prune?: boolean; now?: Date; getHost?: HostGetter } = {}): Promise<RetentionResult> {
  checkPolicy(policy);
  const { signal } = ctx;
  const lock = opts.whatIf ? undefined : await repo.lock({ exclusive: true, operation: 'retention', signal });
  try {
    const manifests = await repo.findRestorePoints({ vmName: opts.vmName }, signal);
    const decisions = selectRetention(manifests.map((m) => ({ id: m.id, vm: m.vm.name, createdAt: m.createdAt })), policy, opts.now ?? new Date());
    const points: RetentionAction[] = decisions.map((d) => ({ id: d.id, vm: d.vm, createdAt: d.createdAt, action: d.keep ? 'keep' : 'remove', reasons: d.reasons }));
    const remove = points.filter((p) => p.action === 'remove').map((p) => p.id);
    // Removing also releases the host references (Hyper-V reference points) only these points used.
    const released = !opts.whatIf && remove.length > 0 ? (await removeRestorePointsReleasing(ctx, repo, remove, { lock, getHost: opts.getHost })).referencesReleased : 0;
    for (const p of points) log(ctx, 'verbose', `${p.action} ${p.vm} ${p.createdAt} ${p.id.slice(0, 8)}: ${p.reasons.join(', ')}`, p.id);
    const result: RetentionResult = { repository: repo.location, status: opts.whatIf ? 'planned' : 'applied', points, removed: remove.length, kept: points.length - remove.length, ...(released > 0 ? { referencesReleased: released } : {}) };
    // What-if: the manifests are still there, so GC plans as if the removed points were gone.
    if (opts.prune) result.gc = await collectGarbageIn(ctx, repo, { lock, whatIf: opts.whatIf, ignorePoints: opts.whatIf ? new Set(remove) : undefined });
    return result;
  } finally {
    await lock?.release();
  }
}
