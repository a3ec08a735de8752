// Crypto cost per 1 MiB chunk on one core: seal/open (AES-256-GCM), HMAC-SHA-256 vs SHA-256
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

function measure(name: string, fn: (buf: Buffer) => unknown, inputs: Buffer[]): { name: string; mbPerSec: number } {
  for (let i = 0; i < 8; i++) fn(inputs[i % inputs.length]!); // warm up
  let bytes = 0;
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < seconds * 1000) {
    const buf = inputs[n++ % inputs.length]!;
    fn(buf);
    bytes += buf.length;
  }
  const mbPerSec = bytes / 1e6 / ((performance.now() - t0) / 1000);
  return { name, mbPerSec: Math.round(mbPerSec) };
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
const ratio = by['pipeline encrypted: id + zstd-1 + seal']! / by['pipeline plain: id + zstd-1 + seal']!;
const idRatio = by['chunk id HMAC-SHA-256 (encrypted repo)']! / by['chunk id SHA-256 (plain repo)']!;
if (json) {
  process.stdout.write(`${JSON.stringify({ seconds, results, encryptedVsPlainPipeline: Number(ratio.toFixed(3)), hmacVsSha256: Number(idRatio.toFixed(3)) })}\n`);
} else {
  for (const r of results) process.stdout.write(`${r.name.padEnd(44)} ${String(r.mbPerSec).padStart(6)} MB/s\n`);
  process.stdout.write(`${'HMAC-SHA-256 / SHA-256 id throughput'.padEnd(44)} ${(idRatio * 100).toFixed(1).padStart(6)} %\n`);
  process.stdout.write(`${'encrypted / plain pipeline throughput'.padEnd(44)} ${(ratio * 100).toFixed(1).padStart(6)} %\n`);
}
