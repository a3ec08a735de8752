// Worker thread of the chunk pool: hashes, compresses and seals chunks, and opens and
// verifies them on the read side. Protocol in chunk-pool.ts.

import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { parentPort, workerData } from 'node:worker_threads';
import { HvError } from '../errors.ts';
import { openChunk, sealChunkInto, sealedBound } from './chunk-codec.ts';
import { encodeCompressedInto } from './object-format.ts';
import { codecFromTransferable } from './crypto/index.ts';
import { freeArrayBuffer, SPAN_LENT, SPAN_RUN, type WorkerReply, type WorkerRequest } from './chunk-pool.ts';

const port = parentPort!;
// Collect garbage on a schedule. Every chunk opened leaves its size or
// more of dead ArrayBuffers behind (zstd's output, copies), and V8 only collects when its heap fills, not when
// external memory grows, so each worker used to hold 60–100 MiB of dead chunks. A scavenge
// every 4 MiB and a full collection every 64 MiB of chunks handled keep it flat; measured on
// the 2 GiB bench disk: backup peak RSS 400 → ~220 MiB. The schedule counts bytes, not
// chunks: counted per chunk it collected four times as often at 256 KiB chunks, and the
// collector became a quarter of each worker's time. --expose-gc set at run time gives `gc`
// to new contexts.
let collect: ((o: { type: 'minor' | 'major' }) => void) | undefined;
try {
  setFlagsFromString('--expose-gc');
  collect = runInNewContext('gc') as typeof collect;
} catch {
  collect = undefined;
}
const MINOR_EVERY = 4 * 1024 * 1024;
const MAJOR_EVERY = 64 * 1024 * 1024;
let sinceMinor = 0;
let sinceMajor = 0;
const codecReady = Promise.resolve().then(() => codecFromTransferable((workerData as { codec: { encrypted: boolean; keys?: Record<string, string> } }).codec));
const held = new Map<number, { ids: string[]; run: Buffer; slices: { offset: number; length: number }[] }>();

port.on('message', (msg: WorkerRequest) => {
  codecReady.then((codec) => {
    // Garbage follows the plain bytes an open produces. Sealing leaves none worth a collection:
    // chunks are encoded into the lent buffer with one reused zstd context (object-format.ts)
    // and, encrypted, the cipher's output is freed once copied (sealed-object.ts); collections
    // counted per sealed byte were most of a backup's remaining GC time.
    const reply = handle(codec, msg);
    const bytes = msg.op === 'open' ? reply?.data?.byteLength ?? 0 : 0;
    if (reply) port.postMessage(reply, transferList(reply));
    if (collect && bytes > 0) {
      sinceMinor += bytes;
      sinceMajor += bytes;
      if (sinceMajor >= MAJOR_EVERY) {
        sinceMajor = sinceMinor = 0;
        collect({ type: 'major' });
      } else if (sinceMinor >= MINOR_EVERY) {
        sinceMinor = 0;
        collect({ type: 'minor' });
      }
    }
  }, (err: unknown) => port.postMessage(errorReply(msg.tid, err)));
});

function transferList(r: WorkerReply): ArrayBuffer[] {
  const list: ArrayBuffer[] = [];
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
    }
  } catch (err) {
    const h = held.get(msg.tid);
    held.delete(msg.tid);
    // Give the run buffer back with the error, so the caller's pool does not shrink.
    return { ...errorReply(msg.tid, err), ...(h ? { back: h.run } : {}) };
  }
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
