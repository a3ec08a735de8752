// Drive the Hyper-V driver by hand on a Windows Server host (docs/windows-test-plan.md).
// Not a mocha test: it changes real VMs. Each command prints one JSON document.
//
//   node test/hosts-hyperv/windows-smoke.ts list
//   node test/hosts-hyperv/windows-smoke.ts describe <vm>
//   node test/hosts-hyperv/windows-smoke.ts backup <vm> [auto|application|crash] [<diskKey>=<rctId> ...]
//   node test/hosts-hyperv/windows-smoke.ts leftovers <vm> [--remove]
//   node test/hosts-hyperv/windows-smoke.ts compat <vm> <configVersion>
//   node test/hosts-hyperv/windows-smoke.ts capture <vm> <folder>     (real fixtures, read-only)
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Consistency, DiskReference } from '../../core/hosts/host.ts';
import { createHyperVHost } from '../../core/hosts/hyperv/index.ts';
import * as S from '../../core/hosts/hyperv/scripts.ts';
import { NodePowerShellSession } from '../../core/hosts/hyperv/session.ts';

const [cmd, vmRef, ...rest] = process.argv.slice(2);
const session = new NodePowerShellSession({ executable: process.env.HVB_PWSH ?? 'powershell' });
const host = createHyperVHost({ session, jobId: `smoke-${Date.now()}`, onLog: (e) => process.stderr.write(`${e.level}: ${e.message}\n`) });
const print = (v: unknown) => process.stdout.write(`${JSON.stringify(v, null, 2)}\n`);

async function backup(ref: string, consistency: Consistency | 'auto', since: DiskReference[]) {
  const vm = await host.describeVM(ref);
  const cp = await host.createBackupCheckpoint(vm, { consistency });
  const out: Record<string, unknown> = { checkpoint: cp.id, consistency: cp.consistency, note: cp.consistencyNote, disks: [] as unknown[] };
  try {
    for (const d of cp.disks) {
      const disk = await d.open();
      const head = Buffer.alloc(Math.min(disk.size, 1024 * 1024));
      await disk.read(head, 0);
      await disk.close();
      const changes = await host.getChangedRanges(cp, d, since.find((s) => s.diskKey === d.key));
      (out.disks as unknown[]).push({
        key: d.key, path: d.path, size: disk.size, firstMiBSha256: createHash('sha256').update(head).digest('hex'),
        changes: changes.available ? { ranges: changes.ranges.length, bytes: changes.ranges.reduce((a, r) => a + r.length, 0) } : changes,
      });
    }
  } finally {
    out.references = await host.removeBackupCheckpoint(cp, { keepReference: true });
  }
  return out;
}

async function capture(ref: string, folder: string) {
  mkdirSync(folder, { recursive: true });
  const vm = await host.describeVM(ref);
  const steps: [string, string, Record<string, unknown>][] = [
    ['host-info', S.HOST_INFO, {}], ['list-vms', S.LIST_VMS, {}], ['describe-vm', S.DESCRIBE_VM, { ref }],
    ['list-checkpoints', S.LIST_CHECKPOINTS, { vmId: vm.id }], ['reference-points', S.GET_REFERENCE_POINTS, { vmId: vm.id, instanceId: null, jobId: null }],
  ];
  for (const [name, script, params] of steps) writeFileSync(join(folder, `${name}.json`), `${JSON.stringify(await session.invoke(script, params))}\n`);
  return { written: steps.map(([n]) => join(folder, `${n}.json`)) };
}

try {
  if (cmd === 'list') print(await host.listVMs());
  else if (cmd === 'describe' && vmRef) print(await host.describeVM(vmRef));
  else if (cmd === 'backup' && vmRef) {
    const consistency = (rest[0] && !rest[0].includes('=') ? rest.shift() : 'auto') as Consistency | 'auto';
    const since = rest.map((a) => { const i = a.indexOf('='); return { diskKey: a.slice(0, i), referenceId: a.slice(i + 1) }; });
    print(await backup(vmRef, consistency, since));
  } else if (cmd === 'leftovers' && vmRef) {
    const vm = await host.describeVM(vmRef);
    print({ found: await host.findLeftoverCheckpoints(vm), removed: rest[0] === '--remove' ? await host.removeLeftoverCheckpoints(vm) : 0 });
  } else if (cmd === 'compat' && vmRef && rest[0]) {
    await host.checkRestoreCompatibility(vmRef, rest[0]);
    print({ compatible: true, host: await host.hostInfo() });
  } else if (cmd === 'capture' && vmRef && rest[0]) print(await capture(vmRef, rest[0]));
  else throw new Error('usage: windows-smoke.ts list | describe <vm> | backup <vm> [consistency] [key=rctId...] | leftovers <vm> [--remove] | compat <vm> <version> | capture <vm> <folder>');
} catch (err) {
  const e = err as { code?: string; message: string };
  process.stderr.write(`${e.code ?? 'ERROR'}: ${e.message}\n`);
  process.exitCode = 1;
} finally {
  await session.dispose();
}
