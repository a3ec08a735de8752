// The sealed-object layout of encrypted repositories (docs/repository-format.md, "Encryption"):
//
//   offset 0   1 byte   magic/version 0xE1
//   offset 1   1 byte   flags: bit 0 = the object's name is bound in the AAD; other bits 0
//   offset 2  12 bytes  nonce, fresh random per object
//   offset 14  n bytes  AES-256-GCM ciphertext of the object's bytes
//   last      16 bytes  GCM tag
//
// AAD = the 2 header bytes || type (ASCII) || 0x00 || name (ASCII, only when flag bit 0 is set).
// The header is in the AAD, so flipping the flag (to drop the name binding) fails authentication.
// Pure functions on buffers: no I/O, no key management.

import { createCipheriv, createDecipheriv, randomFillSync, type KeyObject } from 'node:crypto';
import { HvError } from '../../errors.ts';
import type { FileType } from '../backend.ts';
import { freeOwnBuffer } from '../free-buffer.ts';

export const SEALED_MAGIC = 0xe1;
export const FLAG_NAME_BOUND = 0x01;
export const HEADER_SIZE = 2;
export const NONCE_SIZE = 12;
export const TAG_SIZE = 16;
export const SEAL_OVERHEAD = HEADER_SIZE + NONCE_SIZE + TAG_SIZE;
const CIPHER = 'aes-256-gcm';

/** Additional authenticated data: header, type and (when bound) name, 0x00-separated. */
export function sealedAad(header: Buffer, type: FileType, name: string | undefined): Buffer {
  const label = name === undefined ? `${type}\0` : `${type}\0${name}`;
  return Buffer.concat([header, Buffer.from(label, 'latin1')]);
}

function checkName(name: string | undefined): void {
  // A 0x00 or non-ASCII byte would make the AAD encoding ambiguous; object names are hex or fixed words.
  if (name !== undefined && !/^[\x21-\x7e]+$/.test(name)) {
    throw new HvError('ERR_INVALID_ARGUMENT', `cannot seal an object named ${JSON.stringify(name)}: names must be printable ASCII`);
  }
}

export function sealObject(key: KeyObject, type: FileType, data: Buffer, name?: string): Buffer {
  const out = Buffer.allocUnsafe(SEAL_OVERHEAD + data.length);
  sealObjectInto(key, type, [data], name, out, 0);
  return out;
}

/**
 * sealObject of the bytes `parts` (back to back) written into `out` at `at`, which must have
 * room for SEAL_OVERHEAD + their length; returns the bytes written. Workers seal chunks into
 * a lent buffer this way: the format byte and the body go in as they are, without first
 * being joined, and the cipher's output is freed as soon as it is copied.
 */
export function sealObjectInto(key: KeyObject, type: FileType, parts: readonly Buffer[], name: string | undefined, out: Buffer, at: number): number {
  checkName(name);
  const length = parts.reduce((a, b) => a + b.length, 0);
  if (out.length - at < SEAL_OVERHEAD + length) throw new HvError('ERR_INTERNAL', `sealObjectInto: ${out.length - at} bytes of room for a ${length}-byte object`);
  const header = out.subarray(at, at + HEADER_SIZE);
  header[0] = SEALED_MAGIC;
  header[1] = name === undefined ? 0 : FLAG_NAME_BOUND;
  randomFillSync(out, at + HEADER_SIZE, NONCE_SIZE);
  const nonce = out.subarray(at + HEADER_SIZE, at + HEADER_SIZE + NONCE_SIZE);
  const cipher = createCipheriv(CIPHER, key, nonce, { authTagLength: TAG_SIZE });
  cipher.setAAD(sealedAad(header, type, name));
  let pos = at + HEADER_SIZE + NONCE_SIZE;
  for (const part of parts) {
    const enc = cipher.update(part);
    pos += enc.copy(out, pos);
    freeOwnBuffer(enc);
  }
  pos += cipher.final().copy(out, pos);
  pos += cipher.getAuthTag().copy(out, pos);
  return pos - at;
}

function corrupt(type: FileType, name: string, problem: string): HvError {
  const target = `<${type}/${name}>`;
  return new HvError('ERR_CORRUPT', `${target}: ${problem}`, { target });
}

/** Inverse of sealObject. Never returns bytes that did not authenticate. */
export function openObject(key: KeyObject, type: FileType, name: string, stored: Buffer): Buffer {
  if (stored.length < SEAL_OVERHEAD) {
    throw corrupt(type, name, `encrypted object too short (${stored.length} bytes, at least ${SEAL_OVERHEAD} expected)`);
  }
  if (stored[0] !== SEALED_MAGIC) {
    throw corrupt(type, name, `not an encrypted object (header byte 0x${stored[0]!.toString(16).padStart(2, '0')}, expected 0xe1)`);
  }
  const flags = stored[1]!;
  if ((flags & ~FLAG_NAME_BOUND) !== 0) {
    throw corrupt(type, name, `unknown encryption flags 0x${flags.toString(16).padStart(2, '0')}`);
  }
  const header = stored.subarray(0, HEADER_SIZE);
  const nonce = stored.subarray(HEADER_SIZE, HEADER_SIZE + NONCE_SIZE);
  const tag = stored.subarray(stored.length - TAG_SIZE);
  const decipher = createDecipheriv(CIPHER, key, nonce, { authTagLength: TAG_SIZE });
  decipher.setAAD(sealedAad(header, type, flags & FLAG_NAME_BOUND ? name : undefined));
  decipher.setAuthTag(tag);
  const plain = decipher.update(stored.subarray(HEADER_SIZE + NONCE_SIZE, stored.length - TAG_SIZE));
  try {
    decipher.final();
  } catch {
    throw corrupt(type, name, 'authentication failed: the object was damaged or altered, or belongs to another repository or name');
  }
  return plain;
}
