// Repository keys: create the master key set at init, wrap it under a password (one key
// file per password), unlock with any of them, add and remove passwords. Storage of key
// files (keys/<id>) is the caller's: these functions take and return bytes.

import { createCipheriv, createDecipheriv, createHmac, randomBytes, scrypt } from 'node:crypto';
import { hostname, userInfo } from 'node:os';
import { HvError, isHvError } from '../../errors.ts';
import type { ObjectCodec } from './codec.ts';
import { EncryptedCodec } from './encrypted-codec.ts';
import { checkScryptParams, decodeKeyFile, encodeKeyFile, KEY_FILE_VERSION, keyFileAad, scryptMemory, type KeyFile, type ScryptParams } from './key-file.ts';
import { generateMasterKeys, keyCheck, keyCheckMatches, masterKeysFromTransferable, packMasterKeys, unpackMasterKeys, type MasterKeys } from './master-keys.ts';

/** Default KDF cost: 128 MiB and about 0.3 s per attempt on a current core. */
export const DEFAULT_SCRYPT: ScryptParams = { N: 2 ** 17, r: 8, p: 1 };
export const CONFIG_CRYPTO_VERSION = 1;

export interface KeyOptions {
  kdf?: Partial<ScryptParams>;
}

export interface KeySummary {
  /** Key file id (its object name under keys/). */
  id: string;
  created: string;
  hostname: string;
  user: string;
  kdf: { name: 'scrypt'; N: number; r: number; p: number };
}

function checkPassword(password: unknown, what = 'password'): asserts password is string {
  if (typeof password !== 'string' || password.length === 0) {
    throw new HvError('ERR_INVALID_ARGUMENT', `the ${what} must be a non-empty string`);
  }
}

/** The password-derived key-encryption key. NFC so the same password typed on any system unlocks. */
function deriveKek(password: string, salt: Buffer, p: ScryptParams): Promise<Buffer> {
  const pw = Buffer.from(password.normalize('NFC'), 'utf8');
  return new Promise((resolve, reject) => {
    scrypt(pw, salt, 32, { N: p.N, r: p.r, p: p.p, maxmem: scryptMemory(p) + 1024 * 1024 }, (err, key) => {
      pw.fill(0);
      if (err) reject(new HvError('ERR_INTERNAL', `scrypt failed: ${err.message}`, { cause: err }));
      else resolve(key);
    });
  });
}

async function wrapKeys(keys: MasterKeys, password: string, opts: KeyOptions | undefined): Promise<KeyFile> {
  const params: ScryptParams = { ...DEFAULT_SCRYPT, ...opts?.kdf };
  checkScryptParams(params, 'key options');
  const salt = randomBytes(32);
  const id = randomBytes(32).toString('hex');
  const kek = await deriveKek(password, salt, params);
  const nonce = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', kek, nonce, { authTagLength: 16 });
  cipher.setAAD(keyFileAad(id));
  const packed = packMasterKeys(keys);
  const ciphertext = Buffer.concat([cipher.update(packed), cipher.final(), cipher.getAuthTag()]);
  packed.fill(0);
  kek.fill(0);
  let user = '';
  try {
    user = userInfo().username;
  } catch { /* no passwd entry (containers): informational only */ }
  return {
    version: KEY_FILE_VERSION, id, created: new Date().toISOString(), hostname: hostname(), user,
    kdf: { name: 'scrypt', ...params, salt },
    wrapped: { algorithm: 'aes-256-gcm', nonce, ciphertext },
  };
}

/** The master keys, or null when the password does not open this key file. */
async function unwrapKeys(k: KeyFile, password: string): Promise<MasterKeys | null> {
  const kek = await deriveKek(password, k.kdf.salt, k.kdf);
  const decipher = createDecipheriv('aes-256-gcm', kek, k.wrapped.nonce, { authTagLength: 16 });
  decipher.setAAD(keyFileAad(k.id));
  decipher.setAuthTag(k.wrapped.ciphertext.subarray(64));
  const packed = decipher.update(k.wrapped.ciphertext.subarray(0, 64));
  kek.fill(0);
  try {
    decipher.final();
  } catch {
    packed.fill(0);
    return null;
  }
  return unpackMasterKeys(packed);
}

