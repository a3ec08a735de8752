// The payload inside every stored chunk and manifest (before seal, after open):
//   byte 0: format byte — 0x00 = raw bytes follow, 0x01 = one zstd frame follows.
// Data zstd does not shrink is stored raw, so incompressible chunks cost one byte and
// no decompression. Pure functions: no I/O.

import { zstdCompressSync, zstdDecompressSync, constants as zc } from 'node:zlib';
import { HvError } from '../errors.ts';

export const FORMAT_RAW = 0x00;
export const FORMAT_ZSTD = 0x01;
/** zstd level for chunks: level 1 measured best speed/ratio trade-off (bench/repo/chunk-size.ts). */
export const ZSTD_LEVEL = 1;

export function encodeObject(plain: Buffer, level = ZSTD_LEVEL): Buffer {
  const packed = zstdCompressSync(plain, { params: { [zc.ZSTD_c_compressionLevel]: level, [zc.ZSTD_c_checksumFlag]: 0 } });
  if (packed.length < plain.length) {
    return Buffer.concat([Buffer.from([FORMAT_ZSTD]), packed]);
  }
  return Buffer.concat([Buffer.from([FORMAT_RAW]), plain]);
}

/** Inverse of encodeObject. `what` names the object in errors, e.g. "<chunks/ab12…>". */
export function decodeObject(payload: Buffer, what: string, maxSize = 256 * 1024 * 1024): Buffer {
  if (payload.length === 0) throw new HvError('ERR_CORRUPT', `${what}: empty object`, { target: what });
  const body = payload.subarray(1);
  switch (payload[0]) {
    case FORMAT_RAW:
      return body;
    case FORMAT_ZSTD:
      try {
        return zstdDecompressSync(body, { maxOutputLength: maxSize });
      } catch (err) {
        throw new HvError('ERR_CORRUPT', `${what}: zstd frame does not decode (${(err as Error).message})`, { target: what, cause: err });
      }
    default:
      throw new HvError('ERR_CORRUPT', `${what}: unknown format byte 0x${payload[0]!.toString(16).padStart(2, '0')}`, { target: what });
  }
}

const ZEROS = Buffer.alloc(1024 * 1024);

/** True when every byte is zero; such chunks are never stored (the manifest says null). memcmp speed. */
export function isAllZero(buf: Buffer): boolean {
  for (let off = 0; off < buf.length; off += ZEROS.length) {
    const part = buf.subarray(off, Math.min(buf.length, off + ZEROS.length));
    if (!part.equals(ZEROS.subarray(0, part.length))) return false;
  }
  return true;
}
