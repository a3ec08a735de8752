// The payload inside every stored chunk and manifest (before seal, after open):
//   byte 0: format byte — 0x00 = raw bytes follow, 0x01 = one zstd frame follows.
// Data zstd does not shrink is stored raw, so incompressible chunks cost one byte and
// no decompression; data whose samples do not shrink is stored raw without trying. Pure functions: no I/O.

import { zstdDecompressSync } from 'node:zlib';
import { HvError } from '../errors.ts';
import { ZstdDecompressSession, ZstdSession, zstdContentSize } from './zstd-session.ts';

export const FORMAT_RAW = 0x00;
export const FORMAT_ZSTD = 0x01;
/** zstd level for chunks: level 1 measured best speed/ratio trade-off (bench/repo/chunk-size.ts). */
export const ZSTD_LEVEL = 1;

/** Bytes per probe sample; three samples (start, middle, end) are compressed together. */
const PROBE = 4096;
/** The samples must shrink below this fraction, else the whole object is stored raw untried. */
const PROBE_RATIO = 0.97;

/** One reused zstd context per level, per thread (each worker has its own copy of this module). */
const sessions = new Map<number, ZstdSession>();
function session(level: number): ZstdSession {
  let s = sessions.get(level);
  if (!s) sessions.set(level, (s = new ZstdSession(level)));
  return s;
}
let sampleScratch: Buffer | undefined;

/**
 * True when three 4 KiB samples of `plain` do not compress: random or already compressed
 * data. zstd level 1 runs at about the same speed on random data as on text (~400 MB/s a
 * core here) only to find nothing, while the probe costs ~50 µs per 256 KiB, so on the
 * bench disk (a quarter random) this saves a third of the backup's CPU. A mixed chunk the
 * samples miss is stored raw: a little space, never correctness (the id is of the plain bytes).
 */
export function looksIncompressible(plain: Buffer): boolean {
  if (plain.length < 16 * PROBE) return false;
  const sample = (sampleScratch ??= Buffer.allocUnsafeSlow(3 * PROBE));
  const mid = (plain.length >> 1) - PROBE / 2;
  plain.copy(sample, 0, 0, PROBE);
  plain.copy(sample, PROBE, mid, mid + PROBE);
  plain.copy(sample, 2 * PROBE, plain.length - PROBE);
  return session(ZSTD_LEVEL).compress(sample).length >= sample.length * PROBE_RATIO;
}

/**
 * Format byte and body of an object; a zstd body is a view of this thread's scratch buffer,
 * good until the next encode: copy or seal it before that.
 */
export function encodeParts(plain: Buffer, level = ZSTD_LEVEL): [format: number, body: Buffer] {
  if (!looksIncompressible(plain)) {
    const frame = session(level).compress(plain);
    if (frame.length < plain.length) return [FORMAT_ZSTD, frame];
  }
  return [FORMAT_RAW, plain];
}

/**
 * The stored payload: format byte, then the zstd frame or the raw bytes. Always a buffer of
 * its own (never a view of `plain` or of a scratch buffer), so a worker can transfer it.
 */
export function encodeObject(plain: Buffer, level = ZSTD_LEVEL): Buffer {
  const [format, body] = encodeParts(plain, level);
  const out = Buffer.allocUnsafeSlow(1 + body.length);
  out[0] = format;
  body.copy(out, 1);
  return out;
}

/**
 * The compressed form of encodeObject written into `out` at `at` (room: 1 + plain.length);
 * returns the bytes written, or 0 when the object is to be stored raw (format byte 0x00 and
 * `plain` as it is), which the caller then writes from where `plain` already is.
 */
export function encodeCompressedInto(plain: Buffer, out: Buffer, at: number, level = ZSTD_LEVEL): number {
  if (out.length - at < 1 + plain.length) throw new HvError('ERR_INTERNAL', `encodeCompressedInto: ${out.length - at} bytes of room for a ${plain.length}-byte object`);
  if (plain.length === 0 || looksIncompressible(plain)) return 0;
  // Straight into `out`, with all its room (zstd's one-pass path wants its worst case), kept
  // only when shorter than the plain bytes, as encodeParts decides.
  const n = session(level).compressInto(plain, out, at + 1, plain.length);
  if (n === 0) return 0;
  out[at] = FORMAT_ZSTD;
  return 1 + n;
}

/** This thread's reused decompression context (each worker has its own copy of this module). */
let decoder: ZstdDecompressSession | undefined;

/** The context, made again after a bad frame dropped it (unless this Node cannot reuse one at all). */
function zstdDecoder(): ZstdDecompressSession {
  if (!decoder || (!decoder.reusing && decoder.worked)) decoder = new ZstdDecompressSession();
  return decoder;
}

/**
 * Inverse of encodeObject. `what` names the object in errors, e.g. "<chunks/ab12…>".
 * `outFor(size)`: a buffer to decompress into, when the caller has one of at least `size`
 * bytes to reuse (the result is then a view of its start); else a new one is made.
 */
export function decodeObject(payload: Buffer, what: string, maxSize = 256 * 1024 * 1024, outFor?: (size: number) => Buffer | undefined): Buffer {
  if (payload.length === 0) throw new HvError('ERR_CORRUPT', `${what}: empty object`, { target: what });
  const body = payload.subarray(1);
  switch (payload[0]) {
    case FORMAT_RAW:
      return body;
    case FORMAT_ZSTD:
      try {
        // One output buffer of the size the frame states: Node's default 16 KiB pieces, then
        // concatenated, tripled the garbage a restore leaves per chunk.
        const size = zstdContentSize(body);
        if (size !== undefined && size <= maxSize) {
          const out = zstdDecoder().decompress(body, size, outFor?.(size));
          if (out) return out;
        }
        const chunkSize = size !== undefined && size <= maxSize ? Math.max(64, size + 1) : undefined;
        return zstdDecompressSync(body, { maxOutputLength: maxSize, ...(chunkSize ? { chunkSize } : {}) });
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
