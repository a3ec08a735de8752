// Argument checks and repository opening shared by the API functions of this area.
import { HvError } from '../errors.ts';
import { openRepository } from '../repo/index.ts';
import type { Repository } from '../repo/index.ts';
import { log } from '../progress.ts';
import type { OperationContext } from '../progress.ts';

export function requireString(v: unknown, name: string): string {
  if (typeof v !== 'string' || v.trim() === '') throw new HvError('ERR_INVALID_ARGUMENT', `${name} is required (a non-empty string)`);
  return v;
}

export function optionalString(v: unknown, name: string): string | undefined {
  if (v === undefined || v === null) return undefined;
  return requireString(v, name);
}

/** Open a repository for an API call; damaged key files skipped at unlock are reported as warnings. */
export async function openRepo(repository: unknown, password: unknown, ctx: OperationContext = {}, opts: { chunkWork?: boolean } = {}): Promise<Repository> {
  const path = requireString(repository, 'repository');
  return openRepository(path, { password: optionalString(password, 'password'), signal: ctx.signal, onWarning: (w) => log(ctx, 'warning', w, path), warmWorkers: opts.chunkWork });
}

/** `opts.chunkWork`: the call hashes or opens chunks (backup, restore, verify), so workers may start during the unlock. */
export async function withRepo<T>(repository: unknown, password: unknown, ctx: OperationContext, fn: (repo: Repository) => Promise<T>, opts: { chunkWork?: boolean } = {}): Promise<T> {
  const repo = await openRepo(repository, password, ctx, opts);
  try {
    return await fn(repo);
  } finally {
    await repo.close();
  }
}
