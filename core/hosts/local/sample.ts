// `hvbackup vm sample`: a VM folder with one dynamic VHDX of realistic contents, and a
// change-tracking record started on it (as Hyper-V enables RCT on a new VM).

import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { HvError, throwIfAborted } from '../../errors.ts';
import type { OperationContext } from '../../progress.ts';
import { progress } from '../../progress.ts';
import { createVhdx } from '../../vhdx/index.ts';
import { startReference } from '../../tracking/index.ts';
import { VM_CONFIG_SCHEMA, encodeVmConfig, newVmId } from './config.ts';
import type { VmConfig } from './config.ts';
import { MiB, blockContent, sampleLayout } from './content.ts';
import { VM_CONFIG_DIR, VM_DISK_DIR, VM_SNAPSHOT_DIR, writeFileAtomic } from './vm-folder.ts';

export interface SampleVmOptions {
  dir: string;
  /** Virtual size in bytes, a multiple of 1 MiB. Default 256 MiB. */
  sizeBytes?: number;
  name?: string;
  seed?: number;
  /** VHDX block size; default 2 MiB so zero runs stay unallocated even on small disks. */
  blockSize?: number;
  /** Declare a guest VSS hook (backups become application-consistent). */
  guestVss?: boolean;
}

export interface SampleVmResult {
  dir: string;
  name: string;
  id: string;
  configFile: string;
  disk: string;
  sizeBytes: number;
}

export async function createSampleVm(ctx: OperationContext, opts: SampleVmOptions): Promise<SampleVmResult> {
  const dir = resolve(opts.dir);
  const size = opts.sizeBytes ?? 256 * MiB;
  if (!Number.isSafeInteger(size) || size <= 0 || size % MiB !== 0) {
    throw new HvError('ERR_INVALID_ARGUMENT', `sample VM size must be a positive multiple of 1 MiB, got ${size}`, { target: dir });
  }
  const name = opts.name ?? basename(dir);
  const existing = await readdir(dir).catch(() => [] as string[]);
  if (existing.length > 0) throw new HvError('ERR_ALREADY_EXISTS', `${dir} is not empty; a sample VM needs a new or empty folder`, { target: dir });
  const created = !(await stat(dir).then(() => true, () => false));
  try {
    for (const sub of [VM_CONFIG_DIR, VM_DISK_DIR, VM_SNAPSHOT_DIR]) await mkdir(join(dir, sub), { recursive: true });
    const diskRel = `${VM_DISK_DIR}/${name}.vhdx`;
    const diskPath = join(dir, diskRel);
    await writeSampleDisk(ctx, diskPath, size, opts.seed ?? 1, opts.blockSize ?? 2 * MiB);
    await startReference(diskPath, size);
    const config: VmConfig = {
      schema: VM_CONFIG_SCHEMA, id: newVmId(), name, generation: 2,
      disks: [{ key: 'SCSI:0:0', path: diskRel }],
      ...(opts.guestVss ? { guestVss: { enabled: true, note: 'sample guest VSS hook' } } : {}),
    };
    const configFile = join(dir, VM_CONFIG_DIR, `${name}.json`);
    await writeFileAtomic(configFile, encodeVmConfig(config), { noClobber: true });
    return { dir, name, id: config.id, configFile, disk: diskPath, sizeBytes: size };
  } catch (err) {
    // A half-made VM (a full volume, Ctrl+C) is no VM: take back what this call made, so the
    // folder can be used again. Only inside `dir`, which was new or empty.
    if (created) await rm(dir, { recursive: true, force: true }).catch(() => undefined);
    else for (const sub of [VM_CONFIG_DIR, VM_DISK_DIR, VM_SNAPSHOT_DIR]) await rm(join(dir, sub), { recursive: true, force: true }).catch(() => undefined);
    throw err;
  }
}

async function writeSampleDisk(ctx: OperationContext, path: string, size: number, seed: number, blockSize: number): Promise<void> {
  const layout = sampleLayout(seed, size / MiB);
  const disk = await createVhdx(path, { size, blockSize });
  try {
    for (let i = 0; i < layout.length; i++) {
      throwIfAborted(ctx.signal);
      const data = blockContent(seed, layout[i]!, i);
      if (data) await disk.write(data, i * MiB);
      if (i % 64 === 63) progress(ctx, { activity: 'sample', target: path, done: (i + 1) * MiB, total: size });
    }
  } finally {
    await disk.close();
  }
  progress(ctx, { activity: 'sample', target: path, done: size, total: size, completed: true });
}
