// Pure mapping from what the scripts answer (ConvertTo-Json of Hyper-V objects) onto the
// host interface. ConvertTo-Json writes .NET enums as numbers; the tables below are the
// Microsoft.HyperV.PowerShell enum values (VMState, ControllerType, CheckpointType,
// SnapshotType -- note Missing = 5, not 3), and strings are accepted too (PowerShell 7
// with -EnumsAsStrings, or a script that casts).

import type { ByteRange } from '../../disk/disk.ts';
import { HvError } from '../../errors.ts';
import type { VmDescription, VmDiskInfo, VmSummary } from '../host.ts';

const VM_STATE: Record<number, string> = {
  1: 'Other', 2: 'Running', 3: 'Off', 4: 'Stopping', 6: 'Saved', 9: 'Paused', 10: 'Starting', 11: 'Reset',
  32773: 'Saving', 32776: 'Pausing', 32777: 'Resuming', 32779: 'FastSaved', 32780: 'FastSaving',
  32781: 'ForceShutdown', 32782: 'ForceReboot', 32783: 'Hibernated', 32784: 'ComponentServicing',
  32785: 'RunningCritical', 32786: 'OffCritical', 32788: 'SavedCritical', 32789: 'PausedCritical',
};
const CONTROLLER_TYPE: Record<number, string> = { 0: 'IDE', 1: 'SCSI', 2: 'PMEM' };
const CHECKPOINT_TYPE: Record<number, string> = { 2: 'Disabled', 3: 'Production', 4: 'ProductionOnly', 5: 'Standard' };
const SNAPSHOT_TYPE: Record<number, string> = {
  0: 'Standard', 1: 'Recovery', 2: 'Planned', 5: 'Missing', 6: 'Replica', 7: 'AppConsistentReplica', 8: 'SyncedReplica',
};

function enumName(value: unknown, table: Record<number, string>): string {
  if (typeof value === 'number') return table[value] ?? String(value);
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object' && 'Value' in value) return enumName((value as { Value: unknown }).Value, table);
  return 'Unknown';
}

export const vmStateName = (v: unknown) => enumName(v, VM_STATE);
export const controllerTypeName = (v: unknown) => enumName(v, CONTROLLER_TYPE);
export const checkpointTypeName = (v: unknown) => enumName(v, CHECKPOINT_TYPE);
export const snapshotTypeName = (v: unknown) => enumName(v, SNAPSHOT_TYPE);

/** PowerShell answers a one-element pipeline with the element and an empty one with null. */
export function asArray<T>(value: unknown): T[] {
  if (value === null || value === undefined) return [];
  return (Array.isArray(value) ? value : [value]) as T[];
}

export function str(value: unknown): string {
  return value === null || value === undefined ? '' : String(value);
}

/** "<ControllerType>:<ControllerNumber>:<ControllerLocation>", e.g. "SCSI:0:1". */
export function diskKey(d: { ControllerType?: unknown; ControllerNumber?: unknown; ControllerLocation?: unknown }): string {
  return `${controllerTypeName(d.ControllerType)}:${str(d.ControllerNumber)}:${str(d.ControllerLocation)}`;
}

export function diskFormat(path: string): 'vhdx' | 'raw' {
  return /\.a?vhdx$/i.test(path) ? 'vhdx' : 'raw';
}

export interface RawVmSummary { VMId: string; Name: string; State: unknown; ConfigurationLocation: string }

export function toVmSummary(r: RawVmSummary): VmSummary {
  return { id: str(r.VMId).toLowerCase(), name: r.Name, host: 'hyperv', location: r.ConfigurationLocation, state: vmStateName(r.State) };
}

export interface RawDrive { ControllerType: unknown; ControllerNumber: number; ControllerLocation: number; Path: string | null; DiskNumber?: number | null }

export interface RawVm extends RawVmSummary {
  Generation: number;
  Version: string;
  CheckpointType: unknown;
  IsClustered: boolean;
  Path: string;
  HardDrives: RawDrive[] | RawDrive | null;
  ConfigurationFiles: string[] | string | null;
  ClusterGroup: { Name: string; OwnerNode: string; Cluster: string } | null;
}

export function toVmDescription(r: RawVm): VmDescription {
  const disks: VmDiskInfo[] = [];
  const passThrough: string[] = [];
  const vhd: string[] = [];
  for (const d of asArray<RawDrive>(r.HardDrives)) {
    // Pass-through disks (a host disk number, no file) cannot be checkpointed; the
    // snapshot settings ignore them (IgnoreNonSnapshottableDisks), and so do we.
    if (!d.Path || (d.DiskNumber !== null && d.DiskNumber !== undefined)) { passThrough.push(diskKey(d)); continue; }
    // Legacy .vhd files are neither VHDX nor raw: our reader cannot take them.
    if (/\.a?vhd$/i.test(d.Path)) { vhd.push(`${diskKey(d)} ${d.Path}`); continue; }
    disks.push({ key: diskKey(d), path: d.Path, format: diskFormat(d.Path) });
  }
  const generation = r.Generation === 2 ? 2 : 1;
  return {
    ...toVmSummary(r),
    generation,
    configVersion: str(r.Version) || undefined,
    configFiles: asArray<string>(r.ConfigurationFiles),
    disks,
    details: {
      checkpointType: checkpointTypeName(r.CheckpointType),
      clustered: Boolean(r.IsClustered),
      ...(r.ClusterGroup ? { clusterGroup: r.ClusterGroup.Name, clusterOwnerNode: r.ClusterGroup.OwnerNode, cluster: r.ClusterGroup.Cluster } : {}),
      ...(passThrough.length ? { passThroughDisks: passThrough } : {}),
      ...(vhd.length ? { vhdDisks: vhd } : {}),
    },
  };
}

/** Compare "9.0" with "10.0" numerically, part by part. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return Math.sign(d);
  }
  return 0;
}

/** ConvertTo-Json dates: "\/Date(1700000000000)\/" (Windows PowerShell) or ISO 8601. */
export function parseDate(value: unknown): Date {
  const s = str(value);
  const m = /Date\((-?\d+)/.exec(s);
  const d = m ? new Date(Number(m[1])) : new Date(s);
  return Number.isNaN(d.getTime()) ? new Date(0) : d;
}

/** GetVirtualDiskChanges' parallel arrays as sorted, merged ByteRanges. */
export function toByteRanges(offsets: unknown, lengths: unknown, where: string): ByteRange[] {
  const o = asArray<number>(offsets).map(Number);
  const l = asArray<number>(lengths).map(Number);
  if (o.length !== l.length || [...o, ...l].some((n) => !Number.isSafeInteger(n) || n < 0)) {
    throw new HvError('ERR_HOST', `GetVirtualDiskChanges for ${where} returned ${o.length} offsets and ${l.length} lengths that do not pair up`, { target: where });
  }
  const ranges = o.map((offset, i) => ({ offset, length: l[i]! })).filter((r) => r.length > 0);
  return mergeRanges(ranges);
}

export function mergeRanges(ranges: ByteRange[]): ByteRange[] {
  const sorted = [...ranges].sort((a, b) => a.offset - b.offset);
  const out: ByteRange[] = [];
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last && r.offset <= last.offset + last.length) {
      last.length = Math.max(last.length, r.offset + r.length - last.offset);
    } else {
      out.push({ ...r });
    }
  }
  return out;
}
