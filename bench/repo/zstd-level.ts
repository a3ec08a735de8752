// zstd level for chunks: CPU time per MB (not wall time, so a busy machine does not skew it)
// and stored size, over the non-zero 1 MiB chunks of the benchmark disk, one thread,
// through encodeObject (which stores raw when zstd does not shrink a chunk).
//
//   node_modules/.bin/node bench/repo/zstd-level.ts [raw disk] [levels, comma-separated]

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeObject, isAllZero } from '../../core/repo/object-format.ts';

const disk = readFileSync(process.argv[2] && process.argv[2] !== '-' ? process.argv[2] : join(tmpdir(), 'hvb-bench-disk-512', 'base.raw'));
const levels = (process.argv[3] ?? '-5,-1,1,3').split(',').map(Number);
const chunks: Buffer[] = [];
for (let off = 0; off < disk.length; off += 1 << 20) {
  const c = disk.subarray(off, off + (1 << 20));
  if (!isAllZero(c)) chunks.push(c);
}
const plain = chunks.reduce((a, c) => a + c.length, 0);
function cpuMs(fn: () => void): number {
  const t = process.cpuUsage();
  fn();
  const d = process.cpuUsage(t);
  return (d.user + d.system) / 1000;
}
const sha = cpuMs(() => { for (const c of chunks) createHash('sha256').update(c).digest(); });
console.log(JSON.stringify({ op: 'sha256', cpuMBps: +(plain / 1e3 / sha).toFixed(0) }));
for (const level of levels) {
  let stored = 0;
  const ms = cpuMs(() => { for (const c of chunks) stored += encodeObject(c, level).length; });
  console.log(JSON.stringify({ level, cpuMBps: +(plain / 1e3 / ms).toFixed(0), storedRatio: +(stored / plain).toFixed(3) }));
}
