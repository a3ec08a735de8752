// Checkpoint hygiene: which of a VM's checkpoints are ours (left by an earlier run, to be
// merged), which belong to the user (never touched; they make RCT unsafe), and which belong
// to other backup products (left alone).

import { HvError } from '../../errors.ts';
import { parseDate, snapshotTypeName, str } from './mapping.ts';

/** Prefix of the ElementName (checkpoint name) of every checkpoint we create, then the job id. */
export const CHECKPOINT_TAG = 'HVBackup:';
/** Exactly our names: a user's "HVBackup: before upgrade" is not ours and is never touched. */
const OUR_NAME = /^HVBackup:[A-Za-z0-9._-]+$/;

/** The job id as it may appear in a checkpoint name. */
export function tagSafe(jobId: string): string {
  return jobId.replace(/[^A-Za-z0-9._-]/g, '-') || 'job';
}

export interface RawCheckpoint {
  Id: string;
  Name: string;
  SnapshotType: unknown;
  Notes?: string | null;
  CreationTime?: string;
  ParentSnapshotId?: string | null;
}

export interface CheckpointInfo {
  id: string;
  name: string;
  type: string;
  createdAt: Date;
}

export interface CheckpointClasses {
  ours: CheckpointInfo[];
  user: CheckpointInfo[];
  /** Recovery/replica checkpoints of other products or Hyper-V Replica. */
  foreign: CheckpointInfo[];
}

const NOT_USER_TYPES = new Set(['Recovery', 'Replica', 'AppConsistentReplica', 'SyncedReplica']);

export function classifyCheckpoints(raw: RawCheckpoint[]): CheckpointClasses {
  const out: CheckpointClasses = { ours: [], user: [], foreign: [] };
  for (const r of raw) {
    const c: CheckpointInfo = { id: str(r.Id).toLowerCase(), name: str(r.Name), type: snapshotTypeName(r.SnapshotType), createdAt: parseDate(r.CreationTime) };
    if (OUR_NAME.test(c.name)) out.ours.push(c);
    else if (NOT_USER_TYPES.has(c.type)) out.foreign.push(c);
    else out.user.push(c);
  }
  return out;
}

export function describeCheckpoint(c: CheckpointInfo): string {
  return `${c.name} (${c.type}, created ${c.createdAt.toISOString()})`;
}

export function userCheckpointsError(vmName: string, user: CheckpointInfo[]): HvError {
  const names = user.map((c) => `"${c.name}"`).join(', ');
  return new HvError('ERR_UNSUPPORTED',
    `VM ${vmName} has user checkpoints (${names}): merge or delete them, or run with -AllowUserCheckpoints (scan)`,
    { target: vmName, data: { checkpoints: user.map((c) => ({ id: c.id, name: c.name, type: c.type })) } });
}
