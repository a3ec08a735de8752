// Backup checkpoints on the local host, in a crash-safe order (docs/architecture.md,
// "Write order"). Every step is under the VM lock, and the config records the intent
// before the files change, so a kill -9 at any moment leaves either
//   - no record, the VM on its parents; or
//   - a 'creating' record, the VM still on its parents, maybe empty children: repair deletes them; or
//   - an 'active' record, the VM on the children: repair merges each (re-running a merge
//     that was cut short is safe: the child is deleted only after it is fully merged).

import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, extname, posix } from 'node:path';
import type { ByteRange } from '../../disk/disk.ts';
import { createDifferencingVhdx, differencingChangedRanges, mergeDifferencingVhdx } from '../../vhdx/index.ts';
import { freezeAndStartReference, recordMergedRanges } from '../../tracking/index.ts';
import type { FrozenTracking } from '../../tracking/index.ts';
import type { LogEvent } from '../../progress.ts';
import { BACKUP_CHECKPOINT_MARKER } from './config.ts';
import type { BackupCheckpointRecord, CheckpointDiskRecord } from './config.ts';
import { saveVmConfig } from './vm-folder.ts';
import type { LoadedVm } from './vm-folder.ts';
import { readVhdxInfo } from '../../vhdx/index.ts';

/** Hyper-V names a checkpoint's differencing disk `<disk>_<GUID>.avhdx` beside the disk. */
export function childPathFor(parentRel: string, checkpointId: string): string {
  const dir = posix.dirname(parentRel);
  const stem = posix.basename(parentRel, posix.extname(parentRel));
  return posix.join(dir, `${stem}_${checkpointId.toUpperCase()}.avhdx`);
}

export interface CreatedCheckpoint {
  record: BackupCheckpointRecord;
  /** Per disk key: the tracking state of the frozen parent before the new reference started. */
  tracking: Map<string, FrozenTracking>;
  /** Per disk key: the reference started at the freeze. */
  references: Map<string, string>;
}

export async function createCheckpoint(vm: LoadedVm, abs: (rel: string) => string): Promise<CreatedCheckpoint> {
  const id = randomUUID();
  // Each parent's header is read once: the caller holds the VM lock, so nothing writes the
  // parents until the children take the writes, and their identity and size stay as read.
  const infos = await Promise.all(vm.config.disks.map((d) => readVhdxInfo(abs(d.path))));
  const sizes = new Map(vm.config.disks.map((d, i) => [d.key, infos[i]!.virtualSize]));
  const disks: CheckpointDiskRecord[] = vm.config.disks.map((d, i) => ({ key: d.key, parent: d.path, child: childPathFor(d.path, id), parentDataWriteGuid: infos[i]!.dataWriteGuid }));
  const record: BackupCheckpointRecord = { marker: BACKUP_CHECKPOINT_MARKER, id, state: 'creating', createdAt: new Date().toISOString(), owner: { pid: process.pid, host: hostname() }, disks };
  liveInThisProcess.add(id);
  // Durable before any child exists, so that after a crash repair finds and deletes them.
  await saveVmConfig(vm, { ...vm.config, backupCheckpoint: record });
  // Every child (each made durable by its own fsync) and every parent's new tracking
  // reference at once: they are different files, and none of them is written by anyone
  // until the config below points the VM at the children. All settle before we go on, so
  // a failure never leaves one still writing after the VM lock is released.
  const children = disks.map((d) => createDifferencingVhdx(abs(d.child), abs(d.parent)));
  const starts = disks.map((d) => freezeAndStartReference(abs(d.parent), sizes.get(d.key)!, d.parentDataWriteGuid));
  const failed = (await Promise.allSettled([...children, ...starts])).find((r) => r.status === 'rejected');
  if (failed) throw failed.reason;
  const tracking = new Map<string, FrozenTracking>();
  const references = new Map<string, string>();
  for (const [i, d] of disks.entries()) {
    const started = await starts[i]!;
    tracking.set(d.key, started.frozen);
    references.set(d.key, started.referenceId);
  }
  const active: BackupCheckpointRecord = { ...record, state: 'active', disks };
  const byKey = new Map(disks.map((d) => [d.key, d.child]));
  // Durable before the guest writes into a child: a crash must not take the VM back to its
  // parents (a 'creating' record makes repair delete the children and those writes).
  await saveVmConfig(vm, {
    ...vm.config,
    disks: vm.config.disks.map((d) => ({ ...d, path: byKey.get(d.key) ?? d.path })),
    backupCheckpoint: active,
  });
  return { record: active, tracking, references };
}

