// Removing restore points also lets the host forget the change-tracking references only those
// points needed (Hyper-V: the reference points holding their RCT ids, which otherwise pile up on
// the host). The host is asked after the manifests are gone; anything that goes wrong there is a
// warning and never undoes or blocks the removal. Kept out of core/repo (no host there) and given
// a host getter by core/api, so retention imports no host code.

import type { DiskReference, Host, VmDescription } from '../hosts/host.ts';
import { log, type OperationContext } from '../progress.ts';
import type { HeldLock } from '../repo/lock.ts';
import type { RestorePointManifest } from '../repo/manifest-types.ts';
import type { Repository } from '../repo/repository.ts';

/** getHost from core/hosts, as core/api passes it. */
export type HostGetter = (kind: 'local' | 'hyperv') => Promise<Pick<Host, 'kind' | 'releaseReferences'>>;

export interface ReleasePlan {
  vm: RestorePointManifest['vm'];
  refs: DiskReference[];
}

/**
 * Per VM (by id), the disk references of `removed` points that no point in `remaining` names.
 * Each reference id appears once.
 */
export function unusedReferences(removed: RestorePointManifest[], remaining: RestorePointManifest[]): ReleasePlan[] {
  const removedIds = new Set(removed.map((m) => m.id));
  const used = new Set<string>();
  for (const m of remaining) {
    if (removedIds.has(m.id)) continue;
    for (const d of m.disks) if (d.reference?.referenceId) used.add(`${m.vm.id}\0${d.reference.referenceId}`);
  }
  const byVm = new Map<string, ReleasePlan>();
  const seen = new Set<string>();
  for (const m of removed) {
    for (const d of m.disks) {
      const ref = d.reference;
      const key = `${m.vm.id}\0${ref?.referenceId}`;
      if (!ref?.referenceId || used.has(key) || seen.has(key)) continue;
      seen.add(key);
      const plan = byVm.get(m.vm.id) ?? { vm: m.vm, refs: [] };
      plan.refs.push(ref);
      byVm.set(m.vm.id, plan);
    }
  }
  return [...byVm.values()];
}

/** What a host needs to find the VM again: its id and name (the host's own description is not stored). */
function vmOf(vm: RestorePointManifest['vm']): VmDescription {
  return { id: vm.id, name: vm.name, host: vm.host, location: '', generation: vm.generation, configVersion: vm.configVersion, configFiles: [], disks: [] };
}

/** Ask each VM's host to release `plans`. Returns how many host objects were released; failures are warnings. */
export async function releaseUnusedReferences(ctx: OperationContext, plans: ReleasePlan[], getHost: HostGetter): Promise<number> {
  let released = 0;
  const hosts = new Map<string, Promise<Pick<Host, 'kind' | 'releaseReferences'>>>();
  for (const { vm, refs } of plans) {
    try {
      let host = hosts.get(vm.host);
      if (!host) hosts.set(vm.host, (host = getHost(vm.host)));
      const h = await host;
      if (!h.releaseReferences) continue;
      const n = await h.releaseReferences(vmOf(vm), refs, { signal: ctx.signal });
      released += n;
      log(ctx, 'verbose', `VM ${vm.name}: released ${n} ${vm.host} reference point(s) for ${refs.length} reference(s) no restore point needs`, vm.name);
    } catch (err) {
      log(ctx, 'warning', `VM ${vm.name}: could not release ${refs.length} change-tracking reference(s) on the ${vm.host} host (${refs.map((r) => r.referenceId).join(', ')}): ${(err as Error)?.message ?? String(err)}; the restore points are removed all the same`, vm.name);
    }
  }
  return released;
}

/**
 * Repository.removeRestorePoints, then release the host references only the removed points
 * used. Under `opts.lock` (exclusive) or a lock of its own. Returns the removed ids and how many
 * host objects were released.
 */
export async function removeRestorePointsReleasing(ctx: OperationContext, repo: Repository, ids: string[], opts: { lock?: HeldLock; getHost?: HostGetter } = {}): Promise<{ ids: string[]; referencesReleased: number }> {
  const { signal } = ctx;
  const lock = opts.lock ?? (await repo.lock({ exclusive: true, operation: 'remove restore points', signal }));
  try {
    let plans: ReleasePlan[] | undefined;
    if (opts.getHost) {
      try {
        const full = await Promise.all(ids.map((id) => repo.resolveManifestId(id, signal)));
        const removed = await Promise.all(full.map((id) => repo.loadManifest(id, signal)));
        plans = unusedReferences(removed, await repo.listManifests(signal));
      } catch (err) {
        // Not knowing every remaining point, releasing could take a reference one still needs.
        log(ctx, 'warning', `not releasing host change-tracking references: the restore points could not all be read (${(err as Error)?.message ?? String(err)})`);
      }
    }
    const removedIds = await repo.removeRestorePoints(ids, { signal, lock });
    const referencesReleased = plans && opts.getHost ? await releaseUnusedReferences(ctx, plans, opts.getHost) : 0;
    return { ids: removedIds, referencesReleased };
  } finally {
    if (!opts.lock) await lock.release();
  }
}
