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
import { guestWrite, randomGuestWrites, startGuest } from '../hosts/local/guest.ts';
import type { GuestWrite, LandedWrite, RunningGuest } from '../hosts/local/guest.ts';
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

/** Start an emulated guest that keeps writing into the VM's current disk until stopped (demos, tests). */
export async function startGuestWriter(ctx: OperationContext, params: { dir: string; seed: number; size?: number; pauseMs?: number }): Promise<RunningGuest> {
  void ctx;
  const vm = await loadVm(requireString(params.dir, 'dir'));
  const disk = await openDisk(join(vm.dir, vm.config.disks[0]!.path));
  const diskSize = disk.size;
  await disk.close();
  return startGuest(vm.dir, { seed: params.seed, size: params.size, diskSize, pauseMs: params.pauseMs });
}

/** Apply writes to a disk file directly (no change tracking): builds expected images in demos and tests. */
export async function applyWrites(path: string, writes: GuestWrite[]): Promise<void> {
  const disk = await openDisk(path, { writable: true });
  try {
    for (const w of writes) await disk.write(w.data, w.offset);
  } finally {
    await disk.close();
  }
}

/** Byte-compare two disks (any format openDisk reads); returns the first differing offset or -1. */
export async function compareDisks(a: string, b: string, signal?: AbortSignal): Promise<number> {
  const da = await openDisk(a);
  const db = await openDisk(b).catch(async (err: unknown) => { await da.close(); throw err; });
  try {
    if (da.size !== db.size) return 0;
    const step = 8 * 1048576;
    const ba = Buffer.allocUnsafe(step);
    const bb = Buffer.allocUnsafe(step);
    for (let off = 0; off < da.size; off += step) {
      if (signal?.aborted) throw new HvError('ERR_CANCELLED', 'compare cancelled');
      const n = Math.min(step, da.size - off);
      await Promise.all([da.read(ba.subarray(0, n), off), db.read(bb.subarray(0, n), off)]);
      if (!ba.subarray(0, n).equals(bb.subarray(0, n))) {
        for (let i = 0; i < n; i++) if (ba[i] !== bb[i]) return off + i;
      }
    }
    return -1;
  } finally {
    await da.close();
    await db.close();
  }
}

/** How many of `writes` (in order) are not readable from the VM's current disk; later overlapping writes win. */
export async function missingWrites(dir: string, writes: GuestWrite[]): Promise<number> {
  const vm = await loadVm(dir);
  const disk = await openDisk(join(vm.dir, vm.config.disks[0]!.path));
  try {
    let missing = 0;
    for (let i = 0; i < writes.length; i++) {
      const w = writes[i]!;
      const overlapped = writes.slice(i + 1).some((x) => x.offset < w.offset + w.data.length && w.offset < x.offset + x.data.length);
      if (overlapped) continue;
      const buf = Buffer.alloc(w.data.length);
      await disk.read(buf, w.offset);
      if (!buf.equals(w.data)) missing++;
    }
    return missing;
  } finally {
    await disk.close();
  }
}
