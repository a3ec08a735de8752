// hvbackup backup | points | restore | dump | verify — thin commands over core/api. Each action
// imports its API module when it runs, so a backup does not load the restore engine.

import { availableParallelism } from 'node:os';
import { Option } from 'commander';
import type { Command } from 'commander';
import type { BackupResult, RestorePointInfo, VerifyReport } from '../../api/types.ts';
import { HvError, isHvError } from '../../errors.ts';
import type { OperationContext, ProgressEvent } from '../../progress.ts';
import { readRepositoryPassword, withPasswordOption } from '../password.ts';
import { printJson } from '../output.ts';

export function mib(n: number): string {
  return `${(n / 1048576).toFixed(1)} MiB`;
}

/** Progress on a TTY as one rewritten stderr line; with json, one JSON object per event on stdout. */
export function cliContext(cmd: Command, opts: { json?: boolean; quiet?: boolean } = {}): OperationContext & { endProgress(): void } {
  const { signal } = cmd.optsWithGlobals() as { signal?: AbortSignal };
  const tty = process.stderr.isTTY === true && !opts.json && !opts.quiet;
  let shown = false;
  let last = 0;
  const onProgress = (e: ProgressEvent) => {
    if (opts.json) {
      process.stdout.write(`${JSON.stringify({ event: 'progress', ...e })}\n`);
      return;
    }
    if (!tty || (!e.completed && Date.now() - last < 100)) return;
    last = Date.now();
    const pct = e.total ? ` ${Math.floor(((e.done ?? 0) * 100) / e.total)}% ${mib(e.done ?? 0)}/${mib(e.total)}` : '';
    process.stderr.write(`\r\x1b[K${e.activity} ${e.target ?? ''}${pct} ${e.status ?? ''}`);
    shown = true;
  };
  const endProgress = () => {
    if (shown) process.stderr.write('\r\x1b[K');
    shown = false;
  };
  return {
    signal,
    onProgress,
    onLog: (e) => {
      if (opts.json) process.stdout.write(`${JSON.stringify({ event: 'log', ...e })}\n`);
      else if (e.level !== 'verbose' && !opts.quiet) {
        endProgress();
        process.stderr.write(`${e.level === 'warning' ? 'warning: ' : ''}${e.message}\n`);
      }
    },
    endProgress,
  };
}

/** Run with the repository password only when needed: env/file first, a prompt only if the repository is encrypted. */
export async function withPassword<T>(opts: { passwordFile?: string }, fn: (password: string | undefined) => Promise<T>): Promise<T> {
  const given = opts.passwordFile !== undefined || process.env.HVBACKUP_PASSWORD ? await readRepositoryPassword(opts) : undefined;
  try {
    return await fn(given);
  } catch (err) {
    if (!isHvError(err, 'ERR_AUTH') || given !== undefined) throw err;
    return fn(await readRepositoryPassword(opts));
  }
}

function positiveInt(name: string): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new HvError('ERR_INVALID_ARGUMENT', `${name} must be a positive integer, got ${v}`);
    return n;
  };
}

export function printBackupResults(results: BackupResult[]): void {
  const rows = results.map((r) => [r.vmName, r.status, r.method ?? '', r.consistency ?? '', r.pointId?.slice(0, 12) ?? '', mib(r.readBytes), mib(r.storedBytes),
    r.error ? `${r.error.code}: ${r.error.message}` : r.methodReason ?? '']);
  table(['VM', 'STATUS', 'METHOD', 'CONSISTENCY', 'POINT', 'READ', 'STORED', 'NOTE'], rows);
}

export function table(head: string[], rows: string[][]): void {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i]!))).join('  ').trimEnd();
  process.stdout.write(`${line(head)}\n${rows.map((r) => `${line(r)}\n`).join('')}`);
}

function printPoints(points: RestorePointInfo[]): void {
  table(['ID', 'VM', 'CREATED', 'METHOD', 'CONSISTENCY', 'SIZE', 'STORED'],
    points.map((p) => [p.id.slice(0, 12), p.vmName, p.createdAt, p.method, p.consistency, mib(p.totalBytes), mib(p.storedBytes)]));
}

/** A byte offset or count, or seconds: decimal digits only (no units, no sign). */
function wholeNumber(name: string, unit: string): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!/^[0-9]+$/.test(v) || !Number.isSafeInteger(n)) throw new HvError('ERR_INVALID_ARGUMENT', `${name} must be a whole number of ${unit}, got ${v}`);
    return n;
  };
}

