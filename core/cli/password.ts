// Where the CLI gets repository passwords: --password-file F, else env HVBACKUP_PASSWORD,
// else a prompt on the terminal without echo. Never from a command-line argument (visible
// in `ps` and shell history). The same for the new password of `key add`
// (--new-password-file, HVBACKUP_NEW_PASSWORD, prompt twice).

import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { HvError } from '../errors.ts';

export interface PasswordSource {
  /** Option value of --password-file / --new-password-file. */
  file?: string;
  /** Environment variable(s) to read, first set one wins. */
  env: string | string[];
  /** The option that names a password file, for messages. */
  fileOption?: string;
  /** Prompt text on a terminal. */
  prompt: string;
  /** Ask twice on a terminal and require both to match (new passwords). */
  confirm?: boolean;
  /** For tests: the environment and the terminal. */
  environment?: NodeJS.ProcessEnv;
  input?: NodeJS.ReadStream;
  output?: NodeJS.WriteStream;
}

/** Adds --password-file to a command that opens a repository. */
export function withPasswordOption(cmd: Command): Command {
  return cmd.option('--password-file <file>', 'read the repository password from this file (else env HVBACKUP_PASSWORD, else a prompt)');
}

/** The repository password for commands that open a repository (use `opts.passwordFile`). */
export function readRepositoryPassword(opts: { passwordFile?: string }, extra: Partial<PasswordSource> = {}): Promise<string> {
  return readPassword({ file: opts.passwordFile, env: 'HVBACKUP_PASSWORD', fileOption: '--password-file', prompt: 'Repository password: ', ...extra });
}

/** The new password for `repo init --encrypt` and `key add` (asked twice on a terminal). */
export function readNewPassword(opts: { newPasswordFile?: string }, env: string | string[] = 'HVBACKUP_NEW_PASSWORD', extra: Partial<PasswordSource> = {}): Promise<string> {
  return readPassword({ file: opts.newPasswordFile, env, fileOption: '--new-password-file', prompt: 'New password: ', confirm: true, ...extra });
}

/**
 * The first password of a new repository (`repo init --encrypt`): --new-password-file or
 * --password-file, else env HVBACKUP_NEW_PASSWORD or HVBACKUP_PASSWORD (so a script sets one
 * variable for init and every later command), else a prompt, twice.
 */
export function readInitPassword(opts: { newPasswordFile?: string; passwordFile?: string }, extra: Partial<PasswordSource> = {}): Promise<string> {
  return readPassword({ file: opts.newPasswordFile ?? opts.passwordFile, env: ['HVBACKUP_NEW_PASSWORD', 'HVBACKUP_PASSWORD'],
    fileOption: '--new-password-file', prompt: 'New password: ', confirm: true, ...extra });
}

/** Password file contents without one trailing newline (as `echo secret > file` leaves it). */
export function passwordFromFile(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new HvError(e.code === 'ENOENT' ? 'ERR_NOT_FOUND' : 'ERR_IO', `cannot read password file ${path}: ${e.message}`, { target: path, cause: err });
  }
  const pw = text.replace(/\r?\n$/, '');
  if (pw.length === 0) throw new HvError('ERR_INVALID_ARGUMENT', `password file ${path} is empty`, { target: path });
  return pw;
}

export async function readPassword(src: PasswordSource): Promise<string> {
  if (src.file !== undefined) return passwordFromFile(src.file);
  const envNames = typeof src.env === 'string' ? [src.env] : src.env;
  for (const name of envNames) {
    const fromEnv = (src.environment ?? process.env)[name];
    if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  }
  const input = src.input ?? process.stdin;
  const output = src.output ?? process.stderr;
  if (!input.isTTY) {
    throw new HvError('ERR_AUTH', `a password is needed: set ${envNames.join(' or ')}, use ${src.fileOption ?? 'a password file option'}, or run on a terminal to be asked`);
  }
  const pw = await promptHidden(input, output, src.prompt);
  if (pw.length === 0) throw new HvError('ERR_INVALID_ARGUMENT', 'the password must not be empty');
  if (src.confirm && (await promptHidden(input, output, 'Repeat password: ')) !== pw) {
    throw new HvError('ERR_INVALID_ARGUMENT', 'the two passwords differ');
  }
  return pw;
}

/** Read one line from the terminal in raw mode, echoing nothing. Ctrl+C cancels. */
export function promptHidden(input: NodeJS.ReadStream, output: NodeJS.WriteStream, prompt: string): Promise<string> {
  output.write(prompt);
  const wasRaw = input.isRaw;
  input.setRawMode?.(true);
  input.resume();
  input.setEncoding('utf8');
  return new Promise((resolve, reject) => {
    let line = '';
    const finish = (err?: HvError) => {
      input.removeListener('data', onData);
      input.setRawMode?.(wasRaw);
      input.pause();
      output.write('\n');
      if (err) reject(err);
      else resolve(line);
    };
    const onData = (chunk: string) => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n' || ch === '\u0004') return finish();
        if (ch === '\u0003') return finish(new HvError('ERR_CANCELLED', 'password prompt cancelled'));
        if (ch === '\u007f' || ch === '\b') line = [...line].slice(0, -1).join('');
        else if (ch >= ' ') line += ch;
      }
    };
    input.on('data', onData);
  });
}
