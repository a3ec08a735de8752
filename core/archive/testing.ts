// Fixture builders for archive and retention tests: small repositories whose restore
// points are made with the repository API directly (random chunk data + a hand-built
// manifest), independent of the backup engine.

import { randomBytes } from 'node:crypto';
import { isAllZero } from '../repo/object-format.ts';
import type { ChunkRef, RestorePointManifest } from '../repo/manifest-types.ts';
import type { Repository } from '../repo/repository.ts';
import { segmentDisk } from '../repo/testing.ts';

export interface TestPointOptions {
  vm: string;
  createdAt: string;
  /** Disk contents (its length is the virtual size). */
  disk: Buffer;
  fileName?: string;
  format?: 'vhdx' | 'raw';
  configFile?: { path: string; data: Buffer };
  /** Store the disk's chunk list as segments of this many slices (manifest version 2); default: inline (version 1). */
  segmentSlices?: number;
}

// put() per chunk stores a pack per chunk on purpose: GC and media tests need many small packs
// (the GC kill test needs a deletion long enough for its random kills to land in).
async function chunkRefs(repo: Repository, data: Buffer, chunkSize: number): Promise<ChunkRef[]> {
  const w = repo.chunkWriter();
  const refs: ChunkRef[] = [];
  for (let off = 0; off < data.length; off += chunkSize) {
    const slice = data.subarray(off, Math.min(data.length, off + chunkSize));
    refs.push(isAllZero(slice) ? null : (await w.put(Buffer.from(slice))).id);
  }
  await w.flush();
  return refs;
}

export async function addTestPoint(repo: Repository, o: TestPointOptions): Promise<RestorePointManifest> {
  const chunkSize = repo.chunkSize;
  const inline = {
    key: 'disk0', fileName: o.fileName ?? `${o.vm}.vhdx`, format: o.format ?? 'vhdx' as const, virtualSize: o.disk.length,
    blockSize: 1024 * 1024, logicalSectorSize: 512, physicalSectorSize: 4096, chunkSize, chunks: await chunkRefs(repo, o.disk, chunkSize),
  };
  const m: RestorePointManifest = {
    version: o.segmentSlices ? 2 : 1,
    id: randomBytes(32).toString('hex'),
    vm: { id: `vm-${o.vm}`, name: o.vm, generation: 2, host: 'local', hostName: 'testhost' },
    createdAt: o.createdAt,
    finishedAt: o.createdAt,
    consistency: 'crash',
    method: 'full',
    disks: [o.segmentSlices ? await segmentDisk(repo, inline, o.segmentSlices) : inline],
    configFiles: o.configFile ? [{ path: o.configFile.path, size: o.configFile.data.length, chunks: await chunkRefs(repo, o.configFile.data, chunkSize) }] : [],
    stats: { totalBytes: o.disk.length, readBytes: o.disk.length, newChunks: 0, storedBytes: 0, durationMs: 1 },
  };
  await repo.saveManifest(m);
  return m;
}

/** A disk image: `dataChunks` random chunks scattered among zero chunks. */
export function testDisk(chunkSize: number, slices: number, dataEvery = 2): Buffer {
  const buf = Buffer.alloc(chunkSize * slices);
  for (let i = 0; i < slices; i += dataEvery) randomBytes(chunkSize).copy(buf, i * chunkSize);
  return buf;
}

/** A copy of `disk` with `n` chunks changed (new random data). */
export function changeSlices(disk: Buffer, chunkSize: number, slices: number[]): Buffer {
  const out = Buffer.from(disk);
  for (const i of slices) randomBytes(chunkSize).copy(out, i * chunkSize);
  return out;
}
