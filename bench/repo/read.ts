// Restore-side read throughput: readChunks (load, open, decompress, verify on the worker
// pool) over a local repository holding the benchmark disk, for several read-ahead sizes (MiB of plain bytes).
//
//   node_modules/.bin/node bench/repo/read.ts [raw disk]   (default: the 512 MiB disk of chunk-size.ts)

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initRepository, isAllZero, openRepository } from '../../core/repo/index.ts';

const diskPath = process.argv[2] ?? join(tmpdir(), 'hvb-bench-disk-512', 'base.raw');
const disk = readFileSync(diskPath);
const dir = mkdtempSync(join(tmpdir(), 'hvb-bench-read-'));
try {
  const repo = await initRepository(join(dir, 'repo'));
  const writer = repo.chunkWriter();
  const done: Promise<{ id: string }>[] = [];
  for (let off = 0; off < disk.length; off += repo.chunkSize) {
    const slice = disk.subarray(off, off + repo.chunkSize);
    if (!isAllZero(slice)) done.push((await writer.submit(slice)).done);
  }
  await writer.flush();
  const ids = (await Promise.all(done)).map((r) => r.id);
  await repo.close();
  for (const aheadMiB of [4, 8, 16, 32, 64]) {
    const r = await openRepository(join(dir, 'repo'));
    const t0 = performance.now();
    let bytes = 0;
    for await (const c of r.readChunks(ids, { aheadBytes: aheadMiB * 1024 * 1024 })) bytes += c.data.length;
    const secs = (performance.now() - t0) / 1000;
    console.log(JSON.stringify({ aheadMiB, nonZeroMBps: +(bytes / 1e6 / secs).toFixed(0), logicalMBps: +(disk.length / 1e6 / secs).toFixed(0) }));
    await r.close();
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