export interface NewRepositoryKeys {
  codec: ObjectCodec;
  keyFile: Buffer;
  keyId: string;
  /** Goes into the repository config: algorithm names, version and the key-set fingerprint — never keys. */
  configCrypto: Record<string, unknown>;
}

export async function createEncryptedRepositoryKeys(password: string, opts?: KeyOptions): Promise<NewRepositoryKeys> {
  checkPassword(password);
  const keys = generateMasterKeys();
  const file = await wrapKeys(keys, password, opts);
  const configCrypto = { version: CONFIG_CRYPTO_VERSION, cipher: 'aes-256-gcm', chunkId: 'hmac-sha256', kdf: 'scrypt', keyCheck: keyCheck(keys) };
  return { codec: new EncryptedCodec(keys), keyFile: encodeKeyFile(file), keyId: file.id, configCrypto };
}

/** Refuse configs this version cannot use, before spending time on scrypt. */
export function checkConfigCrypto(configCrypto: Record<string, unknown> | null | undefined): string | undefined {
  if (!configCrypto || typeof configCrypto !== 'object') {
    throw new HvError('ERR_CORRUPT', 'repository config: the encryption section is missing or not an object');
  }
  const { version, cipher, chunkId, keyCheck: check } = configCrypto;
  if (version !== CONFIG_CRYPTO_VERSION || cipher !== 'aes-256-gcm' || chunkId !== 'hmac-sha256') {
    throw new HvError('ERR_UNSUPPORTED', `repository config: encryption ${JSON.stringify({ version, cipher, chunkId })} is not supported ` +
      `(this HVBackup supports version ${CONFIG_CRYPTO_VERSION}, aes-256-gcm, hmac-sha256)`);
  }
  if (check !== undefined && (typeof check !== 'string' || !/^[0-9a-f]{64}$/.test(check))) {
    throw new HvError('ERR_CORRUPT', 'repository config: encryption.keyCheck is malformed');
  }
  return check as string | undefined;
}

/**
 * Successful unlocks are remembered in this process, so a long-lived engine (the PowerShell
 * bridge opens the repository on every call) pays scrypt once per password, not per call.
 * The memo is keyed by an HMAC (random per-process key) of the exact key-file bytes and the
 * password: a removed or changed key file, or another password, never hits it; wrong
 * passwords are never remembered. The values are master keys any open repository holds anyway.
 */
const UNLOCK_MEMO_MAX = 16;
const unlockMemoSecret = randomBytes(32);
const unlockMemo = new Map<string, MasterKeys>();

function unlockMemoKey(keyFile: Buffer, password: string): string {
  return createHmac('sha256', unlockMemoSecret).update(password.normalize('NFC')).update('\0').update(keyFile).digest('hex');
}

function rememberUnlock(memo: string, keys: MasterKeys): void {
  unlockMemo.delete(memo);
  unlockMemo.set(memo, keys);
  for (const oldest of unlockMemo.keys()) {
    if (unlockMemo.size <= UNLOCK_MEMO_MAX) break;
    unlockMemo.delete(oldest);
  }
}

/** Forget remembered unlocks (tests; an engine that wants every call to pay scrypt again). */
export function clearUnlockMemo(): void {
  unlockMemo.clear();
}

export interface UnlockedRepository {
  codec: ObjectCodec;
  keyId: string;
  /** Key files that could not be read (damaged), though another one unlocked the repository. */
  warnings: string[];
}

/**
 * Try each key file with the password: one scrypt per readable key file, nothing kept
 * from a failed attempt. Wrong password everywhere → ERR_AUTH; when no key file opened
 * and some were damaged → ERR_CORRUPT naming them (the password may belong to one of them).
 */
