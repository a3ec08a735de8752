// Worker used by codec.test.ts: rebuilds the codec from its transferable form in another
// thread, seals the message it is given and returns the chunk id and the sealed bytes.
import { parentPort, workerData } from 'node:worker_threads';
import { codecFromTransferable } from '../../core/repo/crypto/index.ts';

const codec = codecFromTransferable(workerData.codec);
const plain = Buffer.from(workerData.plain);
parentPort!.postMessage({ id: codec.chunkId(plain), sealed: codec.seal('chunks', plain, codec.chunkId(plain)) });
