// The payload inside every stored chunk and manifest (before seal, after open):
//   byte 0: format byte — 0x00 = raw bytes follow, 0x01 = one zstd frame follows.
// Data zstd does not shrink is stored raw, so incompressible chunks cost one byte and
// no decompression; data whose samples do not shrink is stored raw without trying. Pure functions: no I/O.

import { zstdCompressSync, zstdDecompressSync, constants as zc } from 'node:zlib';
import { HvError } from '../errors.ts';

export const FORMAT_RAW = 0x00;
export const FORMAT_ZSTD = 0x01;
/** zstd level for chunks: level 1 measured best speed/ratio trade-off (bench/repo/chunk-size.ts). */
export const ZSTD_LEVEL = 1;

/** Bytes per probe sample; three samples (start, middle, end) are compressed together. */
const PROBE = 4096;
/** The samples must shrink below this fraction, else the whole object is stored raw untried. */
const PROBE_RATIO = 0.97;

/**
 * True when three 4 KiB samples of `plain` do not compress: random or already compressed
 * data. zstd level 1 runs at about the same speed on random data as on text (~400 MB/s a
 * core here) only to find nothing, while the probe costs ~50 µs per 256 KiB, so on the
 * bench disk (a quarter random) this saves a third of the backup's CPU. A mixed chunk the
 * samples miss is stored raw: a little space, never correctness (the id is of the plain bytes).
 */
export function looksIncompressible(plain: Buffer): boolean {
  if (plain.length < 16 * PROBE) return false;
  const mid = (plain.length >> 1) - PROBE / 2;
  const sample = Buffer.concat([plain.subarray(0, PROBE), plain.subarray(mid, mid + PROBE), plain.subarray(plain.length - PROBE)]);
  const packed = zstdCompressSync(sample, { params: { [zc.ZSTD_c_compressionLevel]: ZSTD_LEVEL, [zc.ZSTD_c_checksumFlag]: 0 }, chunkSize: outputRoom(sample.length) });
  const no = packed.length >= sample.length * PROBE_RATIO;
  freeScratch(sample);
  freeScratch(packed);
  return no;
}

/**
 * Output buffer for one zstd call: zstd's bound for `n` bytes, so the frame comes out in one
 * buffer that freeScratch can release. Node's default (16 KiB) makes a 256 KiB chunk come out
 * as a dozen pieces, concatenated into yet another buffer.
 */
function outputRoom(n: number): number {
  return Math.max(64, n + (n >> 8) + 1024);
}

/**
 * Free a scratch buffer this module allocated now, not at V8's next collection. V8 collects
 * ArrayBuffers only once their external size has grown by tens of MiB, so a worker sealing
 * chunks held 60–100 MiB of dead zstd output and needed a forced collection every few MiB;
 * those collections were ~12 % of a backup's CPU. Buffers in Node's shared 8 KiB pool are left alone.
 */
function freeScratch(b: Buffer): void {
  const ab = b.buffer as ArrayBuffer & { transfer?: (n: number) => ArrayBuffer; detached?: boolean };
  if (ab.byteLength > Buffer.poolSize && typeof ab.transfer === 'function' && !ab.detached) ab.transfer(0);
}

export function encodeObject(plain: Buffer, level = ZSTD_LEVEL): Buffer {
  if (looksIncompressible(plain)) return Buffer.concat([Buffer.from([FORMAT_RAW]), plain]);
  const packed = zstdCompressSync(plain, { params: { [zc.ZSTD_c_compressionLevel]: level, [zc.ZSTD_c_checksumFlag]: 0 }, chunkSize: outputRoom(plain.length) });
  try {
    if (packed.length < plain.length) return Buffer.concat([Buffer.from([FORMAT_ZSTD]), packed]);
    return Buffer.concat([Buffer.from([FORMAT_RAW]), plain]);
  } finally {
    freeScratch(packed);
  }
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
