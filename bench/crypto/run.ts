// Crypto cost per 1 MiB chunk on one core (MB per CPU-second, so other load on the machine matters less): seal/open (AES-256-GCM), HMAC-SHA-256 vs SHA-256
// chunk ids, and the estimated per-chunk pipeline (id + zstd level 1 + seal) encrypted vs plain.
// Run: node_modules/.bin/node bench/crypto/run.ts [--seconds 2] [--json]

import { createHash, randomBytes } from 'node:crypto';
import { zstdCompressSync, constants as zc } from 'node:zlib';
import { createEncryptedRepositoryKeys, plainCodec } from '../../core/repo/crypto/index.ts';

const MiB = 1024 * 1024;
const seconds = Number(process.argv[process.argv.indexOf('--seconds') + 1]) || 2;
const json = process.argv.includes('--json');

/** Half random, half constant: compresses to about 0.5 like typical disk data. */
function sampleChunk(i: number): Buffer {
  const b = Buffer.alloc(MiB, i & 0xff);
  randomBytes(MiB / 2).copy(b);
  return b;
}

/** CPU seconds this process used: on a shared machine, far steadier than wall time. */
function cpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/** MB per CPU-second on this (single) thread. */
function measure(name: string, fn: (buf: Buffer) => unknown, inputs: Buffer[]): { name: string; mbPerSec: number } {
  for (let i = 0; i < 8; i++) fn(inputs[i % inputs.length]!); // warm up
  let bytes = 0;
  let n = 0;
  const c0 = cpuSeconds();
  while (cpuSeconds() - c0 < seconds) {
    const buf = inputs[n++ % inputs.length]!;
    fn(buf);
    bytes += buf.length;
  }
  const mbPerSec = bytes / 1e6 / (cpuSeconds() - c0);
  return { name, mbPerSec: Math.round(mbPerSec) };
}

/**
 * a's throughput / b's, measured in alternating slices of 100 ms CPU time so that load from other
 * processes on a shared machine falls on both alike.
 */
function interleavedRatio(a: (b: Buffer) => unknown, b: (b: Buffer) => unknown): number {
  const spent = [0, 0];
  const done = [0, 0];
  const end = cpuSeconds() + seconds * 2;
  for (let slice = 0; cpuSeconds() < end; slice++) {
    const k = slice % 2;
    const fn = k === 0 ? a : b;
    const c0 = cpuSeconds();
    while (cpuSeconds() - c0 < 0.1) {
      fn(chunks[done[k]! % chunks.length]!);
      done[k]!++;
    }
    spent[k]! += cpuSeconds() - c0;
  }
  return (done[0]! / spent[0]!) / (done[1]! / spent[1]!);
}

const { codec } = await createEncryptedRepositoryKeys('bench', { kdf: { N: 2 ** 10 } });
const plain = plainCodec();
const chunks = Array.from({ length: 16 }, (_, i) => sampleChunk(i));
const zstd1 = (b: Buffer) => zstdCompressSync(b, { params: { [zc.ZSTD_c_compressionLevel]: 1 } });

const results = [
  measure('seal AES-256-GCM (1 MiB)', (b) => codec.seal('chunks', b, 'ab'), chunks),
  measure('open AES-256-GCM (1 MiB)', (b) => codec.open('chunks', 'ab', b), chunks.map((c) => codec.seal('chunks', c, 'ab'))),
  measure('chunk id SHA-256 (plain repo)', (b) => plain.chunkId(b), chunks),
  measure('chunk id HMAC-SHA-256 (encrypted repo)', (b) => codec.chunkId(b), chunks),
  measure('raw SHA-256 digest', (b) => createHash('sha256').update(b).digest(), chunks),
  measure('pipeline plain: id + zstd-1 + seal', (b) => plain.seal('chunks', zstd1(b), plain.chunkId(b)), chunks),
  measure('pipeline encrypted: id + zstd-1 + seal', (b) => codec.seal('chunks', zstd1(b), codec.chunkId(b)), chunks),
];
const by = Object.fromEntries(results.map((r) => [r.name, r.mbPerSec]));
const ratio = interleavedRatio(
  (b) => codec.seal('chunks', zstd1(b), codec.chunkId(b)),
  (b) => plain.seal('chunks', zstd1(b), plain.chunkId(b)),
);
const idRatio = by['chunk id HMAC-SHA-256 (encrypted repo)']! / by['chunk id SHA-256 (plain repo)']!;
if (json) {
  process.stdout.write(`${JSON.stringify({ seconds, results, encryptedVsPlainPipeline: Number(ratio.toFixed(3)), hmacVsSha256: Number(idRatio.toFixed(3)) })}\n`);
} else {
  for (const r of results) process.stdout.write(`${r.name.padEnd(44)} ${String(r.mbPerSec).padStart(6)} MB/s\n`);
  process.stdout.write(`${'HMAC-SHA-256 / SHA-256 id throughput'.padEnd(44)} ${(idRatio * 100).toFixed(1).padStart(6)} %\n`);
  process.stdout.write(`${'encrypted / plain pipeline (interleaved)'.padEnd(44)} ${(ratio * 100).toFixed(1).padStart(6)} %\n`);
}
