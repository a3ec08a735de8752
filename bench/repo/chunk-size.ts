// Chunk-size benchmark: full backup throughput, repository size, manifest size, and what a
// 1 % scattered change (64 KiB writes at 4 KiB-aligned seeded offsets, like
// /work/shared/bench/mutate.sh) adds, for several chunk sizes, through the real
// Repository (worker pool, zstd, local backend with fsync).
//
//   node_modules/.bin/node bench/repo/chunk-size.ts [raw disk] [sizes KiB, comma-separated]
//   default disk: built with /work/shared/bench/make_disk.sh (512 MiB, seed 42) into $TMPDIR.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initRepository } from '../../core/repo/local.ts';
import { encodeManifest } from '../../core/repo/manifest.ts';
import { encodeObject, isAllZero } from '../../core/repo/object-format.ts';
import type { Repository } from '../../core/repo/repository.ts';
import { makeManifest } from '../../core/repo/testing.ts';
import { prng } from '../../core/hosts/local/content.ts';

const KiB = 1024;
const WRITE = 64 * KiB;

function defaultDisk(): string {
  const dir = join(tmpdir(), 'hvb-bench-disk-512');
  const raw = join(dir, 'base.raw');
  if (!existsSync(raw)) execFileSync('/work/shared/bench/make_disk.sh', [dir, '42', '512'], { stdio: 'inherit' });
  return raw;
}

/** Apply a 1 % change in place; returns the changed byte ranges. */
function mutate(disk: Buffer, seed = 1234): [number, number][] {
  const random = prng(seed);
  const n = Math.round((disk.length * 0.01) / WRITE);
  const ranges: [number, number][] = [];
  for (let i = 0; i < n; i++) {
    const off = Math.floor(random() * ((disk.length - WRITE) / 4096)) * 4096;
    for (let j = 0; j < WRITE; j++) disk[off + j] = Math.floor(random() * 256);
    ranges.push([off, off + WRITE]);
  }
  return ranges;
}

/** Store the slices at `indexes` (all when undefined); returns chunk refs and seconds. */
async function backup(repo: Repository, disk: Buffer, chunks: (string | null)[], indexes?: Set<number>): Promise<number> {
  const size = repo.chunkSize;
  const writer = repo.chunkWriter();
  const t0 = performance.now();
  const pending: Promise<void>[] = [];
  for (let i = 0; i * size < disk.length; i++) {
    if (indexes && !indexes.has(i)) continue;
    const slice = disk.subarray(i * size, Math.min(disk.length, (i + 1) * size));
    if (isAllZero(slice)) { chunks[i] = null; continue; }
    const { done } = await writer.submit(slice);
    pending.push(done.then((r) => { chunks[i] = r.id; }));
  }
  await writer.flush();
  await Promise.all(pending);
  return (performance.now() - t0) / 1000;
}

async function storedChunkBytes(repo: Repository): Promise<number> {
  let n = 0;
  for await (const c of repo.listChunks()) n += c.size;
  return n;
}

async function runSize(diskPath: string, chunkSize: number): Promise<Record<string, string | number>> {
  const disk = readFileSync(diskPath);
  const dir = mkdtempSync(join(tmpdir(), 'hvb-bench-repo-'));
  try {
    const repo = await initRepository(join(dir, 'repo'), { chunkSize });
    const chunks: (string | null)[] = new Array(Math.ceil(disk.length / chunkSize)).fill(null);
    const fullSecs = await backup(repo, disk, chunks);
    const afterFull = await storedChunkBytes(repo);
    const manifest = makeManifest({ id: 'ab'.repeat(32), disks: [{ key: 'd', fileName: 'd.vhdx', format: 'vhdx', virtualSize: disk.length, blockSize: 32 << 20, logicalSectorSize: 512, physicalSectorSize: 4096, chunkSize, chunks }] });
    const manifestBytes = encodeObject(encodeManifest(manifest)).length;
    const changed = mutate(disk);
    const dirty = new Set<number>();
    for (const [a, b] of changed) for (let i = Math.floor(a / chunkSize); i * chunkSize < b; i++) dirty.add(i);
    const incrSecs = await backup(repo, disk, chunks, dirty);
    const afterIncr = await storedChunkBytes(repo);
    await repo.close();
    const changedBytes = changed.length * WRITE;
    return {
      chunkKiB: chunkSize / KiB,
      fullMBps: +(disk.length / 1e6 / fullSecs).toFixed(0),
      repoMiB: +(afterFull / 2 ** 20).toFixed(1),
      manifestKiB: +(manifestBytes / KiB).toFixed(1),
      changedMiB: +(changedBytes / 2 ** 20).toFixed(1),
      incrAddedMiB: +((afterIncr - afterFull) / 2 ** 20).toFixed(1),
      addedPerChanged: +((afterIncr - afterFull) / changedBytes).toFixed(2),
      incrSecs: +incrSecs.toFixed(2),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const diskPath = process.argv[2] && process.argv[2] !== '-' ? process.argv[2] : defaultDisk();
const sizes = (process.argv[3] ?? '128,256,512,1024,4096').split(',').map((s) => Number(s) * KiB);
const rows = [];
for (const s of sizes) {
  const row = await runSize(diskPath, s);
  console.log(JSON.stringify(row));
  rows.push(row);
}
console.table(rows);
