// hvbackup retention apply, hvbackup gc — thin commands over core/api/retention.ts.

import type { Command } from 'commander';
import { applyRetention, collectGarbage, type GcResult } from '../../api/retention.ts';
import { withPasswordOption } from '../password.ts';
import { contextOf, withPassword } from './archive.ts';
import { print, printJson } from '../output.ts';

function count(v: string): number {
  return Number(v);
}

function gcText(g: GcResult): string {
  return `${g.status === 'planned' ? 'would free' : 'freed'} ${g.chunksRemoved} of ${g.chunksTotal} chunks, ${g.bytesFreed} bytes\n`;
}

export function register(program: Command): void {
  const retention = program.command('retention').description('retention policies: which restore points to keep');

  withPasswordOption(retention.command('apply')
    .description('remove restore points no rule keeps (keep-last and daily/weekly/monthly/yearly, per VM, like restic forget)')
    .requiredOption('--repo <repo>', 'repository folder')
    .option('--vm <name>', 'only this VM')
    .option('--keep-last <n>', 'keep the N newest points', count)
    .option('--daily <n>', 'keep the newest point of each of the last N days that have points', count)
    .option('--weekly <n>', 'keep the newest point of each of the last N ISO weeks that have points', count)
    .option('--monthly <n>', 'keep the newest point of each of the last N months that have points', count)
    .option('--yearly <n>', 'keep the newest point of each of the last N years that have points', count)
    .option('--dry-run', 'show what would be removed; change nothing')
    .option('--prune', 'also delete chunks no remaining point references (gc)')
    .option('--json', 'print the result as JSON'))
    .action(async (opts: { repo: string; vm?: string; keepLast?: number; daily?: number; weekly?: number; monthly?: number; yearly?: number; dryRun?: boolean; prune?: boolean; json?: boolean; passwordFile?: string }, cmd: Command) => {
      const ctx = contextOf(cmd);
      const r = await withPassword(opts, (password) => applyRetention(ctx, {
        repository: opts.repo, password, vmName: opts.vm, keepLast: opts.keepLast, daily: opts.daily, weekly: opts.weekly, monthly: opts.monthly, yearly: opts.yearly, whatIf: opts.dryRun, prune: opts.prune,
      }));
      if (opts.json) { printJson(r); return; }
      for (const p of r.points) process.stdout.write(`${p.action.padEnd(6)} ${p.vm.padEnd(16)} ${p.createdAt}  ${p.id.slice(0, 12)}  ${p.reasons.join(', ')}\n`);
      process.stdout.write(`${r.status === 'planned' ? 'would remove' : 'removed'} ${r.removed}, kept ${r.kept}\n`);
      if (r.gc) process.stdout.write(gcText(r.gc));
    });

  withPasswordOption(program.command('gc')
    .description('delete chunks no restore point references (crash-safe, exclusive lock)')
    .requiredOption('--repo <repo>', 'repository folder')
    .option('--dry-run', 'count only; delete nothing')
    .option('--json', 'print the result as JSON'))
    .action(async (opts: { repo: string; dryRun?: boolean; json?: boolean; passwordFile?: string }, cmd: Command) => {
      const ctx = contextOf(cmd);
      const r = await withPassword(opts, (password) => collectGarbage(ctx, { repository: opts.repo, password, whatIf: opts.dryRun }));
      print(r, opts.json, () => gcText(r));
    });
}
