// Public API: restore a restore point into a VM folder (or one disk into a folder).
import type { RestoreResult } from './types.ts';
import { HvError } from '../errors.ts';
import type { OperationContext } from '../progress.ts';
import type { Repository } from '../repo/index.ts';
import type { RestorePointManifest } from '../repo/manifest-types.ts';
import { optionalString, requireString, withRepo } from '../backup/open.ts';
import { getHost } from '../hosts/index.ts';
import type { HostKind } from '../hosts/index.ts';
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
  /** Restore what loads, zeros where a chunk or segment does not, and list those ranges (status partial). */
  allowDamaged?: boolean;
  /**
   * Host that receives the VM: default Hyper-V for a whole-VM restore of a Hyper-V restore
   * point, else the local host (VM folder). A single-disk restore never needs a hypervisor.
   */
  host?: HostKind;
}

/** The host a restore registers the VM with: `forced` if given, else by the point's host and scope. */
export function restoreHostKind(m: RestorePointManifest, disk: string | undefined, forced: HostKind | undefined): HostKind {
  if (forced !== undefined) return forced;
  return m.vm.host === 'hyperv' && disk === undefined ? 'hyperv' : 'local';
}

export async function resolvePoint(repo: Repository, point: string, vmName: string | undefined, signal?: AbortSignal): Promise<RestorePointManifest> {
  if (point === 'latest') {
    const latest = await repo.findRestorePoints({ vmName, latest: true }, signal);
    if (latest.length === 0) throw new HvError('ERR_NOT_FOUND', `no restore point${vmName ? ` of VM ${vmName}` : ''} in ${repo.location}`, { target: vmName ?? repo.location });
    if (latest.length > 1) throw new HvError('ERR_INVALID_ARGUMENT', `"latest" is ambiguous: ${repo.location} holds ${latest.length} VMs (${latest.map((m) => m.vm.name).join(', ')}); name one with vmName/--vm`);
    return repo.loadManifest(latest[0]!.id, signal);
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
  const disk = optionalString(params.disk, 'disk');
  const forced = optionalString(params.host, 'host');
  if (forced !== undefined && forced !== 'local' && forced !== 'hyperv') throw new HvError('ERR_INVALID_ARGUMENT', `host must be "local" or "hyperv", got ${JSON.stringify(forced)}`);
  return withRepo(params.repository, params.password, ctx, async (repo) => {
    const manifest = await resolvePoint(repo, point, vmName, ctx.signal);
    const host = await getHost(restoreHostKind(manifest, disk, forced as HostKind | undefined), { onLog: ctx.onLog });
    // A whole VM must be one this host can run: refuse before any byte is written.
    if (disk === undefined) await host.checkRestoreCompatibility?.(manifest.vm.name, manifest.vm.configVersion, { signal: ctx.signal });
    return restoreVm(ctx, { repo, host, manifest, to, newName: optionalString(params.newName, 'newName'), disk, whatIf: params.whatIf === true, allowDamaged: params.allowDamaged === true });
  }, { chunkWork: true });
}