/**
 * Merge the checkpoint back, disk by disk, pointing the config back at each parent as
 * soon as its child is merged. Works for a live checkpoint and for a leftover.
 */
export async function removeCheckpoint(vm: LoadedVm, abs: (rel: string) => string, log: (e: LogEvent) => void): Promise<void> {
  const record = vm.config.backupCheckpoint;
  if (!record) return;
  if (record.state === 'creating') {
    // The VM never wrote to the children: they are empty; delete them.
    for (const d of record.disks) await unlink(abs(d.child)).catch(() => undefined);
    await saveVmConfig(vm, { ...vm.config, backupCheckpoint: undefined });
    liveInThisProcess.delete(record.id);
    return;
  }
  for (const d of record.disks) {
    if (d.merged) continue;
    const child = abs(d.child);
    const resume = d.merging === true;
    if (!resume && existsSync(child) && (await differencingChangedRanges(child)).length === 0) {
      // The guest did not write during the backup: the child holds nothing, the parent and
      // its change tracking stay as they are, and deleting the child is the whole merge. No
      // 'merging' mark first: a kill after the delete leaves the child gone, which repair
      // (and the guest's next open) takes as merged — true, the parent has every byte.
      await unlink(child);
      log({ level: 'verbose', message: `merged ${d.child} into ${d.parent} (0 bytes written during the checkpoint)`, target: vm.dir });
    } else if (existsSync(child)) {
      // Note the merge before starting it: a merge cut short has already changed the
      // parent's DataWriteGuid, and the retry must then resume instead of refusing.
      if (!resume) {
        const marked = record.disks.map((x) => (x.key === d.key ? { ...x, merging: true } : x));
        await saveVmConfig(vm, { ...vm.config, backupCheckpoint: { ...record, disks: marked } });
      }
      const res = await mergeDifferencingVhdx(child, { resume });
      await recordMergedRanges(abs(d.parent), res.changed, d.parentDataWriteGuid);
      log({ level: 'verbose', message: `merged ${d.child} into ${d.parent} (${sumBytes(res.changed)} bytes written during the checkpoint)`, target: vm.dir });
    } else {
      // Killed after the merge deleted the child but before the config pointed back.
      log({ level: 'verbose', message: `${d.child} already merged`, target: vm.dir });
    }
    const disks = record.disks.map((x) => (x.key === d.key ? { ...x, merged: true } : x));
    const pointedBack = vm.config.disks.map((x) => (x.key === d.key ? { ...x, path: d.parent } : x));
    record.disks = disks;
    // After the last disk, one write points it back and drops the record (a kill before it
    // leaves this disk marked merging with its child gone: repair counts it merged).
    if (disks.every((x) => x.merged)) {
      await saveVmConfig(vm, { ...vm.config, disks: pointedBack, backupCheckpoint: undefined });
      liveInThisProcess.delete(record.id);
      return;
    }
    await saveVmConfig(vm, { ...vm.config, disks: pointedBack, backupCheckpoint: { ...record, disks } });
  }
  await saveVmConfig(vm, { ...vm.config, backupCheckpoint: undefined });
  liveInThisProcess.delete(record.id);
}

/** Checkpoints this process created and has not removed yet. */
const liveInThisProcess = new Set<string>();

/**
 * Is the backup that owns this checkpoint still running? Then it is not a leftover: merging
 * it would write the parent under a running backup's reads.
 */
export function checkpointOwnerAlive(rec: BackupCheckpointRecord): boolean {
  if (!rec.owner || rec.owner.host !== hostname()) return false;
  if (rec.owner.pid === process.pid) return liveInThisProcess.has(rec.id);
  try {
    process.kill(rec.owner.pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function sumBytes(r: ByteRange[]): number {
  return r.reduce((a, x) => a + x.length, 0);
}

/** A bare disk file's VM name: the file name without its extension. */
export function bareDiskName(path: string): string {
  return basename(path, extname(path));
}
