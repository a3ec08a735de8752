// hvbackup archive export | catalog | restore, and hvbackup watch — thin commands over
// core/api/archive.ts.

import { createInterface } from 'node:readline/promises';
import type { Command } from 'commander';
import { exportArchive, getArchiveCatalog, importArchive, restoreFromArchive, watchArchive, type ArchiveTargetParams, type CatalogSummary } from '../../api/archive.ts';
import { isHvError } from '../../errors.ts';
import type { OperationContext } from '../../progress.ts';
import { readRepositoryPassword, withPasswordOption } from '../password.ts';
import { print } from '../output.ts';

export function contextOf(cmd: Command): OperationContext {
  const opts = cmd.optsWithGlobals() as { signal?: AbortSignal; verbose?: boolean };
  return { signal: opts.signal, onLog: (e) => { if (e.level !== 'verbose' || opts.verbose) process.stderr.write(`${e.level === 'warning' ? 'warning: ' : ''}${e.message}\n`); } };
}

/** Runs `fn` without a password first unless one is configured; asks only when the repository or media turn out to be encrypted. */
export async function withPassword<T>(opts: { passwordFile?: string }, fn: (password: string | undefined) => Promise<T>): Promise<T> {
  if (opts.passwordFile || process.env.HVBACKUP_PASSWORD) return fn(await readRepositoryPassword(opts));
  try {
    return await fn(undefined);
  } catch (err) {
    if (!isHvError(err, 'ERR_AUTH')) throw err;
    return fn(await readRepositoryPassword(opts));
  }
}

function withTargetOptions(cmd: Command): Command {
  return cmd
    .option('--media-dir <dir>', 'write media files <pool>-<seq>.tar into this folder')
    .option('--device <path>', 'write to a tape device as one sequential stream (/dev/nst0, \\\\.\\Tape0)')
    .option('--capacity <size>', 'bytes per medium: 4M, 100G, 12T, LTO-8 (new pools default to LTO-8)')
    .option('--record-size <size>', 'tape record size (default 256K)')
    .option('--retention-days <n>', 'days a written medium is protected before reuse (default 28)', (v) => Number(v));
}

function catalogText(c: CatalogSummary): string {
  const lines = [`pool ${c.pool}: ${c.media.length} media, ${c.points.length} restore points, ${c.chunks} chunks${c.encrypted ? ' (encrypted)' : ''}`];
  for (const m of c.media) lines.push(`  ${m.id}  set ${m.set} vol ${m.volume}  ${m.bytes} bytes  ${m.chunks} chunk entries  written ${m.writtenAt}  expires ${m.expiresAt}`);
  for (const p of c.points) lines.push(`  point ${p.id.slice(0, 12)}  ${p.vm}  ${p.createdAt}  manifest on ${p.manifestOn.join(', ')}`);
  return lines.join('\n') + '\n';
}

async function askForMedium(mediumId: string): Promise<void> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    await rl.question(`insert medium ${mediumId} and press Enter `);
  } finally {
    rl.close();
  }
}

export function register(program: Command): void {
  const archive = program.command('archive').description('tape-style archive: export restore points to media pools, restore from media');

  withPasswordOption(withTargetOptions(archive.command('export')
    .description('export restore points (only chunks the pool lacks, unless --full) to media')
    .requiredOption('--repo <repo>', 'repository folder')
    .requiredOption('--pool <name>', 'media pool name')
    .option('--vm <name>', 'only this VM')
    .option('--point <id>', "restore point id (or prefix) or 'latest' (default: every point not yet in the pool)")
    .option('--full', 'write a full set: every chunk the points need, even those already in the pool')
    .option('--json', 'print the result as JSON')))
    .action(async (opts: ArchiveTargetParams & { repo: string; pool: string; vm?: string; point?: string; full?: boolean; json?: boolean; passwordFile?: string }, cmd: Command) => {
      const ctx = contextOf(cmd);
      const r = await withPassword(opts, (password) => exportArchive(ctx, { ...opts, repository: opts.repo, vmName: opts.vm, password }, askForMedium));
      print(r, opts.json, () => `exported ${r.points.length} restore point(s) to pool ${r.pool}: ${r.chunksWritten} chunks written, ${r.chunksAlreadyInPool} already in the pool, ${r.media.length} media (${r.media.map((m) => m.file ?? m.id).join(', ')}), ${r.bytesWritten} bytes\n`);
    });

  withPasswordOption(archive.command('catalog')
    .description('show a pool catalog (--repo --pool), or rebuild it by scanning media (--media; with --repo also store it)')
    .option('--media <files...>', 'media files, in order')
    .option('--repo <repo>', 'repository folder')
    .option('--pool <name>', 'media pool name')
    .option('--json', 'print the result as JSON'))
    .action(async (opts: { media?: string[]; repo?: string; pool?: string; json?: boolean; passwordFile?: string }, cmd: Command) => {
      const ctx = contextOf(cmd);
      const c = opts.media
        ? await withPassword(opts, (password) => importArchive(ctx, { media: opts.media!, repository: opts.repo, password }))
        : await withPassword(opts, (password) => getArchiveCatalog(ctx, { repository: opts.repo ?? '', pool: opts.pool ?? '', password }));
      print(c, opts.json, () => catalogText(c));
    });

  withPasswordOption(archive.command('restore')
    .description('restore a VM from archive media alone (no repository needed)')
    .requiredOption('--media <files...>', 'media files of the pool, in order')
    .requiredOption('--vm <name>', 'VM name')
    .option('--point <id>', 'restore point id or prefix (default: the newest on the media)')
    .requiredOption('--to <dir>', 'destination folder')
    .option('--json', 'print the result as JSON'))
    .action(async (opts: { media: string[]; vm: string; point?: string; to: string; json?: boolean; passwordFile?: string }, cmd: Command) => {
      const ctx = contextOf(cmd);
      const r = await withPassword(opts, (password) => restoreFromArchive(ctx, { media: opts.media, vmName: opts.vm, point: opts.point, to: opts.to, password }));
      print(r, opts.json, () => `restored ${r.vmName} ${r.createdAt} (${r.pointId.slice(0, 12)}) from ${r.mediaNeeded.join(', ')}:\n${r.disks.map((d) => `  ${d.path}  ${d.bytes} bytes`).join('\n')}\n`);
    });

  withPasswordOption(withTargetOptions(program.command('watch')
    .description('linked archive: export every new restore point to a media pool as it lands (until Ctrl+C)')
    .requiredOption('--repo <repo>', 'repository folder')
    .requiredOption('--pool <name>', 'media pool name')
    .option('--vm <name>', 'only this VM')
    .option('--json', 'print the summary as JSON when stopped')))
    .action(async (opts: ArchiveTargetParams & { repo: string; pool: string; vm?: string; json?: boolean; passwordFile?: string }, cmd: Command) => {
      const ctx = contextOf(cmd);
      const r = await withPassword(opts, (password) => watchArchive(ctx, { ...opts, repository: opts.repo, vmName: opts.vm, password }));
      print(r, opts.json, () => `stopped: exported ${r.exported.length} restore point(s), ${r.failed.length} failed\n`);
      if (r.failed.length > 0) process.exitCode = 1;
    });
}
