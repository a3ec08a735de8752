// Public API: local VMs — list, create a sample VM, repair a VM a killed backup left on a checkpoint.
import type { VmSummary } from '../hosts/host.ts';
import { HvError } from '../errors.ts';
import type { OperationContext } from '../progress.ts';
import { requireString } from '../backup/open.ts';
import { LocalHost } from '../hosts/local/host.ts';
import { createSampleVm } from '../hosts/local/sample.ts';
import type { SampleVmResult } from '../hosts/local/sample.ts';
import { repairVm } from '../hosts/local/repair.ts';
import type { RepairResult } from '../hosts/local/repair.ts';
import { guestWrite, randomGuestWrites } from '../hosts/local/guest.ts';
import type { LandedWrite } from '../hosts/local/guest.ts';
import { loadVm } from '../hosts/local/vm-folder.ts';
import { openDisk } from '../vhdx/index.ts';
import { join } from 'node:path';

export async function listVMs(ctx: OperationContext, params: { path: string }): Promise<VmSummary[]> {
  void ctx;
  return new LocalHost({ root: requireString(params.path, 'path') }).listVMs();
}

export async function createSampleVM(ctx: OperationContext, params: { dir: string; sizeBytes?: number; name?: string; seed?: number; guestVss?: boolean }): Promise<SampleVmResult> {
  return createSampleVm(ctx, { dir: requireString(params.dir, 'dir'), sizeBytes: params.sizeBytes, name: params.name, seed: params.seed, guestVss: params.guestVss });
}

export async function repairVM(ctx: OperationContext, params: { dir: string }): Promise<RepairResult> {
  return repairVm(ctx, requireString(params.dir, 'dir'));
}

/** Emulate the running guest: `count` seeded random writes of `size` bytes into the VM's current disk. */
export async function guestWriteVM(ctx: OperationContext, params: { dir: string; count?: number; size?: number; seed?: number; disk?: string }): Promise<LandedWrite[]> {
  void ctx;
  const dir = requireString(params.dir, 'dir');
  const count = params.count ?? 16;
  const size = params.size ?? 65536;
  if (!Number.isInteger(count) || count < 1 || !Number.isInteger(size) || size < 512 || size % 512 !== 0) {
    throw new HvError('ERR_INVALID_ARGUMENT', `guest-write needs count ≥ 1 and a size that is a multiple of 512 (got ${count}, ${size})`);
  }
  const vm = await loadVm(dir);
  const d = params.disk === undefined ? vm.config.disks[0] : vm.config.disks.find((x) => x.key === params.disk);
  if (!d) throw new HvError('ERR_NOT_FOUND', `VM ${vm.config.name} has no disk ${params.disk ?? ''}`, { target: vm.configFile });
  const disk = await openDisk(join(vm.dir, d.path));
  const diskSize = disk.size;
  await disk.close();
  return guestWrite(dir, randomGuestWrites(params.seed ?? Date.now() % 1e9, count, size, diskSize), d.key);
}
