// hvbackup repo init | stats | unlock — thin commands over core/api/repository.ts.

import type { Command } from 'commander';
import { getRepositoryStats, initRepository, unlockRepository } from '../../api/repository.ts';
import type { RepositoryStats } from '../../api/types.ts';
import { isHvError } from '../../errors.ts';
import type { OperationContext } from '../../progress.ts';
import { readInitPassword, readRepositoryPassword, withPasswordOption } from '../password.ts';
import { print, printJson } from '../output.ts';

function contextOf(cmd: Command): OperationContext {
  const opts = cmd.optsWithGlobals() as { signal?: AbortSignal };
  return { signal: opts.signal, onLog: (e) => { if (e.level !== 'verbose') process.stderr.write(`${e.level === 'warning' ? 'warning: ' : ''}${e.message}\n`); } };
}

function mib(n: number): string {
  return `${(n / 1048576).toFixed(1)} MiB`;
}

function printStats(s: RepositoryStats): void {
  const rows: [string, string][] = [
    ['Repository', s.path], ['Id', s.id], ['Format version', String(s.formatVersion)],
    ['Encryption', s.encrypted ? 'AES-256-GCM (encrypted)' : 'none'], ['Chunk size', s.chunkSize < 1048576 ? `${s.chunkSize / 1024} KiB` : mib(s.chunkSize)], ['Compression', s.compression],
    ['Restore points', String(s.restorePoints)], ['VMs', String(s.vms)], ['Chunks', String(s.chunkCount)],
    ['Logical bytes', mib(s.logicalBytes)], ['Unique bytes', mib(s.uniqueBytes)], ['Stored bytes', mib(s.storedBytes)],
    ['Dedupe ratio', `${s.dedupeRatio.toFixed(2)}x`], ['Compression ratio', `${s.compressionRatio.toFixed(2)}x`],
  ];
  if (s.vmsToRescan.length > 0) rows.push(['Scan next (repair)', s.vmsToRescan.join(', ')]);
  for (const [k, v] of rows) process.stdout.write(`${k.padEnd(18)} ${v}\n`);
}

export function register(program: Command): void {
  const repo = program.command('repo').description('create and inspect repositories');

  repo.command('init <repo>')
    .description('create a repository in an empty or new folder')
    .option('--encrypt', 'encrypt with a password (from --new-password-file, env HVBACKUP_NEW_PASSWORD or HVBACKUP_PASSWORD, or a prompt)')
    .option('--new-password-file <file>', 'read the new password from this file')
    .option('--chunk-size <bytes>', 'chunk size in bytes (power of two, 65536 to 67108864; default 262144)', (v) => Number(v))
    .option('--json', 'print the result as JSON')
    .action(async (path: string, opts: { encrypt?: boolean; newPasswordFile?: string; chunkSize?: number; json?: boolean }, cmd: Command) => {
      const password = opts.encrypt ? await readInitPassword(opts) : undefined;
      const info = await initRepository(contextOf(cmd), { path, encrypt: opts.encrypt, password, chunkSize: opts.chunkSize });
      print(info, opts.json, () => `created ${info.encrypted ? 'encrypted ' : ''}repository ${info.id.slice(0, 8)} at ${info.path}\n`);
    });

  withPasswordOption(repo.command('stats <repo>')
    .description('sizes, dedupe and compression of a repository')
    .option('--json', 'print the result as JSON'))
    .action(async (path: string, opts: { json?: boolean; passwordFile?: string }, cmd: Command) => {
      const ctx = contextOf(cmd);
      let stats: RepositoryStats;
      try {
        stats = await getRepositoryStats(ctx, { path, password: opts.passwordFile ? await readRepositoryPassword(opts) : undefined });
      } catch (err) {
        // Ask for a password only once the repository turns out to be encrypted.
        if (!isHvError(err, 'ERR_AUTH') || opts.passwordFile) throw err;
        stats = await getRepositoryStats(ctx, { path, password: await readRepositoryPassword(opts) });
      }
      if (opts.json) printJson(stats);
      else printStats(stats);
    });

  repo.command('unlock <repo>')
    .description('remove stale locks left by killed processes (--force: every lock)')
    .option('--force', 'remove every lock, also live ones (only when nothing else uses the repository)')
    .action(async (path: string, opts: { force?: boolean }, cmd: Command) => {
      const r = await unlockRepository(contextOf(cmd), { path, force: opts.force });
      process.stdout.write(`removed ${r.removed.length} lock${r.removed.length === 1 ? '' : 's'}\n`);
    });
}
