// Key file codec (docs/repository-format.md, "Encryption"): JSON naming the KDF and its
// parameters, and the master key set wrapped with AES-256-GCM under the password-derived key.
// A SHA-256 checksum over the canonical body tells a damaged file (ERR_CORRUPT, naming it)
// apart from a wrong password (ERR_AUTH): the GCM tag alone cannot tell which it was.
// Pure encode/decode on buffers: no I/O, no KDF.

import { createHash } from 'node:crypto';
import { HvError } from '../../errors.ts';

export const KEY_FILE_VERSION = 1;

export interface ScryptParams {
  /** CPU/memory cost, a power of two. */
  N: number;
  r: number;
  p: number;
}

/** Limits a key file may ask for: enough for strong settings, bounded so a planted file cannot exhaust memory. */
export const SCRYPT_LIMITS = { minLogN: 4, maxLogN: 22, maxR: 32, maxP: 16, maxMemory: 2 * 1024 ** 3 };

export interface KeyFile {
  version: number;
  /** 64 hex characters; the key file is stored as keys/<id>. */
  id: string;
  created: string;
  /** Informational only: where and by whom the key was added. */
  hostname: string;
  user: string;
  kdf: ScryptParams & { name: 'scrypt'; salt: Buffer };
  wrapped: { algorithm: 'aes-256-gcm'; nonce: Buffer; ciphertext: Buffer };
}

/** The body in its one canonical field order; the checksum is over JSON.stringify of exactly this. */
function canonicalBody(k: KeyFile): Record<string, unknown> {
  return {
    version: k.version,
    id: k.id,
    created: k.created,
    hostname: k.hostname,
    user: k.user,
    kdf: { name: k.kdf.name, N: k.kdf.N, r: k.kdf.r, p: k.kdf.p, salt: k.kdf.salt.toString('base64') },
    wrapped: { algorithm: k.wrapped.algorithm, nonce: k.wrapped.nonce.toString('base64'), ciphertext: k.wrapped.ciphertext.toString('base64') },
  };
}

function checksumOf(body: Record<string, unknown>): string {
  return createHash('sha256').update(JSON.stringify(body)).digest('hex');
}

export function encodeKeyFile(k: KeyFile): Buffer {
  const body = canonicalBody(k);
  return Buffer.from(`${JSON.stringify({ ...body, checksum: checksumOf(body) }, null, 2)}\n`, 'utf8');
}

/** The wrapped key's AAD binds it to its key file id. */
export function keyFileAad(id: string): Buffer {
  return Buffer.from(`hvbackup-keyfile-v1:${id}`, 'latin1');
}

export function checkScryptParams(p: ScryptParams, where: string): void {
  const logN = Math.log2(p.N);
  const ok = Number.isInteger(logN) && logN >= SCRYPT_LIMITS.minLogN && logN <= SCRYPT_LIMITS.maxLogN &&
    Number.isInteger(p.r) && p.r >= 1 && p.r <= SCRYPT_LIMITS.maxR &&
    Number.isInteger(p.p) && p.p >= 1 && p.p <= SCRYPT_LIMITS.maxP && scryptMemory(p) <= SCRYPT_LIMITS.maxMemory;
  if (!ok) {
    throw new HvError('ERR_UNSUPPORTED', `${where}: scrypt parameters N=${p.N} r=${p.r} p=${p.p} are outside the supported range ` +
      `(N a power of two 2^${SCRYPT_LIMITS.minLogN}..2^${SCRYPT_LIMITS.maxLogN}, r 1..${SCRYPT_LIMITS.maxR}, p 1..${SCRYPT_LIMITS.maxP}, memory <= 2 GiB)`);
  }
}

/** Bytes scrypt needs (Node refuses unless maxmem exceeds this). */
export function scryptMemory(p: ScryptParams): number {
  return 128 * p.N * p.r + 128 * p.r * p.p;
}

class Reader {
  readonly where: string;
  constructor(where: string) {
    this.where = where;
  }
  fail(problem: string): never {
    throw new HvError('ERR_CORRUPT', `key file ${this.where} is damaged: ${problem}`, { target: this.where });
  }
  obj(v: unknown, field: string): Record<string, unknown> {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) this.fail(`${field} is not an object`);
    return v as Record<string, unknown>;
  }
  str(o: Record<string, unknown>, field: string, pattern?: RegExp): string {
    const v = o[field];
    if (typeof v !== 'string' || (pattern && !pattern.test(v))) this.fail(`field "${field}" is missing or malformed`);
    return v;
  }
  int(o: Record<string, unknown>, field: string): number {
    const v = o[field];
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) this.fail(`field "${field}" is missing or not an integer`);
    return v;
  }
  bytes(o: Record<string, unknown>, field: string, length?: number): Buffer {
    const s = this.str(o, field, /^[A-Za-z0-9+/]*={0,2}$/);
    const b = Buffer.from(s, 'base64');
    if (b.toString('base64') !== s || (length !== undefined && b.length !== length)) this.fail(`field "${field}" is not ${length ?? 'valid'} bytes of base64`);
    return b;
  }
}

/** Parse and verify a key file. `where` names it in errors, e.g. "<keys/ab12…>". */
export function decodeKeyFile(buf: Buffer, where: string): KeyFile {
  const rd = new Reader(where);
  let json: unknown;
  try {
    json = JSON.parse(buf.toString('utf8'));
  } catch (err) {
    rd.fail(`not valid JSON (${(err as Error).message})`);
  }
  const o = rd.obj(json, 'the file');
  const version = rd.int(o, 'version');
  if (version !== KEY_FILE_VERSION) throw new HvError('ERR_UNSUPPORTED', `key file ${where}: version ${version} is not supported (this HVBackup reads version ${KEY_FILE_VERSION})`, { target: where });
  const kdf = rd.obj(o.kdf, 'kdf');
  const wrapped = rd.obj(o.wrapped, 'wrapped');
  if (kdf.name !== 'scrypt') rd.fail(`kdf.name ${JSON.stringify(kdf.name)} is not "scrypt"`);
  if (wrapped.algorithm !== 'aes-256-gcm') rd.fail(`wrapped.algorithm ${JSON.stringify(wrapped.algorithm)} is not "aes-256-gcm"`);
  const k: KeyFile = {
    version,
    id: rd.str(o, 'id', /^[0-9a-f]{64}$/),
    created: rd.str(o, 'created'),
    hostname: rd.str(o, 'hostname'),
    user: rd.str(o, 'user'),
    kdf: { name: 'scrypt', N: rd.int(kdf, 'N'), r: rd.int(kdf, 'r'), p: rd.int(kdf, 'p'), salt: rd.bytes(kdf, 'salt') },
    wrapped: { algorithm: 'aes-256-gcm', nonce: rd.bytes(wrapped, 'nonce', 12), ciphertext: rd.bytes(wrapped, 'ciphertext', 80) },
  };
  if (rd.str(o, 'checksum', /^[0-9a-f]{64}$/) !== checksumOf(canonicalBody(k))) rd.fail('checksum mismatch');
  if (k.kdf.salt.length < 16) rd.fail('kdf.salt is shorter than 16 bytes');
  checkScryptParams(k.kdf, `key file ${where}`);
  return k;
}
