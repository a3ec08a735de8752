// The codec of unencrypted repositories: chunk id = SHA-256 of the plain data, objects
// stored as they are (their integrity comes from the id check and the compression frame).

import { hash } from 'node:crypto';
import { HvError } from '../../errors.ts';
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
    const length = parts.reduce((a, b) => a + b.length, 0);
    if (out.length - at < length) throw new HvError('ERR_INTERNAL', `sealInto: ${out.length - at} bytes of room for a ${length}-byte object`);
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
