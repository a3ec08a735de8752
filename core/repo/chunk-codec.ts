// What turns a plain chunk into its stored bytes and back: id, compression, seal,
// verification. Pure and synchronous, so it runs the same inside a worker thread
// (chunk-worker.ts) or inline.

import { HvError } from '../errors.ts';
import type { ObjectCodec } from './crypto/codec.ts';
import { decodeObject, encodeObject, encodeParts } from './object-format.ts';
import { SEAL_OVERHEAD } from './crypto/index.ts';
import { zstdBound } from './zstd-session.ts';

/** Seal a chunk; the id is authenticated with it when encrypted, so a chunk renamed in the store fails to open. */
export function sealChunk(codec: ObjectCodec, id: string, plain: Buffer, level?: number): Buffer {
  return codec.seal('chunks', encodeObject(plain, level), id);
}

/**
 * The room to give a chunk of `plainLength` bytes to be sealed into: at least the most its
 * stored bytes take, and room for zstd's worst case, so that it compresses in place in one
 * pass (encodeCompressedInto) rather than through a scratch buffer and a copy.
 */
export function sealedBound(plainLength: number): number {
  return 1 + Math.max(plainLength, zstdBound(plainLength)) + SEAL_OVERHEAD;
}

/**
 * sealChunk written into `out` at `at` (room: sealedBound); returns the bytes written. The
 * format byte and the body go to the codec as parts, never joined first (unencrypted, sealing
 * copies them; encrypted, the cipher reads them).
 */
export function sealChunkInto(codec: ObjectCodec, id: string, plain: Buffer, out: Buffer, at: number, level?: number): number {
  const [format, body] = encodeParts(plain, level);
  return codec.sealInto('chunks', [FORMAT_BYTES[format]!, body], id, out, at);
}

/** The one-byte buffers of each format byte, to seal in front of a body without joining them. */
const FORMAT_BYTES = [Buffer.from([0]), Buffer.from([1])];

/** Stored bytes → plain bytes; with verify, the plain bytes must hash to `id`. */
export function openChunk(codec: ObjectCodec, id: string, stored: Buffer, verify: boolean, outFor?: (size: number) => Buffer | undefined): Buffer {
  const what = `<chunks/${id}>`;
  let plain: Buffer;
  try {
    plain = decodeObject(codec.open('chunks', id, stored), what, undefined, outFor);
  } catch (err) {
    if (err instanceof HvError) throw err;
    throw new HvError('ERR_CORRUPT', `${what}: cannot be decoded (${(err as Error).message})`, { target: what, cause: err });
  }
  if (verify) {
    const actual = codec.chunkId(plain);
    if (actual !== id) {
      throw new HvError('ERR_CORRUPT', `${what}: content does not match its id (hashes to ${actual.slice(0, 16)}…)`, { target: what, data: { chunk: id } });
    }
  }
  return plain;
}
