// Public API: the passwords (key files) of an encrypted repository. Every call proves the
// caller knows a current password first. Adding a password writes one new key file;
// removing one deletes one key file; the data is never rewritten.

import { promises as fsp } from 'node:fs';
import { resolve } from 'node:path';
import { HvError, wrapError } from '../errors.ts';
import { log, type OperationContext } from '../progress.ts';
import { LocalBackend } from '../repo/backend-local.ts';
import type { Backend } from '../repo/backend.ts';
import { decodeConfig, type RepositoryConfig } from '../repo/config.ts';
import { addKeyFile, checkKeyRemoval, describeKeyFile, unlockRepository, type ScryptParams, type UnlockedRepository } from '../repo/crypto/index.ts';
import { acquireLock } from '../repo/lock.ts';

export interface RepositoryKeyInfo {
  /** Key file id (64 hex), its object name under keys/. */
  id: string;
  created?: string;
  hostname?: string;
  user?: string;
  /** True for the key file the given password unlocked. */
  current: boolean;
  /** Set when the key file cannot be read: what is wrong with it. */
  damaged?: string;
}

interface OpenedKeys {
  backend: Backend;
  config: RepositoryConfig;
  keyFiles: { name: string; data: Buffer }[];
  unlocked: UnlockedRepository;
}

function requireString(value: unknown, name: string): string {
  if (typeof value !== 'string' || value === '') throw new HvError('ERR_INVALID_ARGUMENT', `${name} must be a non-empty string`);
  return value;
}

async function loadKeyFiles(backend: Backend, signal?: AbortSignal): Promise<{ name: string; data: Buffer }[]> {
  const files: { name: string; data: Buffer }[] = [];
  for await (const o of backend.list(signal, 'keys')) files.push({ name: o.name, data: await backend.load(signal, { type: 'keys', name: o.name }) });
  return files.sort((a, b) => a.name.localeCompare(b.name));
}

/** Open the repository folder and unlock it with `password`. The caller closes the backend. */
async function openKeys(ctx: OperationContext, repository: unknown, password: unknown): Promise<OpenedKeys> {
  const dir = resolve(requireString(repository, 'repository'));
  const pw = requireString(password, 'password');
  const st = await fsp.stat(dir).catch((err: unknown) => { throw wrapError(err, `open repository ${dir}`, dir); });
  if (!st.isDirectory()) throw new HvError('ERR_NOT_FOUND', `${dir} is not an HVBackup repository (it is a file, not a folder)`, { target: dir });
  const backend = new LocalBackend(dir);
  try {
    const raw = await backend.load(ctx.signal, { type: 'config', name: 'config' }).catch((err: unknown) => {
      if (backend.isNotFound(err)) throw new HvError('ERR_NOT_FOUND', `${dir} is not an HVBackup repository (it has no config file)`, { target: dir });
      throw wrapError(err, `open repository ${dir}`, dir);
    });
    const config = decodeConfig(raw, `${dir} <config>`);
    if (config.encryption === null) {
      throw new HvError('ERR_UNSUPPORTED', `repository ${dir} is not encrypted: it has no passwords to manage`, { target: dir });
    }
    const keyFiles = await loadKeyFiles(backend, ctx.signal);
    const unlocked = await unlockRepository(keyFiles, config.encryption, pw, dir);
    for (const w of unlocked.warnings) log(ctx, 'warning', w, dir);
    return { backend, config, keyFiles, unlocked };
  } catch (err) {
    await backend.close();
    throw err;
  }
}

function keyInfo(file: { name: string; data: Buffer }, currentId: string): RepositoryKeyInfo {
  const d = describeKeyFile(file.name, file.data);
  if ('damaged' in d) return { id: file.name, current: false, damaged: d.damaged };
  return { id: d.id, created: d.created, hostname: d.hostname, user: d.user, current: d.id === currentId };
}

