// The bridge's method table: method name -> public API function (core/api/*), and nothing
// else. Modules load on first use, so a warm engine pays each import once and an API file
// that is missing (or broken) fails only the methods that live in it.

import { HvError } from '../core/errors.ts';
import type { OperationContext } from '../core/progress.ts';

export type ApiFunction = (ctx: OperationContext, params: Record<string, unknown>) => Promise<unknown>;
export type MethodTable = Record<string, () => Promise<ApiFunction>>;

/** method name -> [core/api module, exported function]. Method names are the API's own names. */
export const API_METHODS: Record<string, readonly [string, string]> = {
  initRepository: ['repository', 'initRepository'],
  getRepositoryStats: ['repository', 'getRepositoryStats'],
  removeRestorePoints: ['repository', 'removeRestorePoints'],
  unlockRepository: ['repository', 'unlockRepository'],
  backupVMs: ['backup', 'backupVMs'],
  listRestorePoints: ['points', 'listRestorePoints'],
  restoreVM: ['restore', 'restoreVM'],
  verifyRepository: ['verify', 'verifyRepository'],
  listVMs: ['vm', 'listVMs'],
  createSampleVM: ['vm', 'createSampleVM'],
  repairVM: ['vm', 'repairVM'],
  guestWriteVM: ['vm', 'guestWriteVM'],
  createSandbox: ['sandbox', 'createSandbox'],
  exportArchive: ['archive', 'exportArchive'],
  importArchive: ['archive', 'importArchive'],
  restoreFromArchive: ['archive', 'restoreFromArchive'],
  getArchiveCatalog: ['archive', 'getArchiveCatalog'],
  watchArchive: ['archive', 'watchArchive'],
  applyRetention: ['retention', 'applyRetention'],
  collectGarbage: ['retention', 'collectGarbage'],
  addRepositoryKey: ['keys', 'addRepositoryKey'],
  listRepositoryKeys: ['keys', 'listRepositoryKeys'],
  removeRepositoryKey: ['keys', 'removeRepositoryKey'],
  changeRepositoryPassword: ['keys', 'changeRepositoryPassword'],
};

/** Load `<dir>/<module>.ts` and return its export `fn`, or an ERR_UNSUPPORTED naming what is missing. */
export function lazyFunction(dir: URL, module: string, fn: string): () => Promise<ApiFunction> {
  let loaded: ApiFunction | undefined;
  return async () => {
    if (loaded) return loaded;
    const url = new URL(`${module}.ts`, dir);
    let mod: Record<string, unknown>;
    try {
      mod = (await import(url.href)) as Record<string, unknown>;
    } catch (err) {
      throw new HvError('ERR_UNSUPPORTED', `engine API module core/api/${module}.ts cannot be loaded: ${(err as Error).message}`, { target: `core/api/${module}.ts`, cause: err });
    }
    const f = mod[fn];
    if (typeof f !== 'function') throw new HvError('ERR_UNSUPPORTED', `engine API core/api/${module}.ts has no function ${fn}`, { target: `core/api/${module}.ts` });
    loaded = f as ApiFunction;
    return loaded;
  };
}

export function apiMethodTable(apiDir = new URL('../core/api/', import.meta.url)): MethodTable {
  const table: MethodTable = {};
  for (const [name, [module, fn]] of Object.entries(API_METHODS)) table[name] = lazyFunction(apiDir, module, fn);
  return table;
}
