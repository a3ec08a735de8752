// hvbackup vm list | sample | repair | guest-write — local VM folders.

import type { Command } from 'commander';
import { createSampleVM, guestWriteVM, listVMs, repairVM } from '../../api/vm.ts';
import { HvError } from '../../errors.ts';
import { cliContext, mib, table } from './backup.ts';
import { print, printJson } from '../output.ts';

function number(name: string, check: (n: number) => boolean): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!Number.isFinite(n) || !check(n)) throw new HvError('ERR_INVALID_ARGUMENT', `${name}: invalid value ${v}`);
    return n;
  };
}

export function register(program: Command): void {
  const vm = program.command('vm').description('local VM folders (laid out like Hyper-V VMs)');

  vm.command('list <path>')
    .description('VM folders at or below a folder')
    .option('--json', 'print JSON')
    .action(async (path: string, opts: { json?: boolean }, cmd: Command) => {
      const vms = await listVMs(cliContext(cmd, { quiet: true }), { path });
      if (opts.json) printJson(vms);
      else table(['NAME', 'ID', 'STATE', 'LOCATION'], vms.map((v) => [v.name, v.id, v.state ?? '', v.location]));
    });

  vm.command('sample <dir>')
    .description('create a sample VM with realistic contents (zeros, text, random, repeated blocks)')
    .option('--size <GiB>', 'virtual disk size in GiB (fractions allowed; multiple of 1 MiB)', number('--size', (n) => n > 0), 0.25)
    .option('--name <name>', 'VM name (default: the folder name)')
    .option('--seed <n>', 'content seed', number('--seed', Number.isInteger), 1)
    .option('--vss', 'declare a guest VSS hook (backups become application-consistent)')
    .option('--json', 'print JSON')
    .action(async (dir: string, opts: { size: number; name?: string; seed: number; vss?: boolean; json?: boolean }, cmd: Command) => {
      const ctx = cliContext(cmd, { quiet: opts.json });
      const sizeBytes = Math.round(opts.size * 1024) * 1048576;
      const r = await createSampleVM(ctx, { dir, sizeBytes, name: opts.name, seed: opts.seed, guestVss: opts.vss });
      ctx.endProgress();
      print(r, opts.json, () => `created VM ${r.name} (${mib(r.sizeBytes)}) in ${r.dir}\n`);
    });

  vm.command('repair <vmDir>')
    .description('merge a backup checkpoint a killed backup left behind (keeps every guest write)')
    .option('--json', 'print JSON')
    .action(async (dir: string, opts: { json?: boolean }, cmd: Command) => {
      const r = await repairVM(cliContext(cmd, { quiet: opts.json }), { dir });
      if (opts.json) printJson(r);
      else process.stdout.write(r.mergedCheckpoints > 0 ? `VM ${r.vm}: merged ${r.mergedCheckpoints} leftover backup checkpoint(s)\n` : `VM ${r.vm}: no leftover backup checkpoint\n`);
    });

  vm.command('guest-write <vmDir>')
    .description('emulate the running guest: random writes into the VM\'s current disk (for tests and demos)')
    .option('--count <n>', 'number of writes', number('--count', (n) => Number.isInteger(n) && n > 0), 16)
    .option('--bytes <n>', 'bytes per write (multiple of 512)', number('--bytes', (n) => Number.isInteger(n) && n > 0 && n % 512 === 0), 65536)
    .option('--seed <n>', 'seed of offsets and data', number('--seed', Number.isInteger))
    .option('--disk <key>', 'disk key (default: the first disk)')
    .option('--json', 'print the writes as JSON')
    .action(async (dir: string, opts: { count: number; bytes: number; seed?: number; disk?: string; json?: boolean }, cmd: Command) => {
      const w = await guestWriteVM(cliContext(cmd, { quiet: true }), { dir, count: opts.count, size: opts.bytes, seed: opts.seed, disk: opts.disk });
      if (opts.json) process.stdout.write(`${JSON.stringify(w)}\n`);
      else process.stdout.write(`wrote ${w.length} x ${opts.bytes} bytes into ${w[0]?.file ?? '?'}\n`);
    });
}
