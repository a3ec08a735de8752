// Public API: list restore points.
import type { RestorePointInfo } from './types.ts';
import type { OperationContext } from '../progress.ts';
import type { RestorePointSummary } from '../repo/manifest-types.ts';
import { optionalString, withRepo } from '../backup/open.ts';

export interface ListPointsParams {
  repository: string;
  password?: string;
  vmName?: string;
  /** Only the newest point of each VM. */
  latest?: boolean;
}

export function pointInfo(repository: string, m: RestorePointSummary): RestorePointInfo {
  return {
    id: m.id, repository, vmName: m.vm.name, vmId: m.vm.id, host: m.vm.host, createdAt: m.createdAt,
    consistency: m.consistency, method: m.method, ...(m.methodReason ? { methodReason: m.methodReason } : {}),
    totalBytes: m.stats.totalBytes, storedBytes: m.stats.storedBytes,
    disks: m.disks.map((d) => ({ key: d.key, fileName: d.fileName, virtualSize: d.virtualSize })),
  };
}

export async function listRestorePoints(ctx: OperationContext, params: ListPointsParams): Promise<RestorePointInfo[]> {
  const vmName = optionalString(params.vmName, 'vmName');
  return withRepo(params.repository, params.password, ctx, async (repo) =>
    (await repo.findRestorePoints({ vmName, latest: params.latest === true }, ctx.signal)).map((m) => pointInfo(repo.location, m)));
}
