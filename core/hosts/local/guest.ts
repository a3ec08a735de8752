// An emulated running guest: writes through the engine's disk handle into the VM's
// CURRENT disk (the checkpoint's .avhdx while a backup runs), under the VM lock, as
// Hyper-V's VMMS would route a running VM's I/O. Each write reports the file it landed
// in, so tests can tell writes before a checkpoint from writes during it.

import { join } from 'node:path';
import type { Disk } from '../../disk/disk.ts';
import { HvError, isHvError } from '../../errors.ts';
import { removeCheckpoint } from './checkpoint.ts';
import type { LoadedVm } from './vm-folder.ts';
import { openDisk } from '../../vhdx/index.ts';
import { attachChangeTracking } from '../../tracking/index.ts';
import { prng, randomBytesSeeded } from './content.ts';
import { loadVm, withVmLock } from './vm-folder.ts';

export interface GuestWrite {
  offset: number;
  data: Buffer;
}

export interface LandedWrite {
  offset: number;
  length: number;
  /** The disk file (relative to the VM folder) the write went to. */
  file: string;
}

/** Write `writes` into disk `diskKey` (default: the first) of the VM at `vmDir`, as its running guest. */
export async function guestWrite(vmDir: string, writes: GuestWrite[], diskKey?: string): Promise<LandedWrite[]> {
  return withVmLock(vmDir, async () => {
    let vm = await loadVm(vmDir);
    const d = diskKey === undefined ? vm.config.disks[0] : vm.config.disks.find((x) => x.key === diskKey);
    if (!d) throw new HvError('ERR_NOT_FOUND', `VM ${vm.config.name} has no disk ${diskKey ?? '(none)'}`, { target: vm.configFile });
    const disk = await openCurrentDisk(vm, d.key);
    try {
      await attachChangeTracking(disk);
      for (const w of writes) await disk.write(w.data, w.offset);
    } finally {
      await disk.close();
    }
    vm = await loadVm(vmDir);
    const file = vm.config.disks.find((x) => x.key === d.key)!.path;
    return writes.map((w) => ({ offset: w.offset, length: w.data.length, file }));
  });
}

/**
 * Open the disk the VM writes to now. A backup killed in the middle of merging leaves the
 * current child half-merged (or already deleted), or its parent with a log to replay (a kill
 * between a log flush and the in-place writes); like Hyper-V's VMMS on restart, finish that
 * merge first (we hold the VM lock, so its owner is gone; the merge opens the parent
 * writable, which replays the log).
 */
async function openCurrentDisk(vm: LoadedVm, key: string): Promise<Disk> {
  const path = () => join(vm.dir, vm.config.disks.find((x) => x.key === key)!.path);
  try {
    return await openDisk(path(), { writable: true });
  } catch (err) {
    if (!vm.config.backupCheckpoint || !(isHvError(err, 'ERR_PARENT') || isHvError(err, 'ERR_LOG_REPLAY_NEEDED') || isHvError(err, 'ERR_NOT_FOUND') || (err as NodeJS.ErrnoException).code === 'ENOENT')) throw err;
    await removeCheckpoint(vm, (rel) => join(vm.dir, rel), () => undefined);
    return openDisk(path(), { writable: true });
  }
}

/** `count` seeded random writes of `size` bytes at 4 KiB-aligned offsets within `diskSize`. */
export function randomGuestWrites(seed: number, count: number, size: number, diskSize: number): GuestWrite[] {
  const r = prng(seed);
  const slots = Math.floor((diskSize - size) / 4096) + 1;
  return Array.from({ length: count }, (_, i) => ({
    offset: Math.floor(r() * slots) * 4096,
    data: randomBytesSeeded(seed, `guest${i}`, size),
  }));
}

export interface RunningGuest {
  /** Stop writing; resolves with every write made, in order. */
  stop(): Promise<{ write: GuestWrite; landed: LandedWrite }[]>;
}

/** Keep writing random blocks until stopped (a busy guest during a backup). */
export function startGuest(vmDir: string, opts: { seed: number; size?: number; diskSize: number; pauseMs?: number }): RunningGuest {
  const done: { write: GuestWrite; landed: LandedWrite }[] = [];
  let stopping = false;
  let i = 0;
  const loop = (async () => {
    while (!stopping) {
      const [w] = randomGuestWrites(opts.seed * 100_003 + i++, 1, opts.size ?? 65536, opts.diskSize);
      const [landed] = await guestWrite(vmDir, [w!]);
      done.push({ write: w!, landed: landed! });
      await new Promise((r) => setTimeout(r, opts.pauseMs ?? 5));
    }
  })();
  return {
    async stop() {
      stopping = true;
      await loop;
      return done;
    },
  };
}
