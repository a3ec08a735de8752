// The local host's VM configuration: a small JSON document in `Virtual Machines/<name>.json`
// (Hyper-V keeps a binary .vmcx there). Pure encode/decode; I/O lives in vm-folder.ts.
// The format is documented in docs/repository-format.md, "Local host files".

import { randomUUID } from 'node:crypto';
import { HvError } from '../../errors.ts';

export const VM_CONFIG_SCHEMA = 1;
/** Marks a checkpoint as made by hvbackup, so leftovers are recognisably ours. */
export const BACKUP_CHECKPOINT_MARKER = 'hvbackup-backup-checkpoint';

export interface VmConfigDisk {
  /** Stable key of the disk in the VM, e.g. "SCSI:0:0". */
  key: string;
  /** The disk the VM writes to now, relative to the VM folder, '/'-separated. */
  path: string;
}

export interface CheckpointDiskRecord {
  key: string;
  /** The frozen parent (the path the disk had before the checkpoint). */
  parent: string;
  /** The differencing child the VM writes to while the checkpoint exists. */
  child: string;
  /** Parent's DataWriteGuid when it was frozen: tracking stays trusted across our merge only if it still matches. */
  parentDataWriteGuid?: string;
  /** Set just before the merge of this disk's child starts (a retry must resume it). */
  merging?: boolean;
  /** Set once this disk's child has been merged and `path` points back at the parent. */
  merged?: boolean;
}

export interface BackupCheckpointRecord {
  marker: typeof BACKUP_CHECKPOINT_MARKER;
  id: string;
  /** creating: children may exist but the VM still writes to the parents; active: VM writes to the children. */
  state: 'creating' | 'active';
  createdAt: string;
  /** The process running the backup: a checkpoint is a leftover only once that process is gone. */
  owner?: { pid: number; host: string };
  disks: CheckpointDiskRecord[];
}

export interface VmConfig {
  schema: number;
  id: string;
  name: string;
  generation: 1 | 2;
  disks: VmConfigDisk[];
  /** A declared guest "VSS" hook makes backups application-consistent. */
  guestVss?: { enabled: boolean; note?: string };
  backupCheckpoint?: BackupCheckpointRecord;
}

export function newVmId(): string {
  return randomUUID();
}

export function encodeVmConfig(cfg: VmConfig): Buffer {
  return Buffer.from(JSON.stringify(cfg, null, 2) + '\n', 'utf8');
}

function bad(file: string, problem: string): never {
  throw new HvError('ERR_CORRUPT', `VM config ${file}: ${problem}`, { target: file });
}

function checkRelPath(file: string, p: unknown, what: string): string {
  if (typeof p !== 'string' || p === '' || p.startsWith('/') || p.includes('\\') || p.split('/').includes('..')) {
    bad(file, `${what} must be a relative '/'-separated path inside the VM folder, got ${JSON.stringify(p)}`);
  }
  return p;
}

function decodeCheckpoint(file: string, v: unknown): BackupCheckpointRecord | undefined {
  if (v === undefined || v === null) return undefined;
  const r = v as BackupCheckpointRecord;
  if (r.marker !== BACKUP_CHECKPOINT_MARKER) bad(file, `backupCheckpoint has unknown marker ${JSON.stringify(r.marker)}`);
  if (r.state !== 'creating' && r.state !== 'active') bad(file, `backupCheckpoint state ${JSON.stringify(r.state)} is not creating/active`);
  if (typeof r.id !== 'string' || !Array.isArray(r.disks)) bad(file, 'backupCheckpoint needs id and disks');
  for (const d of r.disks) {
    checkRelPath(file, d.parent, 'backupCheckpoint parent');
    checkRelPath(file, d.child, 'backupCheckpoint child');
  }
  return r;
}

/** Parse and validate; `file` names the config in errors. */
export function decodeVmConfig(buf: Buffer, file: string): VmConfig {
  let v: VmConfig;
  try {
    v = JSON.parse(buf.toString('utf8')) as VmConfig;
  } catch (err) {
    return bad(file, `not valid JSON (${(err as Error).message})`);
  }
  if (typeof v !== 'object' || v === null) bad(file, 'not a JSON object');
  if (v.schema !== VM_CONFIG_SCHEMA) bad(file, `schema ${JSON.stringify(v.schema)} is not supported (expected ${VM_CONFIG_SCHEMA})`);
  if (typeof v.id !== 'string' || v.id === '') bad(file, 'missing id');
  if (typeof v.name !== 'string' || v.name === '') bad(file, 'missing name');
  if (v.generation !== 1 && v.generation !== 2) bad(file, `generation must be 1 or 2, got ${JSON.stringify(v.generation)}`);
  if (!Array.isArray(v.disks)) bad(file, 'disks must be an array');
  const keys = new Set<string>();
  for (const d of v.disks) {
    if (typeof d?.key !== 'string' || d.key === '') bad(file, 'a disk has no key');
    if (keys.has(d.key)) bad(file, `disk key ${d.key} appears twice`);
    keys.add(d.key);
    checkRelPath(file, d.path, `disk ${d.key} path`);
  }
  return { ...v, backupCheckpoint: decodeCheckpoint(file, v.backupCheckpoint) };
}
