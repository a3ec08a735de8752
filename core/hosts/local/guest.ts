// An emulated running guest: writes through the engine's disk handle into the VM's
// CURRENT disk (the checkpoint's .avhdx while a backup runs), under the VM lock, as
// Hyper-V's VMMS would route a running VM's I/O. Each write reports the file it landed
// in, so tests can tell writes before a checkpoint from writes during it.

import { join } from 'node:path';
import { HvError } from '../../errors.ts';
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
    const vm = await loadVm(vmDir);
    const d = diskKey === undefined ? vm.config.disks[0] : vm.config.disks.find((x) => x.key === diskKey);
    if (!d) throw new HvError('ERR_NOT_FOUND', `VM ${vm.config.name} has no disk ${diskKey ?? '(none)'}`, { target: vm.configFile });
    const disk = await openDisk(join(vm.dir, d.path), { writable: true });
    try {
      await attachChangeTracking(disk);
      for (const w of writes) await disk.write(w.data, w.offset);
    } finally {
      await disk.close();
    }
    return writes.map((w) => ({ offset: w.offset, length: w.data.length, file: d.path }));
  });
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
