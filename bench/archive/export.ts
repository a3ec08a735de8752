// Archive export throughput beside GNU tar over the same data: a repository built from
// the first SIZE MiB of the benchmark disk (bench/data/base.raw, else random data), then
// (a) hvbackup archive export to a media file (256 KiB records, one medium) and
// (b) `tar -b 512 -cf` of the repository's packs/ index/ manifests/ config (same record size;
//     tar copies the pack files whole, the export cuts each chunk out of its pack).
// Both read warm page cache and write to the same file system, alternating, each run after a
// global sync (no dirty pages left by the previous one). Median of RUNS runs each.
// Usage: node bench/archive/export.ts [SIZE_MIB] [RUNS]

import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, openSync, readSync, closeSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportArchive } from '../../core/api/archive.ts';
import { initRepository } from '../../core/repo/local.ts';
import { isAllZero } from '../../core/repo/object-format.ts';
import type { ChunkRef } from '../../core/repo/manifest-types.ts';

const SIZE = Number(process.argv[2] ?? 512) * 1024 * 1024;
const RUNS = Number(process.argv[3] ?? 3);
const CHUNK = 1024 * 1024;
const source = join(import.meta.dirname, '..', 'data', 'base.raw');

const work = mkdtempSync(join(tmpdir(), 'hvb-bench-archive-'));
try {
  const repoPath = join(work, 'repo');
  const repo = await initRepository(repoPath, { chunkSize: CHUNK });
  const w = repo.chunkWriter();
  const fd = existsSync(source) ? openSync(source, 'r') : undefined;
  const refs: Promise<ChunkRef>[] = [];
  for (let off = 0; off < SIZE; off += CHUNK) {
    const buf = Buffer.alloc(CHUNK);
    if (fd !== undefined) readSync(fd, buf, 0, CHUNK, off); else randomBytes(CHUNK).copy(buf);
    refs.push(isAllZero(buf) ? Promise.resolve(null) : (await w.submit(buf)).done.then((r) => r.id));
  }
  if (fd !== undefined) closeSync(fd);
  await w.flush();
  const chunks = await Promise.all(refs);
  await repo.saveManifest({
    version: 1, id: '', vm: { id: 'bench', name: 'bench', generation: 2, host: 'local', hostName: 'bench' }, createdAt: new Date().toISOString(), finishedAt: new Date().toISOString(),
    consistency: 'crash', method: 'full', configFiles: [], stats: { totalBytes: SIZE, readBytes: SIZE, newChunks: 0, storedBytes: 0, durationMs: 0 },
    disks: [{ key: 'd', fileName: 'bench.vhdx', format: 'vhdx', virtualSize: SIZE, blockSize: 32 * CHUNK, logicalSectorSize: 512, physicalSectorSize: 4096, chunkSize: CHUNK, chunks }],
  });
  await repo.close();
  const dataDirs = ['packs', 'index', 'chunks'].filter((d) => existsSync(join(repoPath, d)));
  const stored = Number(spawnSync('du', ['-sbc', ...dataDirs.map((d) => join(repoPath, d))], { encoding: 'utf8' }).stdout.trim().split('\n').pop()!.split('\t')[0]);
  spawnSync('tar', ['-cf', '/dev/null', '-C', repoPath, ...dataDirs]); // warm the page cache

  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const ours: number[] = [];
  const tars: number[] = [];
  const tarsSynced: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const media = join(work, `media-${i}`);
    spawnSync('sync'); // every run starts with no dirty pages of the previous one
    let t = performance.now();
    await exportArchive({}, { repository: repoPath, pool: `bench${i}`, mediaDir: media, capacity: 'LTO-8' });
    ours.push((performance.now() - t) / 1000);
    rmSync(media, { recursive: true, force: true });
    const out = join(work, 'tar.tar');
    spawnSync('sync');
    t = performance.now();
    const r = spawnSync('tar', ['-b', '512', '-cf', out, '-C', repoPath, ...dataDirs, 'manifests', 'config']);
    tars.push((performance.now() - t) / 1000);
    if (r.status !== 0) throw new Error(`tar failed: ${r.stderr}`);
    spawnSync('sync', [out]); // our export fsyncs each medium before the catalog names it; tar does not
    tarsSynced.push((performance.now() - t) / 1000);
    rmSync(out, { force: true });
  }
  const mbs = (s: number) => (stored / 1e6 / s).toFixed(0);
  const ratio = median(tars) / median(ours);
  const lines = [
    `# Archive export vs tar (${new Date().toISOString()})`,
    '',
    `Data: first ${SIZE / CHUNK} MiB of ${existsSync(source) ? 'bench/data/base.raw' : 'random data'}, ${chunks.filter(Boolean).length} stored chunks, ${(stored / 1e6).toFixed(0)} MB stored; ${RUNS} runs, median.`,
    '',
    '| writer | seconds | MB/s |',
    '|---|---|---|',
    `| hvbackup archive export (256 KiB records) | ${median(ours).toFixed(2)} | ${mbs(median(ours))} |`,
    `| tar -b 512 -cf (GNU tar ${spawnSync('tar', ['--version'], { encoding: 'utf8' }).stdout.split('\n')[0]!.split(' ').pop()}) | ${median(tars).toFixed(2)} | ${mbs(median(tars))} |`,
    `| tar -b 512 -cf, then sync of the tar file | ${median(tarsSynced).toFixed(2)} | ${mbs(median(tarsSynced))} |`,
    '',
    `Export throughput = ${(ratio * 100).toFixed(0)} % of tar, ${(median(tarsSynced) / median(ours) * 100).toFixed(0)} % of tar + sync (goal >= 90 %).`,
    `Runs (s): ours ${ours.map((x) => x.toFixed(2)).join(', ')}; tar ${tars.map((x) => x.toFixed(2)).join(', ')}; tar+sync ${tarsSynced.map((x) => x.toFixed(2)).join(', ')}.`,
  ];
  process.stdout.write(lines.join('\n') + '\n');
} finally {
  rmSync(work, { recursive: true, force: true });
}
