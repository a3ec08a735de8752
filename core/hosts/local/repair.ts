// `hvbackup vm repair`: merge a backup checkpoint a killed run left behind (keeping every
// guest write it holds) and report differencing disks that no config refers to.

import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { OperationContext } from '../../progress.ts';
import { log } from '../../progress.ts';
import { LocalHost } from './host.ts';
import { loadVm, VM_DISK_DIR } from './vm-folder.ts';

export interface RepairResult {
  vm: string;
  mergedCheckpoints: number;
  /** .avhdx files in the disk folder that the config does not use (left alone; reported). */
  strayDifferencingDisks: string[];
}

export async function repairVm(ctx: OperationContext, dir: string): Promise<RepairResult> {
  const host = new LocalHost({ onLog: (e) => ctx.onLog?.(e) });
  const vm = await host.describeVM(dir);
  const merged = await host.removeLeftoverCheckpoints(vm);
  const after = await loadVm(dir);
  const used = new Set(after.config.disks.map((d) => join(after.dir, d.path)));
  const names = await readdir(join(after.dir, VM_DISK_DIR)).catch(() => [] as string[]);
  const stray = names.filter((n) => n.toLowerCase().endsWith('.avhdx')).map((n) => join(after.dir, VM_DISK_DIR, n)).filter((p) => !used.has(p));
  for (const s of stray) log(ctx, 'warning', `differencing disk ${s} is not used by VM ${after.config.name}; left in place`, after.dir);
  return { vm: after.config.name, mergedCheckpoints: merged, strayDifferencingDisks: stray };
}
