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
import { planSlices, readRuns, sliceCount } from './plan.ts';
import { HvError } from '../errors.ts';
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

/**
 * Most slices one disk of a restore point may have. The manifest lists every slice's chunk id
 * in its JSON (67 characters each), and both the backup and a restore hold the list in
 * memory, so a disk beyond this would need a manifest near V8's ~512 MiB string limit and
 * far more memory than the rest of the engine. 4,194,304 slices = 1 TiB at 256 KiB chunks,
 * 4 TiB at 1 MiB. Larger disks need a repository with larger chunks until chunk lists are
 * stored as separate, streamed objects.
 */
export const MAX_SLICES_PER_DISK = 4 * 1024 * 1024;

export function checkSliceCount(path: string, virtualSize: number, chunkSize: number): void {
  const slices = sliceCount(virtualSize, chunkSize);
  if (slices <= MAX_SLICES_PER_DISK) return;
  const need = 2 ** Math.ceil(Math.log2(virtualSize / MAX_SLICES_PER_DISK));
  throw new HvError('ERR_UNSUPPORTED', `${path}: a ${(virtualSize / 2 ** 40).toFixed(2)} TiB disk is ${slices} slices of this repository's ${chunkSize / 1024} KiB chunks, more than the ${MAX_SLICES_PER_DISK} one restore point can list per disk; back it up to a repository made with "hvbackup repo init --chunk-size ${need}" or larger`, { target: path, data: { slices, max: MAX_SLICES_PER_DISK, chunkSize } });
}

export async function backupDisk(opts: {
  repo: Repository; host: Host; cp: BackupCheckpoint; fd: FrozenDisk; disk: Disk; fileName?: string;
  previous: DiskManifest | undefined; full: boolean; writer: ChunkWriter; signal?: AbortSignal;
  onPlanned?: (bytes: number) => void; onRead?: (bytes: number) => void;
}): Promise<DiskBackupResult> {
  const { repo, disk, fd } = opts;
  const chunkSize = repo.chunkSize;
  checkSliceCount(fd.path, disk.size, chunkSize);
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
