// One zstd compression context per thread, reused for every chunk. node:zlib's one-shot
// zstdCompressSync builds a stream object, a native handle and a fresh ZSTD_CCtx per call and
// returns its frame in new buffers; for a 256 KiB chunk plus its 12 KiB probe that set-up was
// ~10 % of a worker's time and most of its garbage (perf/--cpu-prof on the 2 GiB bench backup).
//
// Node has no public API for reusing a context synchronously, so this drives the handle under
// a ZstdCompress object the way node:zlib's own zlibBufferSync does (handle.writeSync, then the
// handle's write state [availOut, availIn]). Those are internals: the session checks their shape
// once and every call checks the result, and anything unexpected falls back to zstdCompressSync
// for good, which produces an equally valid frame. A frame ended with ZSTD_e_end leaves the
// context ready for the next frame, with the same parameters.

import { constants as zc, createZstdCompress, createZstdDecompress, zstdCompressSync } from 'node:zlib';

interface RawHandle {
  writeSync(flush: number, input: Uint8Array, inOff: number, inLen: number, out: Uint8Array, outOff: number, outLen: number): void;
  reset(): void;
}

/** zstd's worst case for n input bytes (ZSTD_COMPRESSBOUND), with room for the frame header. */
export function zstdBound(n: number): number {
  return n + (n >>> 8) + (n < 128 * 1024 ? (128 * 1024 - n) >>> 11 : 0) + 64;
}

/**
 * The native handle and write state under a node:zlib stream made by `make`, when they have the
 * shape both sessions drive, else undefined (the sessions then use the public API).
 */
function streamInternals(make: () => unknown): { handle: RawHandle; state: Uint32Array; owner: unknown } | undefined {
  try {
    const z = make() as { _handle?: RawHandle; _writeState?: Uint32Array; on(ev: string, fn: () => void): void };
    if (typeof z._handle?.writeSync !== 'function' || typeof z._handle.reset !== 'function' || !(z._writeState instanceof Uint32Array) || z._writeState.length < 2) return undefined;
    // node:zlib reports a bad frame by destroying the stream, which emits 'error': never unhandled.
    z.on('error', () => {});
    return { handle: z._handle, state: z._writeState, owner: z };
  } catch {
    return undefined;
  }
}

export class ZstdSession {
  readonly level: number;
  #handle: RawHandle | undefined;
  #state: Uint32Array | undefined;
  #scratch: Buffer = Buffer.alloc(0);
  /** Kept so the handle is not collected while in use. */
  #owner: unknown;

