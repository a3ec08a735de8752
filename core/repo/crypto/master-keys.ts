// The master key set of an encrypted repository: one AES-256 key that seals every object
// and one HMAC-SHA-256 key that names chunks. Random at `repo init`, never derived from a
// password (passwords only wrap them, in key files), so changing a password rewrites no data.

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { HvError } from '../../errors.ts';

export const MASTER_KEY_SIZE = 32;

export interface MasterKeys {
  /** AES-256-GCM key for sealed objects. */
  encryption: Buffer;
  /** HMAC-SHA-256 key for chunk ids. */
  id: Buffer;
}

export function generateMasterKeys(): MasterKeys {
  return { encryption: randomBytes(MASTER_KEY_SIZE), id: randomBytes(MASTER_KEY_SIZE) };
}

/** The 64 bytes wrapped in a key file: encryption key, then id key. */
export function packMasterKeys(keys: MasterKeys): Buffer {
  return Buffer.concat([keys.encryption, keys.id]);
}

export function unpackMasterKeys(buf: Buffer): MasterKeys {
  if (buf.length !== 2 * MASTER_KEY_SIZE) {
    throw new HvError('ERR_CORRUPT', `master key set has ${buf.length} bytes, expected ${2 * MASTER_KEY_SIZE}`);
  }
  return { encryption: Buffer.from(buf.subarray(0, MASTER_KEY_SIZE)), id: Buffer.from(buf.subarray(MASTER_KEY_SIZE)) };
}

/**
 * A public fingerprint of the key set, stored in the repository config. Unlock compares it,
 * so a key file planted in keys/ that wraps some other key set is refused rather than used
 * to write data the owner cannot read. SHA-256 over 512 random bits reveals nothing usable.
 */
export function keyCheck(keys: MasterKeys): string {
  return createHash('sha256').update('hvbackup-key-check-v1\0').update(keys.encryption).update(keys.id).digest('hex');
}

export function keyCheckMatches(keys: MasterKeys, expected: string): boolean {
  const actual = Buffer.from(keyCheck(keys), 'hex');
  const want = Buffer.from(expected, 'hex');
  return want.length === actual.length && timingSafeEqual(actual, want);
}

export function masterKeysToTransferable(keys: MasterKeys): Record<string, string> {
  return { encryption: keys.encryption.toString('base64'), id: keys.id.toString('base64') };
}

export function masterKeysFromTransferable(t: Record<string, string> | undefined): MasterKeys {
  const enc = Buffer.from(t?.encryption ?? '', 'base64');
  const id = Buffer.from(t?.id ?? '', 'base64');
  if (enc.length !== MASTER_KEY_SIZE || id.length !== MASTER_KEY_SIZE) {
    throw new HvError('ERR_INVALID_ARGUMENT', 'transferable codec: expected keys.encryption and keys.id of 32 bytes each (base64)');
  }
  return { encryption: enc, id };
}
