// Public API: restore a restore point into a VM folder (or one disk into a folder).
import type { RestoreResult } from './types.ts';
import { HvError } from '../errors.ts';
import type { OperationContext } from '../progress.ts';
import type { Repository } from '../repo/index.ts';
import type { RestorePointManifest } from '../repo/manifest-types.ts';
import { optionalString, requireString, withRepo } from '../backup/open.ts';
import { getHost } from '../hosts/index.ts';
import { restoreVm } from '../restore/restore.ts';

export interface RestoreParams {
  repository: string;
  password?: string;
  /** A restore point id (or unique prefix of 8+ hex characters), or 'latest' (with vmName). */
  point: string;
  vmName?: string;
  to: string;
  newName?: string;
  disk?: string;
  whatIf?: boolean;
}

export async function resolvePoint(repo: Repository, point: string, vmName: string | undefined, signal?: AbortSignal): Promise<RestorePointManifest> {
  if (point === 'latest') {
    const latest = await repo.findRestorePoints({ vmName, latest: true }, signal);
    if (latest.length === 0) throw new HvError('ERR_NOT_FOUND', `no restore point${vmName ? ` of VM ${vmName}` : ''} in ${repo.location}`, { target: vmName ?? repo.location });
    if (latest.length > 1) throw new HvError('ERR_INVALID_ARGUMENT', `"latest" is ambiguous: ${repo.location} holds ${latest.length} VMs (${latest.map((m) => m.vm.name).join(', ')}); name one with vmName/--vm`);
    return latest[0]!;
  }
  const m = await repo.loadManifest(point, signal);
  if (vmName !== undefined && m.vm.name.toLowerCase() !== vmName.toLowerCase()) {
    throw new HvError('ERR_INVALID_ARGUMENT', `restore point ${m.id.slice(0, 12)} belongs to VM ${m.vm.name}, not ${vmName}`, { target: point });
  }
  return m;
}

export async function restoreVM(ctx: OperationContext, params: RestoreParams): Promise<RestoreResult> {
  const point = requireString(params.point, 'point');
  const to = requireString(params.to, 'to');
  const vmName = optionalString(params.vmName, 'vmName');
  const host = await getHost('local', { onLog: ctx.onLog });
  return withRepo(params.repository, params.password, ctx.signal, async (repo) => {
    const manifest = await resolvePoint(repo, point, vmName, ctx.signal);
    return restoreVm(ctx, { repo, host, manifest, to, newName: optionalString(params.newName, 'newName'), disk: optionalString(params.disk, 'disk'), whatIf: params.whatIf === true });
  });
}