  /** `reuse: false` starts on the fallback path (tests compare both). */
  constructor(level: number, opts: { reuse?: boolean } = {}) {
    this.level = level;
    if (opts.reuse === false) return;
    const s = streamInternals(() => createZstdCompress({ params: { [zc.ZSTD_c_compressionLevel]: level, [zc.ZSTD_c_checksumFlag]: 0 } }));
    if (s) [this.#handle, this.#state, this.#owner] = [s.handle, s.state, s.owner];
  }

  /** True while the reused context is in use (false after a fallback). */
  get reusing(): boolean {
    return this.#handle !== undefined;
  }

  /**
   * Compress `plain` into one zstd frame. The result is a view of a scratch buffer that the
   * next call overwrites: copy what you keep.
   */
  compress(plain: Buffer): Buffer {
    const room = zstdBound(plain.length);
    if (this.#handle) {
      if (this.#scratch.length < room) this.#scratch = Buffer.allocUnsafeSlow(room);
      try {
        this.#handle.writeSync(zc.ZSTD_e_end, plain, 0, plain.length, this.#scratch, 0, room);
        const [availOut, availIn] = this.#state!;
        // Done means all input taken and the frame ended inside the room zstd guarantees.
        if (availIn === 0 && availOut! > 0 && availOut! <= room) return this.#scratch.subarray(0, room - availOut!);
      } catch {
        // fall through to the public API below
      }
      this.#handle = undefined;
      this.#state = undefined;
      this.#owner = undefined;
    }
    const frame = zstdCompressSync(plain, { params: { [zc.ZSTD_c_compressionLevel]: this.level, [zc.ZSTD_c_checksumFlag]: 0 }, chunkSize: room });
    void this.#owner;
    return frame;
  }

  /**
   * Compress `plain` into one zstd frame written at `out[at]`, when the frame is shorter than
   * `limit` bytes and fits in `out` with room to spare: its length, else 0. zstd may use the
   * room after the frame as scratch: everything from `at` to the end of `out` is garbage after.
   * zstd writes the frame itself: compress() then a copy made a second pass over every frame,
   * and into a pack's shared memory V8 copies with its slow element-wise memmove (~6 % of a
   * full backup's CPU on the bench, perf, with the raw chunks' copies).
   */
  compressInto(plain: Buffer, out: Buffer, at: number, limit: number): number {
    const room = out.length - at;
    // Only with room for zstd's worst case: a frame is then never cut short. (One cut short
    // leaves the context mid-frame, and node:zlib's reset() also resets its parameters.)
    if (this.#handle && room >= zstdBound(plain.length)) {
      try {
        this.#handle.writeSync(zc.ZSTD_e_end, plain, 0, plain.length, out, at, room);
        const [availOut, availIn] = this.#state!;
        if (availIn === 0 && availOut! > 0 && availOut! <= room) {
          const n = room - availOut!;
          return n < limit ? n : 0;
        }
      } catch {
        // fall through: drop the context, as compress() does on any surprise
      }
      this.#handle = undefined;
      this.#state = undefined;
      this.#owner = undefined;
    }
    const frame = this.compress(plain);
    if (frame.length >= limit || frame.length >= room) return 0;
    out.fill(frame, at, at + frame.length);
    return frame.length;
  }
}

/**
 * The content size a zstd frame's header states, or undefined when it states none (or this
 * is not a zstd frame). Frames made in one call (ZstdSession, zstdCompressSync) state it.
 * RFC 8878 3.1.1.1: magic, Frame_Header_Descriptor, [Window_Descriptor], [Dictionary_ID],
 * [Frame_Content_Size].
 */
export function zstdContentSize(frame: Buffer): number | undefined {
  if (frame.length < 6 || frame.readUInt32LE(0) !== 0xfd2fb528) return undefined;
  const fhd = frame[4]!;
  const fcsFlag = fhd >> 6;
  const singleSegment = (fhd >> 5) & 1;
  const dictBytes = [0, 1, 2, 4][fhd & 3]!;
  const fcsBytes = fcsFlag === 0 ? singleSegment : 1 << fcsFlag;
  if (fcsBytes === 0) return undefined;
  const at = 5 + (singleSegment ? 0 : 1) + dictBytes;
  if (frame.length < at + fcsBytes) return undefined;
  switch (fcsBytes) {
    case 1: return frame[at]!;
    case 2: return frame.readUInt16LE(at) + 256;
    case 4: return frame.readUInt32LE(at);
    default: {
      const v = frame.readBigUInt64LE(at);
      return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : undefined;
    }
  }
}

/**
 * One zstd decompression context per thread, reused for every frame, the counterpart of
 * ZstdSession: zstdDecompressSync made a stream object, a native handle and a fresh ZSTD_DCtx
 * (with its ~160 KB of tables to set up) per chunk, ~5 % of a restore's CPU plus the garbage
 * V8's marking threads then walked (perf on a restore of the 2 GiB bench disk).
 *
 * Only frames that state their content size take the fast path: zstd writes straight into an
 * output buffer of exactly that size. The frame must end there, with all its input used; any
 * surprise (an error, a short or long frame, trailing bytes) drops the context for good and
 * returns undefined, and the caller decodes with zstdDecompressSync, which reports the
 * problem as it always did. A context is never reused after a frame that did not end cleanly.
 */
export class ZstdDecompressSession {
  #handle: RawHandle | undefined;
  #state: Uint32Array | undefined;
  #owner: unknown;
  /** True when this Node let the context be reused at all (it may since have been dropped). */
  readonly worked: boolean = false;

  /** `reuse: false` always returns undefined (tests compare both paths). */
  constructor(opts: { reuse?: boolean } = {}) {
    if (opts.reuse === false) return;
    const s = streamInternals(() => createZstdDecompress());
    if (s) [this.#handle, this.#state, this.#owner, this.worked] = [s.handle, s.state, s.owner, true];
  }

  /** True while the reused context is in use. */
  get reusing(): boolean {
    return this.#handle !== undefined;
  }

  /**
   * The frame's content (`size` bytes, as its header states) in a buffer of its own, or in
   * `into` (its first `size` bytes, when it has room), or undefined: decode it another way.
   */
  decompress(frame: Buffer, size: number, into?: Buffer): Buffer | undefined {
    if (!this.#handle || size <= 0) return undefined;
    const out = into && into.length >= size ? into.subarray(0, size) : Buffer.allocUnsafeSlow(size);
    const owner = this.#owner as { destroyed?: boolean; _handle?: unknown };
    try {
      // A clean context every frame, so nothing of the previous frame can carry over, however
      // it ended. (Node's reset() makes a new ZSTD_DCtx, ~1 % of a restore's worker CPU in perf;
      // still cheaper than a stream object and its handle per frame.)
      this.#handle.reset();
      this.#handle.writeSync(zc.ZSTD_e_end, frame, 0, frame.length, out, 0, size);
      // A bad frame destroys the stream during writeSync and leaves the write state as it was:
      // check the handle is alive before trusting [availOut, availIn].
      const [availOut, availIn] = this.#state!;
      if (!owner.destroyed && owner._handle === this.#handle && availOut === 0 && availIn === 0) return out;
    } catch {
      // fall through: drop the context
    }
    this.#handle = undefined;
    this.#state = undefined;
    this.#owner = undefined;
    return undefined;
  }
}