/** `n/m` → {part: n, of: m}, 1 ≤ n ≤ m. */
function readSubset(v: string): { part: number; of: number } {
  const m = /^(\d+)\/(\d+)$/.exec(v);
  const part = Number(m?.[1]), of = Number(m?.[2]);
  if (!m || part < 1 || of < 1 || part > of) throw new HvError('ERR_INVALID_ARGUMENT', `--read-subset takes n/m with 1 ≤ n ≤ m, e.g. 3/7, not "${v}"`);
  return { part, of };
}

function printVerify(r: VerifyReport, quick: boolean): void {
  process.stdout.write(`checked ${r.pointsChecked} restore point(s), ${r.chunksChecked} chunk(s), ${quick ? 'no data read (quick)' : mib(r.bytesChecked)}\n`);
  // A damaged index object breaks no point by itself: the chunks it located are listed as missing, each with its points.
  for (const p of r.problems) process.stdout.write(`problem: ${p.chunk ? `chunk ${p.chunk}` : p.object}: ${p.problem}${p.points.length > 0 ? ` (breaks ${p.points.map((x) => x.slice(0, 12)).join(', ')})` : ''}\n`);
  process.stdout.write(r.ok ? 'repository is OK\n' : `${r.problems.length} problem(s) found\n`);
  const x = r.repair;
  if (!x) return;
  if (x.indexObjectsRemoved > 0) process.stdout.write(`repair: removed ${x.indexObjectsRemoved} index object(s) that did not load; ${x.packsRescued} pack(s) listed again from their own indexes\n`);
  if (x.chunksRemoved > 0) {
    process.stdout.write(`repair: took ${x.chunksRemoved} missing or corrupt chunk(s) out of the index (${x.packsRewritten} pack(s) rewritten without them, ${x.packsRemoved} left out)\n`);
    process.stdout.write(`repair: the next backup of the VMs of ${x.pointsToRescan.length} restore point(s) reads their disks whole and stores again what they still hold; until then those points stay broken (${x.pointsToRescan.map((p) => p.slice(0, 12)).join(', ')})\n`);
  } else if (x.indexObjectsRemoved === 0) process.stdout.write('repair: nothing to repair\n');
}