/** Add a password: a new key file wrapping the same master keys. `kdf` sets its scrypt cost (default N=2^17, r=8, p=1). */
export async function addRepositoryKey(ctx: OperationContext, params: { repository: string; password: string; newPassword: string; kdf?: Partial<ScryptParams> }): Promise<RepositoryKeyInfo> {
  const newPassword = requireString(params.newPassword, 'newPassword');
  const k = await openKeys(ctx, params.repository, params.password);
  try {
    const { keyFile, keyId } = await addKeyFile(k.unlocked.codec, newPassword, { kdf: params.kdf });
    await k.backend.save(ctx.signal, { type: 'keys', name: keyId }, keyFile);
    log(ctx, 'verbose', `added key ${keyId.slice(0, 8)} to ${k.backend.location}`, `<keys/${keyId}>`);
    return keyInfo({ name: keyId, data: keyFile }, '');
  } finally {
    await k.backend.close();
  }
}

/** Every key file of the repository; the one `password` opens is marked current, damaged ones say why. */
export async function listRepositoryKeys(ctx: OperationContext, params: { repository: string; password: string }): Promise<RepositoryKeyInfo[]> {
  const k = await openKeys(ctx, params.repository, params.password);
  try {
    return k.keyFiles.map((f) => keyInfo(f, k.unlocked.keyId));
  } finally {
    await k.backend.close();
  }
}

function resolveKeyId(files: { name: string }[], keyId: string): string {
  if (!/^[0-9a-f]{8,64}$/.test(keyId)) throw new HvError('ERR_INVALID_ARGUMENT', `key id ${JSON.stringify(keyId)} must be 8 to 64 lowercase hex characters`);
  const matches = files.filter((f) => f.name.startsWith(keyId));
  if (matches.length > 1) throw new HvError('ERR_INVALID_ARGUMENT', `key id prefix ${keyId} is ambiguous (${matches.length} keys match)`);
  return matches[0]?.name ?? keyId;
}

/**
 * Remove a password's key file, under the exclusive lock. Refuses the last key file, and
 * the one `password` unlocked unless `force` (prove another password works first).
 */
export async function removeRepositoryKey(ctx: OperationContext, params: { repository: string; password: string; keyId: string; force?: boolean }): Promise<{ removed: string }> {
  const k = await openKeys(ctx, params.repository, params.password);
  try {
    const keyId = resolveKeyId(k.keyFiles, requireString(params.keyId, 'keyId'));
    const lock = await acquireLock(k.backend, { exclusive: true, operation: 'remove key', signal: ctx.signal });
    try {
      // Listed again under the lock: another process may have removed a key meanwhile.
      const names = (await loadKeyFiles(k.backend, ctx.signal)).map((f) => f.name);
      checkKeyRemoval(names, keyId, k.unlocked.keyId, params.force ?? false);
      await k.backend.remove(ctx.signal, { type: 'keys', name: keyId });
    } finally {
      await lock.release();
    }
    log(ctx, 'verbose', `removed key ${keyId.slice(0, 8)} from ${k.backend.location}`, `<keys/${keyId}>`);
    return { removed: keyId };
  } finally {
    await k.backend.close();
  }
}

/**
 * Change a password: add a key file for `newPassword`, prove it unlocks, then remove the
 * key file `password` opened. The data is not rewritten. A crash between the two steps
 * leaves both passwords working, never neither.
 */
export async function changeRepositoryPassword(ctx: OperationContext, params: { repository: string; password: string; newPassword: string; kdf?: Partial<ScryptParams> }): Promise<{ added: string; removed: string }> {
  const old = await openKeys(ctx, params.repository, params.password);
  const oldId = old.unlocked.keyId;
  await old.backend.close();
  const added = await addRepositoryKey(ctx, params);
  const proof = await openKeys(ctx, params.repository, params.newPassword);
  await proof.backend.close();
  if (proof.unlocked.keyId !== added.id) {
    // Another key file also opens with the new password; still safe to remove the old one.
    log(ctx, 'verbose', `the new password also opens key ${proof.unlocked.keyId.slice(0, 8)}`, proof.backend.location);
  }
  await removeRepositoryKey(ctx, { repository: params.repository, password: params.newPassword, keyId: oldId, force: true });
  return { added: added.id, removed: oldId };
}
