// hvbackup key add | list | remove — the passwords of an encrypted repository, over
// core/api/keys.ts. Passwords come from core/cli/password.ts, never from arguments.

import type { Command } from 'commander';
import { addRepositoryKey, changeRepositoryPassword, listRepositoryKeys, removeRepositoryKey, type RepositoryKeyInfo } from '../../api/keys.ts';
import type { OperationContext } from '../../progress.ts';
import { readNewPassword, readRepositoryPassword, withPasswordOption } from '../password.ts';
import { print, printJson } from '../output.ts';

function contextOf(cmd: Command): OperationContext {
  const opts = cmd.optsWithGlobals() as { signal?: AbortSignal };
  return { signal: opts.signal, onLog: (e) => { if (e.level !== 'verbose') process.stderr.write(`${e.level === 'warning' ? 'warning: ' : ''}${e.message}\n`); } };
}

function printKeys(keys: RepositoryKeyInfo[]): void {
  process.stdout.write(`${'  ID'.padEnd(12)} ${'CREATED'.padEnd(20)} ${'HOST'.padEnd(16)} USER\n`);
  for (const k of keys) {
    const mark = k.current ? '* ' : '  ';
    if (k.damaged) process.stdout.write(`${mark}${k.id.slice(0, 8).padEnd(10)} DAMAGED: ${k.damaged}\n`);
    else process.stdout.write(`${mark}${k.id.slice(0, 8).padEnd(10)} ${(k.created ?? '').slice(0, 19).replace('T', ' ').padEnd(20)} ${(k.hostname ?? '').padEnd(16)} ${k.user ?? ''}\n`);
  }
}

interface KeyOpts { repo: string; passwordFile?: string; newPasswordFile?: string; json?: boolean; force?: boolean }

export function register(program: Command): void {
  const key = program.command('key').description('manage the passwords (key files) of an encrypted repository');

  withPasswordOption(key.command('add')
    .description('add a password; the new one comes from --new-password-file, env HVBACKUP_NEW_PASSWORD, or a prompt')
    .requiredOption('--repo <repo>', 'repository folder')
    .option('--new-password-file <file>', 'read the new password from this file')
    .option('--json', 'print the new key as JSON'))
    .action(async (opts: KeyOpts, cmd: Command) => {
      const password = await readRepositoryPassword(opts);
      const newPassword = await readNewPassword(opts);
      const k = await addRepositoryKey(contextOf(cmd), { repository: opts.repo, password, newPassword });
      print(k, opts.json, () => `added key ${k.id.slice(0, 8)}\n`);
    });

  withPasswordOption(key.command('passwd')
    .description('change this password: add a key file for the new one, then remove the one this password opens (data is not rewritten)')
    .requiredOption('--repo <repo>', 'repository folder')
    .option('--new-password-file <file>', 'read the new password from this file')
    .option('--json', 'print the result as JSON'))
    .action(async (opts: KeyOpts, cmd: Command) => {
      const password = await readRepositoryPassword(opts);
      const newPassword = await readNewPassword(opts);
      const r = await changeRepositoryPassword(contextOf(cmd), { repository: opts.repo, password, newPassword });
      print(r, opts.json, () => `password changed: added key ${r.added.slice(0, 8)}, removed key ${r.removed.slice(0, 8)}\n`);
    });

  withPasswordOption(key.command('list')
    .description('list the key files; * marks the one this password opens')
    .requiredOption('--repo <repo>', 'repository folder')
    .option('--json', 'print the keys as JSON'))
    .action(async (opts: KeyOpts, cmd: Command) => {
      const keys = await listRepositoryKeys(contextOf(cmd), { repository: opts.repo, password: await readRepositoryPassword(opts) });
      if (opts.json) printJson(keys);
      else printKeys(keys);
    });

  withPasswordOption(key.command('remove <key-id>')
    .description('remove a password (key file); never the last one, nor the one in use unless --force')
    .requiredOption('--repo <repo>', 'repository folder')
    .option('--force', 'also remove the key file this password opens')
    .option('--json', 'print the result as JSON'))
    .action(async (keyId: string, opts: KeyOpts, cmd: Command) => {
      const r = await removeRepositoryKey(contextOf(cmd), { repository: opts.repo, password: await readRepositoryPassword(opts), keyId, force: opts.force });
      print(r, opts.json, () => `removed key ${r.removed.slice(0, 8)}\n`);
    });
}
