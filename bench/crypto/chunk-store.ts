// Chunk store write cost, encrypted vs plain, at the repository level (chunkWriter: hash,
// compress, seal, write, in the worker pool) without the backup engine around it. Reports
// CPU-ms per GB (all threads; steadier than wall time on a shared machine) and wall MB/s,
// alternating kinds each round. Run: node_modules/.bin/node bench/crypto/chunk-store.ts [--chunks 192] [--rounds 4]

import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initRepository } from '../../core/repo/local.ts';

const MiB = 1024 * 1024;
const arg = (name: string, dflt: number) => (process.argv.includes(name) ? Number(process.argv[process.argv.indexOf(name) + 1]) : dflt);
const count = arg('--chunks', 192);
const rounds = arg('--rounds', 4);
const chunks = Array.from({ length: count }, (_, i) => {
  const b = Buffer.alloc(MiB, i & 0xff);
  randomBytes(MiB / 2).copy(b);
  return b;
});
const cpuMs = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };
const GB = (count * MiB) / 1e9;
const dir = mkdtempSync(join(tmpdir(), 'hvb-bench-chunkstore-'));
const results: Record<string, { cpuMsPerGB: number[]; mbPerSec: number[] }> = { plain: { cpuMsPerGB: [], mbPerSec: [] }, encrypted: { cpuMsPerGB: [], mbPerSec: [] } };
try {
  for (let r = 0; r < rounds; r++) {
    for (const kind of r % 2 ? ['encrypted', 'plain'] : ['plain', 'encrypted']) {
      const path = join(dir, `${kind}-${r}`);
      // Cheap scrypt: this measures the per-chunk cost, not the one-off unlock.
      const repo = await initRepository(path, { password: kind === 'encrypted' ? 'bench' : undefined, keyOptions: { kdf: { N: 1024 } } });
      const c0 = cpuMs();
      const t0 = performance.now();
      const w = repo.chunkWriter();
      for (const c of chunks) await w.submit(c);
      await w.flush();
      results[kind]!.cpuMsPerGB.push(Math.round((cpuMs() - c0) / GB));
      results[kind]!.mbPerSec.push(Math.round((count * MiB) / 1e6 / ((performance.now() - t0) / 1000)));
      await repo.close();
      rmSync(path, { recursive: true, force: true });
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
const mean = (xs: number[]) => Math.round(xs.reduce((a, b) => a + b, 0) / xs.length);
const p = results.plain!;
const e = results.encrypted!;
const cpuRatio = mean(p.cpuMsPerGB) / mean(e.cpuMsPerGB);
if (process.argv.includes('--json')) process.stdout.write(`${JSON.stringify({ count, rounds, results, cpuRatio: Number(cpuRatio.toFixed(3)) })}\n`);
else {
  process.stdout.write(`plain      CPU-ms/GB ${p.cpuMsPerGB.join(' ')}  MB/s ${p.mbPerSec.join(' ')}\n`);
  process.stdout.write(`encrypted  CPU-ms/GB ${e.cpuMsPerGB.join(' ')}  MB/s ${e.mbPerSec.join(' ')}\n`);
  process.stdout.write(`CPU-bound throughput, encrypted / plain (mean CPU per GB): ${(cpuRatio * 100).toFixed(1)} %\n`);
}
