// Worker thread of the chunk pool: hashes, compresses and seals chunks, and opens and
// verifies them on the read side. Protocol in chunk-pool.ts.

import { parentPort, workerData } from 'node:worker_threads';
import { HvError } from '../errors.ts';
import { openChunk, sealChunkInto, sealedBound } from './chunk-codec.ts';
import { encodeCompressedInto, FORMAT_RAW } from './object-format.ts';
import { codecFromTransferable } from './crypto/index.ts';
import { SPAN_INTO, SPAN_LENT, SPAN_RUN, type RangeView, type WorkerError, type WorkerReply, type WorkerRequest } from './chunk-pool.ts';
import { freeArrayBuffer } from './free-buffer.ts';
import { BufferBin } from './buffer-bin.ts';

const port = parentPort!;
// No garbage collection on a schedule any more. Chunks used to leave their size or more of
// dead ArrayBuffers behind, which V8 collects only when its heap fills, so workers ran a
// scavenge every 4 MiB and a full collection every 64 MiB; those collections were most of a
// backup's remaining GC time. Now sealing writes into lent buffers with one reused zstd
// context, and every buffer an open makes is freed explicitly (the stored bytes here, the
// plain bytes by the caller's release()): test/repo/chunk-pool.test.ts measures RSS flat.
type TransferableCodec = { encrypted: boolean; keys?: Record<string, string> };
// The codec comes with the worker, or, for a worker started ahead (ChunkPool.warmUp), in its
// first message.
let gotCodec: (c: TransferableCodec) => void = () => {};
const given = (workerData as { codec?: TransferableCodec }).codec;
const codecReady = (given ? Promise.resolve(given) : new Promise<TransferableCodec>((r) => { gotCodec = r; })).then((c) => codecFromTransferable(c));
const held = new Map<number, { ids: string[]; run: Buffer; slices: { offset: number; length: number }[] }>();

port.on('message', (msg: WorkerRequest) => {
  if (msg.op === 'codec') {
    gotCodec(msg.codec!);
    return;
  }
  codecReady.then((codec) => {
    const reply = handle(codec, msg);
    if (reply) port.postMessage(reply, transferList(reply));
  }, (err: unknown) => port.postMessage(errorReply(msg.tid, err)));
});

function transferList(r: WorkerReply): ArrayBuffer[] {
  const list: ArrayBuffer[] = [];
  for (const o of r.opened ?? []) if (o instanceof Uint8Array) list.push(o.buffer as ArrayBuffer);
  if (r.data) list.push(r.data.buffer as ArrayBuffer);
  if (r.back) list.push(r.back.buffer as ArrayBuffer);
  if (r.arena) list.push(r.arena.buffer as ArrayBuffer);
  return list;
}

function handle(codec: Awaited<typeof codecReady>, msg: WorkerRequest): WorkerReply | undefined {
  try {
    switch (msg.op) {
      case 'hash': {
        const run = Buffer.from(msg.data!.buffer, msg.data!.byteOffset, msg.data!.byteLength);
        const slices = msg.slices!;
        const ids = slices.map((sl) => codec.chunkId(run.subarray(sl.offset, sl.offset + sl.length)));
        held.set(msg.tid, { ids, run, slices });
        return { tid: msg.tid, ids };
      }
      case 'seal': {
        const h = held.get(msg.tid)!;
        held.delete(msg.tid);
        if (msg.into) return { tid: msg.tid, spans: sealInto(codec, h, msg.which ?? [], msg.into, msg.level), back: h.run };
        let arena = Buffer.from(msg.arena!.buffer, msg.arena!.byteOffset, msg.arena!.byteLength);
        const spans: number[] = [];
        let at = 0;
        for (const i of msg.which ?? []) {
          const sl = h.slices[i]!;
          const need = sealedBound(sl.length);
          if (at + need > arena.length) {
            // The lender sizes the buffer for the worst case; this only guards that promise.
            const bigger = Buffer.allocUnsafeSlow(Math.max(2 * arena.length, at + need));
            arena.copy(bigger, 0, 0, at);
            arena = bigger;
          }
          const plain = h.run.subarray(sl.offset, sl.offset + sl.length);
          if (!codec.encrypted) {
            // Unencrypted, a raw chunk is its format byte and the run's own bytes: the main
            // thread copies it from the run buffer, so it is not copied here first.
            const n = encodeCompressedInto(plain, arena, at, msg.level);
            if (n === 0) spans.push(SPAN_RUN, sl.offset, sl.length);
            else spans.push(SPAN_LENT, at, n);
            at += n;
            continue;
          }
          const n = sealChunkInto(codec, h.ids[i]!, plain, arena, at, msg.level);
          spans.push(SPAN_LENT, at, n);
          at += n;
        }
        return { tid: msg.tid, spans, arena, back: h.run };
      }
      case 'drop': {
        const h = held.get(msg.tid);
        held.delete(msg.tid);
        return h ? { tid: msg.tid, back: h.run } : { tid: msg.tid };
      }
      case 'open': {
        const stored = Buffer.from(msg.data!.buffer, msg.data!.byteOffset, msg.data!.byteLength);
        const plain = openChunk(codec, msg.id!, stored, msg.verify ?? true);
        // Raw chunks are a view of the stored bytes after the format byte: send that view
        // (with its offset) and its buffer back instead of copying 1 MiB.
        if (plain.buffer === stored.buffer) return { tid: msg.tid, data: plain };
        freeArrayBuffer(stored.buffer);
        return { tid: msg.tid, data: ownBuffer(plain) };
      }
      case 'openRange': {
        const range = Buffer.from(msg.data!.buffer, msg.data!.byteOffset, msg.data!.byteLength);
        const ids = msg.ids!;
        const seen = new Set<ArrayBufferLike>([range.buffer]);
        for (const ab of msg.spare ?? []) keepSpare(ab);
        const opened = msg.slices!.map((sl, k): Uint8Array | WorkerError | RangeView => {
          try {
            const plain = openChunk(codec, ids[k]!, range.subarray(sl.offset, sl.offset + sl.length), msg.verify ?? true, takeSpare);
            // A raw chunk is a view of the range: it goes back as its place in the range. The
            // range always goes back (the caller reuses it once its last raw chunk is released,
            // or at once if it has none). Any other chunk goes back in a buffer of its own.
            if (plain.buffer === range.buffer) {
              return { at: plain.byteOffset, length: plain.length };
            }
            // A spare is sent back whole, however much of it the chunk fills.
            const own = lentSpares.has(plain.buffer) ? plain : ownBuffer(plain);
            if (seen.has(own.buffer)) return new Uint8Array(own);
            seen.add(own.buffer);
            return own;
          } catch (err) {
            return errorReply(msg.tid, err).error!;
          }
        });
        return { tid: msg.tid, opened, data: new Uint8Array(range.buffer, 0, range.buffer.byteLength) };
      }
    }
  } catch (err) {
    const h = held.get(msg.tid);
    held.delete(msg.tid);
    // Give the run buffer back with the error, so the caller's pool does not shrink.
    return { ...errorReply(msg.tid, err), ...(h ? { back: h.run } : {}) };
  }
}

