// Seeded, fast generators of realistic disk contents for sample VMs: incompressible
// random data (AES-CTR keystream), compressible log-like text, and repeated blocks.
// Pure functions of (seed, block index), so tests can regenerate any block.

import { createCipheriv, createHash } from 'node:crypto';

export const MiB = 1 << 20;
export type ContentKind = 'zero' | 'random' | 'text' | 'repeat';

/** Small deterministic PRNG (mulberry32) for layout and text. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `length` incompressible bytes determined by (seed, label). */
export function randomBytesSeeded(seed: number, label: string, length: number): Buffer {
  const key = createHash('sha256').update(`hvbackup-sample:${seed}:${label}`).digest();
  const c = createCipheriv('aes-128-ctr', key.subarray(0, 16), key.subarray(16, 32));
  return c.update(Buffer.alloc(length));
}

const LEVELS = ['INFO ', 'INFO ', 'INFO ', 'DEBUG', 'WARN ', 'ERROR'];
const SVCS = ['auth', 'billing', 'gateway', 'storage', 'scheduler', 'indexer', 'mailer', 'cache'];
const MSGS = ['request completed', 'cache miss for key', 'retrying upstream call', 'user session refreshed',
  'flushed write-ahead log segment', 'connection pool resized', 'slow query detected', 'health check ok'];
const PATHS = ['/api/v1/users', '/api/v1/orders', '/static/app.js', '/api/v2/search', '/metrics', '/login'];

function pick<T>(r: () => number, a: T[]): T {
  return a[Math.floor(r() * a.length)]!;
}

/** One MiB of log-like text for block `index` (compresses ~3-4x, never repeats). */
export function textBlock(seed: number, index: number): Buffer {
  const r = prng((seed * 2654435761) ^ (index * 40503));
  const out = Buffer.allocUnsafe(MiB);
  let n = 0;
  let sec = (index * 37) % 86400;
  while (n < MiB) {
    sec = (sec + Math.floor(r() * 3)) % 86400;
    const hh = String(Math.floor(sec / 3600)).padStart(2, '0');
    const mm = String(Math.floor(sec / 60) % 60).padStart(2, '0');
    const ss = String(sec % 60).padStart(2, '0');
    const id = Math.floor(r() * 0xffffffff).toString(16).padStart(8, '0') + Math.floor(r() * 0xffffffff).toString(16).padStart(8, '0');
    const line = `2024-03-${String(1 + (index % 28)).padStart(2, '0')} ${hh}:${mm}:${ss}.${String(Math.floor(r() * 1000)).padStart(3, '0')} ${pick(r, LEVELS)} [worker-${Math.floor(r() * 16)}] ${pick(r, SVCS)}: ${pick(r, MSGS)} id=${id} path=${pick(r, PATHS)} status=${pick(r, [200, 200, 200, 204, 301, 404, 500])} dur=${Math.floor(r() * 5000)}ms\n`;
    n += out.write(line, n, 'latin1');
  }
  return out;
}

/** Layout of a sample disk at 1 MiB granularity: ~40 % zero, ~25 % random, ~25 % text, ~10 % repeated, in shuffled runs. */
export function sampleLayout(seed: number, sizeMiB: number): ContentKind[] {
  const r = prng(seed ^ 0x5eed);
  const runs: [ContentKind, number][] = [];
  const add = (kind: ContentKind, total: number, lo: number, hi: number) => {
    while (total > 0) {
      const n = Math.min(total, lo + Math.floor(r() * (hi - lo + 1)));
      runs.push([kind, n]);
      total -= n;
    }
  };
  const zero = Math.round(sizeMiB * 0.4), rand = Math.round(sizeMiB * 0.25), text = Math.round(sizeMiB * 0.25);
  const scale = Math.max(1, Math.round(sizeMiB / 256));
  add('zero', zero, 2 * scale, 12 * scale);
  add('random', rand, 1, 6 * scale);
  add('text', text, 1, 6 * scale);
  add('repeat', sizeMiB - zero - rand - text, 1, 2);
  for (let i = runs.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [runs[i], runs[j]] = [runs[j]!, runs[i]!];
  }
  const t = runs.findIndex(([k]) => k === 'text');
  if (t > 0) runs.unshift(...runs.splice(t, 1)); // a "boot/partition" region first, like real disks
  return runs.flatMap(([k, n]) => Array<ContentKind>(n).fill(k));
}

/** The content of MiB block `index` of kind `kind`, or undefined for zeros. */
export function blockContent(seed: number, kind: ContentKind, index: number): Buffer | undefined {
  switch (kind) {
    case 'zero': return undefined;
    case 'random': return randomBytesSeeded(seed, `r${index}`, MiB);
    case 'text': return textBlock(seed, index);
    case 'repeat': return randomBytesSeeded(seed, `dup${index % 8}`, MiB);
  }
}
