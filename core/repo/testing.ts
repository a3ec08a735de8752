// Fixture builders for tests of core/repo and of the areas that use it (after restic's
// repository/testing.go): a manifest with sane defaults, and a buffer stored as a disk.

import type { DiskManifest, RestorePointManifest } from './manifest-types.ts';
import { MANIFEST_VERSION } from './manifest-types.ts';
import { isAllZero } from './object-format.ts';
import type { Repository } from './repository.ts';

/** Store `data` as a disk's chunks (all-zero chunks become null) and describe it. */
export async function storeDisk(repo: Repository, data: Buffer, opts: { key?: string; fileName?: string } = {}): Promise<DiskManifest> {
  const size = repo.chunkSize;
  const writer = repo.chunkWriter();
  const pending: (Promise<{ id: string }> | null)[] = [];
  for (let off = 0; off < data.length; off += size) {
    const slice = data.subarray(off, Math.min(data.length, off + size));
    pending.push(isAllZero(slice) ? null : (await writer.submit(slice)).done);
  }
  await writer.flush();
  const chunks = await Promise.all(pending.map(async (p) => (p ? (await p).id : null)));
  return {
    key: opts.key ?? 'scsi0-0', fileName: opts.fileName ?? 'disk.vhdx', format: 'vhdx', virtualSize: data.length,
    blockSize: 32 * 1024 * 1024, logicalSectorSize: 512, physicalSectorSize: 4096, chunkSize: size, chunks,
  };
}

export function makeManifest(over: Partial<RestorePointManifest> = {}): RestorePointManifest {
  const now = new Date().toISOString();
  return {
    version: MANIFEST_VERSION,
    id: '',
    vm: { id: 'vm-0001', name: 'web01', generation: 2, host: 'local', hostName: 'testhost' },
    createdAt: now,
    finishedAt: now,
    consistency: 'crash',
    method: 'full',
    disks: [],
    configFiles: [],
    stats: { totalBytes: 0, readBytes: 0, newChunks: 0, storedBytes: 0, durationMs: 0 },
    ...over,
  };
}

/** Read a stored disk back into one buffer. */
export async function readDisk(repo: Repository, d: DiskManifest): Promise<Buffer> {
  const out = Buffer.alloc(d.virtualSize);
  for (let i = 0; i < d.chunks.length; i++) {
    const id = d.chunks[i];
    if (id) (await repo.loadChunk(id)).copy(out, i * d.chunkSize);
  }
  return out;
}
