// Memory of GC's referenced-chunk set: ChunkIdSet (typed arrays, core/repo/chunk-id-set.ts)
// against the Set of hex strings it replaced. Each (kind, size) runs in its own process with
// --expose-gc; bytes per id = heapUsed + external after gc, minus the same before adding,
// with the ids made one by one as GC gets them (hex strings from decoded segments), not kept.
//
//   node_modules/.bin/node bench/repo/id-set-memory.ts [ids ...]   (default: 1000000 5000000)

import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { ChunkIdSet } from '../../core/repo/chunk-id-set.ts';
import { usedAfterGc } from './heap.ts';

const used = usedAfterGc;

if (process.argv[2] === '--child') {
  const [kind, n] = [process.argv[3]!, Number(process.argv[4])];
  const before = used();
  const t0 = performance.now();
  const set: { add(id: string): unknown; has(id: string): boolean } = kind === 'set' ? new Set<string>() : new ChunkIdSet();
  const seed = createHash('sha256').update('bench').digest();
  for (let i = 0; i < n; i++) {
    seed.writeUInt32LE(i, 0);
    set.add(createHash('sha256').update(seed).digest('hex'));
  }
  const ms = performance.now() - t0;
  const bytes = used() - before;
  // Still in use after the measure, so the collector cannot have dropped it before.
  const alive = set.has(createHash('sha256').update(seed).digest('hex'));
  console.log(JSON.stringify({ kind, n, alive, bytesPerId: Math.round(bytes / n), addMs: Math.round(ms), rssMiB: Math.round(process.memoryUsage().rss / 2 ** 20) }));
} else {
  const sizes = process.argv.slice(2).map(Number);
  const self = fileURLToPath(import.meta.url);
  console.log('| ids | Set<string> bytes/id | ChunkIdSet bytes/id | Set RSS MiB | ChunkIdSet RSS MiB |');
  console.log('|---:|---:|---:|---:|---:|');
  for (const n of sizes.length ? sizes : [1_000_000, 5_000_000]) {
    const run = (kind: string) => JSON.parse(spawnSync(process.execPath, ['--expose-gc', '--max-old-space-size=8192', self, '--child', kind, String(n)], { encoding: 'utf8' }).stdout) as { bytesPerId: number; rssMiB: number };
    const s = run('set');
    const c = run('compact');
    console.log(`| ${n} | ${s.bytesPerId} | ${c.bytesPerId} | ${s.rssMiB} | ${c.rssMiB} |`);
  }
}