/**
 * Seal the chunks `which` of a held run back to back into `region` (shared memory: a region of
 * the pack they go into), raw ones too, and say where each is (SPAN_INTO triples). The copy of
 * a raw chunk happens here, on a worker, rather than on the main thread that assembles packs.
 */
function sealInto(codec: Awaited<typeof codecReady>, h: { ids: string[]; run: Buffer; slices: { offset: number; length: number }[] }, which: number[], region: Uint8Array, level?: number): number[] {
  const out = Buffer.from(region.buffer, region.byteOffset, region.byteLength);
  const spans: number[] = [];
  let at = 0;
  for (const i of which) {
    const sl = h.slices[i]!;
    if (at + sealedBound(sl.length) > out.length) throw new HvError('ERR_INTERNAL', `seal: ${out.length} bytes of room for chunks that may take ${at + sealedBound(sl.length)}`);
    const plain = h.run.subarray(sl.offset, sl.offset + sl.length);
    let n: number;
    if (codec.encrypted) n = sealChunkInto(codec, h.ids[i]!, plain, out, at, level);
    else {
      n = encodeCompressedInto(plain, out, at, level);
      if (n === 0) {
        out[at] = FORMAT_RAW;
        // fill() with a buffer of the range's length is one native memcpy; copy() into shared
        // memory is V8's element-wise memmove, at half the speed (a quarter of the bench disk is raw).
        if (plain.length > 0) out.fill(plain, at + 1, at + 1 + plain.length);
        n = 1 + plain.length;
      }
    }
    spans.push(SPAN_INTO, at, n);
    at += n;
  }
  return spans;
}

/**
 * Recycled buffers the pool sent (openRange's `spare`), for chunks to be decompressed into:
 * a chunk in a buffer the main thread has written before costs no page faults, where a new
 * one costs one per 4 KiB (a third of a restore's CPU went to faults and unmapping on the
 * bench machine). At most SPARES_KEPT wait here; more are freed.
 */
const SPARES_KEPT = 16;
const spares = new BufferBin<ArrayBuffer>({ maxItems: SPARES_KEPT });
/** Spares given out to decompress into: such a chunk goes back in the whole spare. */
const lentSpares = new WeakSet<ArrayBufferLike>();

function keepSpare(ab: ArrayBuffer): void {
  if (!spares.give(ab)) freeArrayBuffer(ab);
}

/** A spare of at least `size` bytes and not more than twice that, or undefined. */
function takeSpare(size: number): Buffer | undefined {
  const ab = spares.take(size, 2 * size);
  if (!ab) return undefined;
  lentSpares.add(ab);
  return Buffer.from(ab);
}

/**
 * A buffer whose ArrayBuffer can be transferred instead of copied: one that (nearly) fills
 * a buffer of its own. Small buffers live in Node's shared 8 KiB pool and are copied.
 */
function ownBuffer(b: Buffer): Uint8Array {
  const ab = b.buffer;
  if (b.byteOffset === 0 && b.byteLength === ab.byteLength) return b;
  if (ab.byteLength > Buffer.poolSize && ab.byteLength - b.byteLength <= 4096) return b;
  return new Uint8Array(b);
}

function errorReply(tid: number, err: unknown): WorkerReply {
  const e = err as HvError;
  return { tid, error: { code: e instanceof HvError ? e.code : 'ERR_INTERNAL', message: e?.message ?? String(err), target: e?.target } };
}
