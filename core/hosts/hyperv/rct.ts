// Resilient Change Tracking: Msvm_ImageManagementService.GetVirtualDiskChanges answers for
// part of the requested window at a time (ProcessedByteLength), so we ask again from where
// it stopped until the whole disk is covered. Any failure means "scan instead", with the
// reason kept in the restore point; only cancellation is an error.

import type { ByteRange } from '../../disk/disk.ts';
import { isHvError } from '../../errors.ts';
import type { ChangedRanges } from '../host.ts';
import { toByteRanges, mergeRanges } from './mapping.ts';
import { GET_VIRTUAL_DISK_CHANGES } from './scripts.ts';
import { callMethod } from './wmi-job.ts';
import type { JobContext } from './wmi-job.ts';

export interface RctQuery {
  /** The frozen VHDX (the checkpoint's storage HostResource). */
  path: string;
  /** The previous reference point's RCT id for this disk. */
  limitId: string;
  virtualSize: number;
}

export async function queryRctChanges(ctx: JobContext, q: RctQuery): Promise<ChangedRanges> {
  const ranges: ByteRange[] = [];
  let offset = 0;
  while (offset < q.virtualSize) {
    let r;
    try {
      r = await callMethod(ctx, GET_VIRTUAL_DISK_CHANGES, { path: q.path, limitId: q.limitId, byteOffset: offset, byteLength: q.virtualSize - offset });
    } catch (err) {
      if (isHvError(err, 'ERR_CANCELLED')) throw err;
      const why = err instanceof Error ? err.message : String(err);
      return { available: false, reason: `RCT unavailable for ${q.path} (change tracking id ${q.limitId} may have been reset or is unknown to this host): ${why}` };
    }
    const processed = Number(r.ProcessedByteLength);
    if (!Number.isSafeInteger(processed) || processed <= 0) {
      return { available: false, reason: `RCT unavailable for ${q.path}: GetVirtualDiskChanges made no progress at byte ${offset}` };
    }
    ranges.push(...toByteRanges(r.ChangedByteOffsets, r.ChangedByteLengths, q.path));
    offset += processed;
  }
  const clipped = mergeRanges(ranges)
    .map((x) => ({ offset: x.offset, length: Math.min(x.length, q.virtualSize - x.offset) }))
    .filter((x) => x.length > 0);
  return { available: true, ranges: clipped, method: 'rct' };
}
