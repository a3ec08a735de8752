// The codec of unencrypted repositories: chunk id = SHA-256 of the plain data, objects
// stored as they are (their integrity comes from the id check and the compression frame).

import { hash } from 'node:crypto';
import type { FileType } from '../backend.ts';
import type { ObjectCodec } from './codec.ts';

const PLAIN: ObjectCodec = Object.freeze({
  encrypted: false,
  chunkId(plain: Buffer): string {
    return hash('sha256', plain, 'hex');
  },
  seal(_type: FileType, data: Buffer): Buffer {
    return data;
  },
  sealInto(_type: FileType, parts: readonly Buffer[], _name: string | undefined, out: Buffer, at: number): number {
    let pos = at;
    for (const part of parts) pos += part.copy(out, pos);
    return pos - at;
  },
  open(_type: FileType, _name: string, stored: Buffer): Buffer {
    return stored;
  },
  toTransferable() {
    return { encrypted: false };
  },
});

export function plainCodec(): ObjectCodec {
  return PLAIN;
}
