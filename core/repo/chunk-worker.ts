// Worker thread of the chunk pool: hashes, compresses and seals chunks, and opens and
// verifies them on the read side. Protocol in chunk-pool.ts.

import { parentPort, workerData } from 'node:worker_threads';
import { HvError } from '../errors.ts';
import { openChunk, sealChunk } from './chunk-codec.ts';
import { codecFromTransferable } from './crypto/index.ts';
import type { WorkerReply, WorkerRequest } from './chunk-pool.ts';

const port = parentPort!;
const codecReady = Promise.resolve().then(() => codecFromTransferable((workerData as { codec: { encrypted: boolean; keys?: Record<string, string> } }).codec));
const held = new Map<number, { id: string; plain: Buffer }>();

port.on('message', (msg: WorkerRequest) => {
  codecReady.then((codec) => {
    const reply = handle(codec, msg);
    if (reply) port.postMessage(reply, reply.data ? [reply.data.buffer as ArrayBuffer] : []);
  }, (err: unknown) => port.postMessage(errorReply(msg.tid, err)));
});

function handle(codec: Awaited<typeof codecReady>, msg: WorkerRequest): WorkerReply | undefined {
  try {
    switch (msg.op) {
      case 'hash': {
        const plain = Buffer.from(msg.data!.buffer, msg.data!.byteOffset, msg.data!.byteLength);
        const id = codec.chunkId(plain);
        held.set(msg.tid, { id, plain });
        return { tid: msg.tid, id };
      }
      case 'seal': {
        const h = held.get(msg.tid)!;
        held.delete(msg.tid);
        return { tid: msg.tid, data: ownBuffer(sealChunk(codec, h.id, h.plain, msg.level)) };
      }
      case 'drop':
        held.delete(msg.tid);
        return undefined;
      case 'open': {
        const stored = Buffer.from(msg.data!.buffer, msg.data!.byteOffset, msg.data!.byteLength);
        return { tid: msg.tid, data: ownBuffer(openChunk(codec, msg.id!, stored, msg.verify ?? true)) };
      }
    }
  } catch (err) {
    held.delete(msg.tid);
    return errorReply(msg.tid, err);
  }
}

/** A buffer that alone owns its ArrayBuffer, so it can be transferred instead of copied. */
function ownBuffer(b: Buffer): Uint8Array {
  if (b.byteOffset === 0 && b.byteLength === b.buffer.byteLength) return b;
  return new Uint8Array(b);
}

function errorReply(tid: number, err: unknown): WorkerReply {
  const e = err as HvError;
  return { tid, error: { code: e instanceof HvError ? e.code : 'ERR_INTERNAL', message: e?.message ?? String(err), target: e?.target } };
}
