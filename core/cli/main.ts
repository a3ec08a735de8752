#!/usr/bin/env node
// The hvbackup CLI: commander over the public API (core/api). Each area registers its
// own commands from core/cli/commands/<area>.ts; only the area a command line needs is
// loaded (commands/index.ts).

import module from 'node:module';
import { Command, CommanderError } from 'commander';
import { isHvError } from '../errors.ts';
import { boundYoungGeneration } from '../heap.ts';
import { areasFor } from './commands/index.ts';

/** The program with the commands `argv` needs (every command when argv is not given). */
export async function buildProgram(argv: readonly string[] = []): Promise<Command> {
  const program = new Command();
  program
    .name('hvbackup')
    .description('Backup, archive and recovery for Hyper-V virtual machines')
    .version('0.1.0')
    .showHelpAfterError()
    .exitOverride();
  const areas = await Promise.all(areasFor(argv).map((a) => a.load()));
  for (const area of areas) area.register(program);
  return program;
}

/**
 * A reader that goes away (`hvbackup points | head -1`) made Node throw EPIPE from the next
 * write, with a stack trace, possibly in the middle of a backup. Output nobody reads is dropped
 * instead and the operation finishes as it would have (a backup still merges its checkpoint);
 * its exit code is unchanged.
 */
function keepGoingWithoutReader(): void {
  for (const stream of [process.stdout, process.stderr]) {
    if (stream.listeners('error').includes(dropEpipe)) continue;
    stream.on('error', dropEpipe);
  }
}

function dropEpipe(err: NodeJS.ErrnoException): void {
  if (err.code !== 'EPIPE' && err.code !== 'ERR_STREAM_DESTROYED') throw err;
}

const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/** Exit codes: 0 ok, 1 operation failed / problems found, 2 usage error, 130 cancelled. */
export async function main(argv: string[]): Promise<number> {
  keepGoingWithoutReader();
  boundYoungGeneration();
  const program = await buildProgram(argv);
  const abort = new AbortController();
  // Ctrl+C, a service manager's stop (SIGTERM) or a closed terminal (SIGHUP) cancels: a backup
  // then merges its checkpoint and releases its lock. (Killed outright, it left the VM running
  // on the .avhdx until the next backup or `vm repair`.) The same signal again kills at once.
  const onSigint = () => abort.abort();
  for (const sig of STOP_SIGNALS) process.once(sig, onSigint);
  program.setOptionValue('signal', abort.signal);
  // Node exits quietly, status 0, when nothing is left to wait for: an operation whose promise
  // can never settle (a bug) must not look like success to a script or a scheduler.
  let settled = false;
  const onExit = () => {
    if (settled) return;
    process.stderr.write('hvbackup: internal error: the operation stopped before it finished (nothing left to wait for); treat its result as failed\n');
    process.exitCode = 70;
  };
  process.once('exit', onExit);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    if (isHvError(err)) {
      process.stderr.write(`hvbackup: ${err.message}\n`);
      if (err.code === 'ERR_CANCELLED') return 130;
      return err.code === 'ERR_INVALID_ARGUMENT' ? 2 : 1;
    }
    process.stderr.write(`hvbackup: internal error: ${(err as Error)?.stack ?? String(err)}\n`);
    return 1;
  } finally {
    settled = true;
    for (const sig of STOP_SIGNALS) process.removeListener(sig, onSigint);
    process.removeListener('exit', onExit);
  }
}

if (import.meta.main) {
  // Run directly (`node core/cli/main.ts`, as the benchmarks and scripts do) rather than
  // through bin/hvbackup.js: cache the type-stripped engine too. Only this file and its
  // three imports are stripped on every start; the command areas load from the cache.
  module.enableCompileCache?.();
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
