// The pool catalog lives in the repository as `catalog/<pool>`, sealed with the
// repository's codec (an encrypted repository does not show VM names in its catalog).
// It is replaced whole (overwrite save: readers see the old or the new one).

import { HvError, wrapError } from '../errors.ts';
import type { Repository } from '../repo/repository.ts';
import { decodeCatalog, encodeCatalog, type Catalog } from './catalog.ts';

const POOL_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;

export function checkPoolName(pool: string): string {
  if (typeof pool !== 'string' || !POOL_NAME.test(pool) || pool.includes('..') || pool.endsWith('.watch')) {
    throw new HvError('ERR_INVALID_ARGUMENT', `media pool name ${JSON.stringify(pool)} is not valid: use 1-64 lower-case letters, digits, '.', '_' or '-' (not ending in .watch)`, { target: String(pool) });
  }
  return pool;
}

export async function loadCatalog(repo: Repository, pool: string, signal?: AbortSignal): Promise<Catalog | undefined> {
  const h = { type: 'catalog' as const, name: checkPoolName(pool) };
  let stored: Buffer;
  try {
    stored = await repo.backend.load(signal, h);
  } catch (err) {
    if (repo.backend.isNotFound(err)) return undefined;
    throw wrapError(err, `load catalog of pool ${pool}`, `<catalog/${pool}>`);
  }
  return decodeCatalog(repo.codec.open('catalog', pool, stored), `<catalog/${pool}> in ${repo.location}`);
}

export async function saveCatalog(repo: Repository, cat: Catalog, signal?: AbortSignal): Promise<void> {
  const name = checkPoolName(cat.pool.name);
  await repo.backend.save(signal, { type: 'catalog', name }, repo.codec.seal('catalog', encodeCatalog(cat), name), { overwrite: true });
}

export async function listPools(repo: Repository, signal?: AbortSignal): Promise<string[]> {
  const names: string[] = [];
  for await (const o of repo.backend.list(signal, 'catalog')) if (!o.name.endsWith('.watch')) names.push(o.name);
  return names.sort();
}
