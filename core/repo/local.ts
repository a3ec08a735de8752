// Path helpers: open or create a repository in a local folder or share.

import { promises as fsp } from 'node:fs';
import { resolve } from 'node:path';
import { HvError, wrapError } from '../errors.ts';
import { LocalBackend } from './backend-local.ts';
import { Repository, type InitOptions, type OpenOptions } from './repository.ts';

export async function openRepository(path: string, opts: OpenOptions = {}): Promise<Repository> {
  const dir = resolve(path);
  const st = await fsp.stat(dir).catch((err: unknown) => {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new HvError('ERR_NOT_FOUND', `repository ${dir} does not exist`, { target: dir });
    throw wrapError(err, `open repository ${dir}`, dir);
  });
  if (!st.isDirectory()) throw new HvError('ERR_NOT_FOUND', `${dir} is not an HVBackup repository (it is a file, not a folder)`, { target: dir });
  const backend = new LocalBackend(dir);
  const repo = await Repository.open(backend, opts);
  // Temp files a killed writer left behind are garbage; only old ones, live writers keep theirs.
  await backend.cleanStaleTemp().catch(() => {});
  return repo;
}

/** Create a repository in `path`, which must not exist or be an empty folder. */
export async function initRepository(path: string, opts: InitOptions = {}): Promise<Repository> {
  const dir = resolve(path);
  const entries = await fsp.readdir(dir).catch((err: unknown) => {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw wrapError(err, `create repository ${dir}`, dir);
  });
  if (entries && entries.length > 0) {
    throw new HvError('ERR_ALREADY_EXISTS', `cannot create a repository in ${dir}: the folder is not empty`, { target: dir });
  }
  await fsp.mkdir(dir, { recursive: true }).catch((err: unknown) => { throw wrapError(err, `create repository ${dir}`, dir); });
  return Repository.init(new LocalBackend(dir), opts);
}