export async function unlockRepository(keyFiles: { name: string; data: Buffer }[], configCrypto: Record<string, unknown>, password: string, location?: string): Promise<UnlockedRepository> {
  checkPassword(password);
  const repo = location ? `repository ${location}` : 'the repository';
  const check = checkConfigCrypto(configCrypto);
  if (keyFiles.length === 0) throw new HvError('ERR_CORRUPT', `${repo} is encrypted but has no key files (keys/ is empty)`, { target: location });
  const damaged: HvError[] = [];
  for (const [i, { name, data }] of keyFiles.entries()) {
    const where = `<keys/${name}>`;
    let file: KeyFile;
    try {
      file = decodeKeyFile(data, where);
    } catch (err) {
      if (!isHvError(err)) throw err;
      damaged.push(err);
      continue;
    }
    const memo = unlockMemoKey(data, password);
    const keys = unlockMemo.get(memo) ?? (await unwrapKeys(file, password));
    if (!keys) continue;
    rememberUnlock(memo, keys);
    if (check !== undefined && !keyCheckMatches(keys, check)) {
      damaged.push(new HvError('ERR_CORRUPT', `key file ${where} opens with this password but holds keys of another repository; it was not used`, { target: where }));
      continue;
    }
    // Key files after this one are not needed to unlock, but a damaged one is still worth reporting.
    for (const rest of keyFiles.slice(i + 1)) {
      try {
        decodeKeyFile(rest.data, `<keys/${rest.name}>`);
      } catch (err) {
        if (!isHvError(err)) throw err;
        damaged.push(err);
      }
    }
    return { codec: new EncryptedCodec(keys), keyId: file.id, warnings: damaged.map((e) => e.message) };
  }
  if (damaged.length > 0) {
    const first = damaged[0]!;
    const more = damaged.length > 1 ? ` (and ${damaged.length - 1} more: ${damaged.slice(1).map((e) => e.target).join(', ')})` : '';
    throw new HvError('ERR_CORRUPT', `cannot unlock ${repo}: ${first.message}${more}; no other key file opens with this password`,
      { target: first.target, data: { damaged: damaged.map((e) => e.target) } });
  }
  throw new HvError('ERR_AUTH', `wrong password for ${repo} (tried ${keyFiles.length} key file${keyFiles.length === 1 ? '' : 's'})`, { target: location });
}

/** A new key file wrapping the same master keys under another password. The data is untouched. */
export async function addKeyFile(codec: ObjectCodec, newPassword: string, opts?: KeyOptions): Promise<{ keyFile: Buffer; keyId: string }> {
  checkPassword(newPassword, 'new password');
  const t = codec.toTransferable();
  if (!codec.encrypted || !t.encrypted) throw new HvError('ERR_UNSUPPORTED', 'the repository is not encrypted: it has no keys to add a password to');
  const file = await wrapKeys(masterKeysFromTransferable(t.keys), newPassword, opts);
  return { keyFile: encodeKeyFile(file), keyId: file.id };
}

/** What `key list` shows for one key file; damaged files are reported, not thrown. */
export function describeKeyFile(name: string, data: Buffer): KeySummary | { id: string; damaged: string } {
  try {
    const k = decodeKeyFile(data, `<keys/${name}>`);
    return { id: k.id, created: k.created, hostname: k.hostname, user: k.user, kdf: { name: 'scrypt', N: k.kdf.N, r: k.kdf.r, p: k.kdf.p } };
  } catch (err) {
    if (!isHvError(err)) throw err;
    return { id: name, damaged: err.message };
  }
}

/**
 * Whether key file `keyId` may be removed: never the last one (the data would be lost for
 * good), and not the one the caller unlocked with unless forced (they prove another works first).
 */
export function checkKeyRemoval(allIds: string[], keyId: string, inUseId: string, force = false): void {
  if (!allIds.includes(keyId)) throw new HvError('ERR_NOT_FOUND', `no key file ${keyId} in the repository`, { target: `<keys/${keyId}>` });
  if (allIds.length <= 1) {
    throw new HvError('ERR_INVALID_ARGUMENT', `refusing to remove key ${keyId}: it is the repository's last key, and without it the data can never be decrypted`, { target: `<keys/${keyId}>` });
  }
  if (keyId === inUseId && !force) {
    throw new HvError('ERR_INVALID_ARGUMENT', `refusing to remove key ${keyId}: it is the key this password unlocked; unlock with another password to remove it, or force it (--force)`, { target: `<keys/${keyId}>` });
  }
}
