// The codec of encrypted repositories: HMAC-SHA-256 chunk ids (equal data still
// deduplicates; the store cannot confirm a guessed plaintext) and AES-256-GCM sealed objects.
// Keys are imported once as KeyObjects: no per-object key derivation.

import { createHmac, createSecretKey, type KeyObject } from 'node:crypto';
import type { FileType } from '../backend.ts';
import type { ObjectCodec } from './codec.ts';
import { masterKeysToTransferable, type MasterKeys } from './master-keys.ts';
import { openObject, sealObject, sealObjectInto } from './sealed-object.ts';

export class EncryptedCodec implements ObjectCodec {
  readonly encrypted = true;
  readonly #keys: MasterKeys;
  readonly #encKey: KeyObject;
  readonly #idKey: KeyObject;

  constructor(keys: MasterKeys) {
    this.#keys = keys;
    this.#encKey = createSecretKey(keys.encryption);
    this.#idKey = createSecretKey(keys.id);
  }

  chunkId(plain: Buffer): string {
    return createHmac('sha256', this.#idKey).update(plain).digest('hex');
  }

  seal(type: FileType, data: Buffer, name?: string): Buffer {
    return sealObject(this.#encKey, type, data, name);
  }

  sealInto(type: FileType, parts: readonly Buffer[], name: string | undefined, out: Buffer, at: number): number {
    return sealObjectInto(this.#encKey, type, parts, name, out, at);
  }

  open(type: FileType, name: string, stored: Buffer): Buffer {
    return openObject(this.#encKey, type, name, stored);
  }

  toTransferable(): { encrypted: boolean; keys?: Record<string, string> } {
    return { encrypted: true, keys: masterKeysToTransferable(this.#keys) };
  }

  /** Keeps the keys out of console.log / util.inspect output and JSON dumps. */
  toJSON(): unknown {
    return { encrypted: true };
  }
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return 'EncryptedCodec { encrypted: true }';
  }
}
