// A throwaway sandbox for admins' own Pester-tested runbooks (New-HVSandbox): small
// local-host VMs with sample data and an empty repository, all under one folder.

import { mkdir, readdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { HvError, throwIfAborted } from '../errors.ts';
import type { OperationContext } from '../progress.ts';
import { progress } from '../progress.ts';
import { createSampleVm } from '../hosts/local/index.ts';
import { initRepository } from './repository.ts';

export interface SandboxResult {
  path: string;
  /** The repository folder (<path>/repository). */
  repository: string;
  /** The folder holding the VMs (<path>/vms), for Get-HVVM -Path / listVMs. */
  vmFolder: string;
  vmPaths: string[];
}

const MiB = 1024 * 1024;

export async function createSandbox(ctx: OperationContext, params: { path: string; vmCount?: number; sizeBytes?: number }): Promise<SandboxResult> {
  if (typeof params.path !== 'string' || params.path === '') throw new HvError('ERR_INVALID_ARGUMENT', 'sandbox path is required');
  const path = resolve(params.path);
  const vmCount = params.vmCount ?? 2;
  const sizeBytes = params.sizeBytes ?? 64 * MiB;
  if (!Number.isInteger(vmCount) || vmCount < 1 || vmCount > 32) throw new HvError('ERR_INVALID_ARGUMENT', `sandbox vmCount must be 1..32, got ${vmCount}`, { target: path });
  const existing = await readdir(path).catch(() => [] as string[]);
  if (existing.length > 0) throw new HvError('ERR_ALREADY_EXISTS', `${path} is not empty; a sandbox needs a new or empty folder`, { target: path });
  const vmFolder = join(path, 'vms');
  await mkdir(vmFolder, { recursive: true });
  const vmPaths: string[] = [];
  for (let i = 1; i <= vmCount; i++) {
    throwIfAborted(ctx.signal);
    const name = `vm${String(i).padStart(2, '0')}`;
    progress(ctx, { activity: 'sandbox', target: path, status: `creating VM ${name}`, done: i - 1, total: vmCount + 1 });
    const vm = await createSampleVm({ signal: ctx.signal, onLog: ctx.onLog }, { dir: join(vmFolder, name), name, sizeBytes, seed: i });
    vmPaths.push(vm.dir);
  }
  const repository = join(path, 'repository');
  await initRepository({ signal: ctx.signal, onLog: ctx.onLog }, { path: repository });
  progress(ctx, { activity: 'sandbox', target: path, done: vmCount + 1, total: vmCount + 1, completed: true });
  return { path, repository, vmFolder, vmPaths };
}