export function register(program: Command): void {
  withPasswordOption(program.command('backup <sources...>')
    .description('back up VM folders, VM names (under --root) or bare .vhdx/.img disk files')
    .requiredOption('--repo <repo>', 'repository folder')
    .option('--full', 'read every allocated block (no incremental)')
    .option('--parallel <n>', 'VMs backed up at once', positiveInt('--parallel'), 1)
    .option('--root <dir>', 'folder where VM names are looked up (default: current folder)')
    .addOption(new Option('--host <kind>', 'where the VMs live: local (VM folders, disk files) or hyperv (VM names or ids on this Hyper-V host)').choices(['local', 'hyperv']).default('local'))
    .option('--allow-user-checkpoints', 'Hyper-V: back up VMs that have user checkpoints, by scanning (no change tracking)')
    .option('--host-step-timeout <seconds>', 'Hyper-V: seconds one PowerShell step may take before the host is taken for hung (default 300; 0: no limit)', wholeNumber('--host-step-timeout', 'seconds'))
    .option('--what-if', 'print what would be done, change nothing')
    .option('--json', 'JSON progress lines and a JSON result'))
    .action(async (sources: string[], opts: { repo: string; full?: boolean; parallel: number; root?: string; host: 'local' | 'hyperv'; allowUserCheckpoints?: boolean; hostStepTimeout?: number; whatIf?: boolean; json?: boolean; passwordFile?: string }, cmd: Command) => {
      const ctx = cliContext(cmd, opts);
      if (opts.allowUserCheckpoints && opts.host !== 'hyperv') throw new HvError('ERR_INVALID_ARGUMENT', '--allow-user-checkpoints needs --host hyperv');
      if (opts.hostStepTimeout !== undefined && opts.host !== 'hyperv') throw new HvError('ERR_INVALID_ARGUMENT', '--host-step-timeout needs --host hyperv');
      const hyperv = opts.allowUserCheckpoints || opts.hostStepTimeout !== undefined
        ? { ...(opts.allowUserCheckpoints ? { allowUserCheckpoints: true } : {}), ...(opts.hostStepTimeout !== undefined ? { stepTimeoutSeconds: opts.hostStepTimeout } : {}) }
        : undefined;
      // One chunk worker loads its modules while this process loads the engine and opens the
      // repository (a backup of any kind uses one; the engine starts the others when it needs them).
      if (!opts.whatIf) (await import('../../api/warm.ts')).warmChunkWorkers(1);
      const { backupVMs } = await import('../../api/backup.ts');
      const results = await withPassword(opts, (password) => backupVMs(ctx, { repository: opts.repo, password, sources, full: opts.full, parallel: opts.parallel, root: opts.root, host: opts.host, hyperv, whatIf: opts.whatIf }));
      ctx.endProgress();
      if (opts.json) process.stdout.write(`${JSON.stringify({ event: 'result', results })}\n`);
      else if (opts.whatIf) for (const r of results) process.stdout.write(`${r.vmName}:\n${(r.plan ?? []).map((s) => `  - ${s}\n`).join('')}`);
      else printBackupResults(results);
      if (results.some((r) => r.status === 'failed')) process.exitCode = 1;
    });

  withPasswordOption(program.command('points')
    .description('list restore points, newest first')
    .requiredOption('--repo <repo>', 'repository folder')
    .option('--vm <name>', 'only this VM')
    .option('--latest', 'only the newest point of each VM')
    .option('--json', 'print JSON'))
    .action(async (opts: { repo: string; vm?: string; latest?: boolean; json?: boolean; passwordFile?: string }, cmd: Command) => {
      const ctx = cliContext(cmd, { quiet: true });
      const { listRestorePoints } = await import('../../api/points.ts');
      const points = await withPassword(opts, (password) => listRestorePoints(ctx, { repository: opts.repo, password, vmName: opts.vm, latest: opts.latest }));
      if (opts.json) printJson(points);
      else printPoints(points);
    });

  withPasswordOption(program.command('restore <point>')
    .description('restore a restore point (id, id prefix, or "latest") into a new VM folder')
    .requiredOption('--repo <repo>', 'repository folder')
    .option('--vm <name>', 'the VM (needed with "latest" when the repository holds several VMs)')
    .requiredOption('--to <dir>', 'destination folder (files there are never overwritten)')
    .option('--name <newName>', 'restore as a new VM with this name and a new id')
    .option('--disk <key>', 'restore only this disk (key or file name) into --to')
    .addOption(new Option('--host <kind>', 'register the VM with this host (default: hyperv for a whole Hyper-V VM, else local)').choices(['local', 'hyperv']))
    .option('--allow-damaged', 'a chunk or segment that does not load is written as zeros, not an error; the ranges are listed and the exit code is 1')
    .option('--what-if', 'print what would be done, change nothing')
    .option('--json', 'print the result as JSON'))
    .action(async (point: string, opts: { repo: string; vm?: string; to: string; name?: string; disk?: string; host?: 'local' | 'hyperv'; allowDamaged?: boolean; whatIf?: boolean; json?: boolean; passwordFile?: string }, cmd: Command) => {
      const ctx = cliContext(cmd, { quiet: opts.json });
      // Restore decodes on every core: the workers load while the engine does (see backup above).
      if (!opts.whatIf) (await import('../../api/warm.ts')).warmChunkWorkers(availableParallelism());
      const { restoreVM } = await import('../../api/restore.ts');
      const r = await withPassword(opts, (password) => restoreVM(ctx, { repository: opts.repo, password, point, vmName: opts.vm, to: opts.to, newName: opts.name, disk: opts.disk, host: opts.host, whatIf: opts.whatIf, allowDamaged: opts.allowDamaged }));
      ctx.endProgress();
      if (opts.json) printJson(r);
      else if (r.plan) process.stdout.write(r.plan.map((s) => `  - ${s}\n`).join(''));
      else process.stdout.write(`restored ${r.vmName} from ${r.pointId.slice(0, 12)} to ${r.directory}${r.status === 'partial' ? ' WITH DAMAGE' : ''}\n${r.disks.map((d) => `  ${d.key}: ${d.path}\n`).join('')}`);
      if (r.status === 'partial') {
        const bytes = r.damaged!.reduce((a, x) => a + x.length, 0);
        if (!opts.json) process.stdout.write(`${r.damaged!.length} range(s), ${mib(bytes)}, written as zeros (chunks or segments that did not load):\n${r.damaged!.map((x) => `  ${x.disk} bytes ${x.offset}..${x.offset + x.length}: ${x.chunk ? `chunk ${x.chunk.slice(0, 12)}` : `segment ${x.segment}`}\n`).join('')}`);
        process.exitCode = 1;
      }
    });

  withPasswordOption(program.command('dump <point>')
    .description('write a disk of a restore point (id, id prefix, or "latest") to stdout as raw bytes, for a pipe (dd, ssh, qemu-img, sha256sum)')
    .requiredOption('--repo <repo>', 'repository folder')
    .option('--vm <name>', 'the VM (needed with "latest" when the repository holds several VMs)')
    .option('--disk <key>', 'the disk (key or file name); needed when the point has several')
    .option('--offset <bytes>', 'first byte (default 0)', wholeNumber('--offset', 'bytes'))
    .option('--length <bytes>', 'bytes to write (default: to the end of the disk)', wholeNumber('--length', 'bytes'))
    .option('--to <file>', 'write a new raw image file instead of stdout (never over an existing file; zeros left unwritten, holes where the file system makes them); from Windows PowerShell 5.1, whose redirection turns bytes into text'))
    .action(async (point: string, opts: { repo: string; vm?: string; disk?: string; offset?: number; length?: number; to?: string; passwordFile?: string }, cmd: Command) => {
      const ctx = cliContext(cmd);
      const { dumpRestorePoint } = await import('../../api/dump.ts');
      if (opts.to !== undefined) {
        (await import('../../api/warm.ts')).warmChunkWorkers(availableParallelism());
        const r = await withPassword(opts, (password) => dumpRestorePoint(ctx, { repository: opts.repo, password, point, vmName: opts.vm, disk: opts.disk, offset: opts.offset, length: opts.length, to: opts.to }));
        ctx.endProgress();
        process.stdout.write(`wrote ${r.bytes} bytes of ${r.vmName} disk ${r.disk} (point ${r.pointId.slice(0, 12)}, from byte ${r.offset}) to ${opts.to}\n`);
        return;
      }
      if (process.stdout.isTTY) throw new HvError('ERR_INVALID_ARGUMENT', 'dump writes raw disk bytes: redirect stdout to a file or a pipe (or give --to), not a terminal');
      (await import('../../api/warm.ts')).warmChunkWorkers(availableParallelism());
      let closed = false;
      const write = (buf: Buffer) => new Promise<void>((resolve, reject) => {
        process.stdout.write(buf, (err) => {
          if (!err) return resolve();
          closed ||= (err as NodeJS.ErrnoException).code === 'EPIPE';
          reject(err);
        });
      });
      // A reader that stops early (| head -c) is not an error of ours: end as a process killed by SIGPIPE would.
      process.stdout.on('error', (err: NodeJS.ErrnoException) => { if (err.code === 'EPIPE') closed = true; });
      try {
        await withPassword(opts, (password) => dumpRestorePoint(ctx, { repository: opts.repo, password, point, vmName: opts.vm, disk: opts.disk, offset: opts.offset, length: opts.length, write }));
      } catch (err) {
        if (!closed) throw err;
        process.exitCode = 141;
      } finally {
        ctx.endProgress();
      }
    });

  withPasswordOption(program.command('verify')
    .description('re-read and re-hash every chunk the restore points reference')
    .requiredOption('--repo <repo>', 'repository folder')
    .option('--point <id>', 'only the chunks of this restore point')
    .option('--quick', 'read no chunk data: check that every chunk is listed in the index and its pack is there and long enough (finds lost or cut files, not rot)')
    .option('--read-subset <n/m>', 'read only part n of m of the chunk data (by chunk id; parts 1/m … m/m read every chunk once)', readSubset)
    .option('--repair', 'then take missing and corrupt chunks out of the index (exclusive lock), so the next backup of the VMs they break reads their disks whole and stores them again')
    .option('--json', 'print the report as JSON'))
    .action(async (opts: { repo: string; point?: string; quick?: boolean; readSubset?: { part: number; of: number }; repair?: boolean; json?: boolean; passwordFile?: string }, cmd: Command) => {
      const ctx = cliContext(cmd, { quiet: opts.json });
      const { verifyRepository } = await import('../../api/verify.ts');
      const r = await withPassword(opts, (password) => verifyRepository(ctx, { repository: opts.repo, password, pointId: opts.point, quick: opts.quick, readSubset: opts.readSubset, repair: opts.repair }));
      ctx.endProgress();
      if (opts.json) printJson(r);
      else printVerify(r, opts.quick === true);
      if (!r.ok) process.exitCode = 1;
    });
}
