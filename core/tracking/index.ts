// Change tracking (our RCT): placeholder until core/tracking lands. Every engine write
// path opens disks through this so writes are recorded beside the disk.
import type { Disk } from '../disk/disk.ts';

/** Attach change tracking to a writable disk if the disk has a tracking record. */
export async function attachChangeTracking(disk: Disk): Promise<void> {
  void disk;
}
