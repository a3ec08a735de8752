// How two threads scale on this machine: SHA-256 and zstd-1 over 256 KiB chunks of the bench
// disk's first 64 MiB (text, random and repeated data), one worker alone, then two at once.
// The backup and restore goals assume two cores; on a VM whose two vCPUs are one core's two
// hyperthreads, two workers get far less than twice one (session 18 saw that, session 19 not).
//   node_modules/.bin/node bench/backup/thread-scaling.ts [raw disk]   (default bench/data/base.raw)
import { createHash } from 'node:crypto';
import { closeSync, openSync, readSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { constants as zc, zstdCompressSync } from 'node:zlib';

const CHUNK = 256 * 1024;
if (!isMainThread) {
  const { file, op, rounds } = workerData as { file: string; op: 'sha256' | 'zstd1'; rounds: number };
  const buf = Buffer.allocUnsafe(64 << 20);
  const fd = openSync(file, 'r');
  readSync(fd, buf, 0, buf.length, 0);
  closeSync(fd);
  const t0 = performance.now();
  let bytes = 0;
  for (let r = 0; r < rounds; r++) {
    for (let o = 0; o < buf.length; o += CHUNK) {
      const c = buf.subarray(o, o + CHUNK);
      if (op === 'sha256') createHash('sha256').update(c).digest();
      else zstdCompressSync(c, { params: { [zc.ZSTD_c_compressionLevel]: 1 } });
      bytes += c.length;
    }
  }
  parentPort!.postMessage(bytes / 1e6 / ((performance.now() - t0) / 1000));
} else {
  const file = process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), '..', 'data', 'base.raw');
  const run = (op: string, threads: number, rounds: number) => Promise.all(Array.from({ length: threads }, () => new Promise<number>((resolve, reject) => {
    new Worker(fileURLToPath(import.meta.url), { workerData: { file, op, rounds } }).once('message', resolve).once('error', reject);
  })));
  for (const [op, rounds] of [['sha256', 8], ['zstd1', 2]] as const) {
    const [one] = await run(op, 1, rounds);
    const two = await run(op, 2, rounds);
    const sum = two[0]! + two[1]!;
    console.log(JSON.stringify({ op, oneThreadMBps: Math.round(one!), twoThreadsMBps: two.map(Math.round), combinedMBps: Math.round(sum), scaling: +(sum / one!).toFixed(2) }));
  }
}
