// One frozen disk → one DiskManifest: choose the method (full / changed-blocks / scan),
// plan the slices, read and store them.

import type { Disk } from '../disk/disk.ts';
import type { BackupMethod } from '../api/types.ts';
import type { BackupCheckpoint, FrozenDisk, Host } from '../hosts/host.ts';
import type { Repository } from '../repo/index.ts';
import type { ChunkWriter } from '../repo/index.ts';
import type { DiskManifest } from '../repo/manifest-types.ts';
import { readVhdxInfo } from '../vhdx/index.ts';
import type { VhdxInfo } from '../vhdx/index.ts';
import { planSlices, readRuns } from './plan.ts';
import type { SlicePlan } from './plan.ts';
import { readAndStore } from './read-pipeline.ts';
import { basename } from 'node:path';

/** Bytes per read call: several chunk slices at once. */
export const READ_RUN_BYTES = 4 * 1024 * 1024;

export interface DiskChoice {
  method: BackupMethod;
  reason?: string;
  changed?: { offset: number; length: number }[];
}

/** Which method a disk gets, and why when it is not the obvious one. */
export async function chooseDiskMethod(host: Host, cp: BackupCheckpoint, fd: FrozenDisk, virtualSize: number, chunkSize: number, previous: DiskManifest | undefined, full: boolean): Promise<DiskChoice> {
  if (full) return { method: 'full' };
  if (!previous) return { method: 'scan', reason: `disk ${fd.key} is not in the previous restore point` };
  if (previous.chunkSize !== chunkSize) return { method: 'scan', reason: `chunk size changed (${previous.chunkSize} → ${chunkSize})` };
  if (previous.virtualSize !== virtualSize) return { method: 'scan', reason: `disk ${fd.key} was resized (${previous.virtualSize} → ${virtualSize} bytes)` };
  const ch = await host.getChangedRanges(cp, fd, previous.reference);
  if (!ch.available) return { method: 'scan', reason: ch.reason };
  return { method: 'changed-blocks', changed: ch.ranges };
}

async function geometryOf(fd: FrozenDisk, disk: Disk): Promise<Pick<DiskManifest, 'blockSize' | 'logicalSectorSize' | 'physicalSectorSize'>> {
  if (fd.format === 'vhdx') {
    // The open VHDX knows its own geometry; read the file again only for other Disk kinds.
    const info = (disk as { info?: VhdxInfo }).info ?? (await readVhdxInfo(fd.path));
    return { blockSize: info.blockSize, logicalSectorSize: info.logicalSectorSize, physicalSectorSize: info.physicalSectorSize };
  }
  return { blockSize: 32 * 1024 * 1024, logicalSectorSize: disk.geometry.logicalSectorSize, physicalSectorSize: disk.geometry.physicalSectorSize };
}

export interface DiskBackupResult {
  manifest: DiskManifest;
  choice: DiskChoice;
  readBytes: number;
}

export async function planDisk(disk: Disk, choice: DiskChoice, chunkSize: number, previous: DiskManifest | undefined): Promise<SlicePlan[]> {
  return planSlices({
    virtualSize: disk.size,
    chunkSize,
    extents: await disk.extents(),
    changed: choice.method === 'changed-blocks' ? choice.changed : undefined,
    previous: previous?.chunks,
  });
}

export async function backupDisk(opts: {
  repo: Repository; host: Host; cp: BackupCheckpoint; fd: FrozenDisk; disk: Disk; fileName?: string;
  previous: DiskManifest | undefined; full: boolean; writer: ChunkWriter; signal?: AbortSignal;
  onPlanned?: (bytes: number) => void; onRead?: (bytes: number) => void;
}): Promise<DiskBackupResult> {
  const { repo, disk, fd } = opts;
  const chunkSize = repo.chunkSize;
  const choice = await chooseDiskMethod(opts.host, opts.cp, fd, disk.size, chunkSize, opts.previous, opts.full);
  const plan = await planDisk(disk, choice, chunkSize, opts.previous);
  const runs = readRuns(plan, chunkSize, disk.size, READ_RUN_BYTES);
  const readBytes = runs.reduce((a, r) => a + r.length, 0);
  opts.onPlanned?.(readBytes);
  const chunks = await readAndStore(disk, plan, runs, opts.writer, { chunkSize, signal: opts.signal, onRead: opts.onRead, batchBytes: READ_RUN_BYTES });
  return {
    choice,
    readBytes,
    manifest: {
      key: fd.key,
      fileName: opts.fileName ?? basename(fd.path),
      format: fd.format,
      virtualSize: disk.size,
      ...(await geometryOf(fd, disk)),
      chunkSize,
      chunks,
    },
  };
}
