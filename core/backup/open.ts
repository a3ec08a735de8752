// Argument checks and repository opening shared by the API functions of this area.
import { HvError } from '../errors.ts';
import { openRepository } from '../repo/index.ts';
import type { Repository } from '../repo/index.ts';

export function requireString(v: unknown, name: string): string {
  if (typeof v !== 'string' || v.trim() === '') throw new HvError('ERR_INVALID_ARGUMENT', `${name} is required (a non-empty string)`);
  return v;
}

export function optionalString(v: unknown, name: string): string | undefined {
  if (v === undefined || v === null) return undefined;
  return requireString(v, name);
}

export async function openRepo(repository: unknown, password: unknown, signal?: AbortSignal): Promise<Repository> {
  return openRepository(requireString(repository, 'repository'), { password: optionalString(password, 'password'), signal });
}

export async function withRepo<T>(repository: unknown, password: unknown, signal: AbortSignal | undefined, fn: (repo: Repository) => Promise<T>): Promise<T> {
  const repo = await openRepo(repository, password, signal);
  try {
    return await fn(repo);
  } finally {
    await repo.close();
  }
}
