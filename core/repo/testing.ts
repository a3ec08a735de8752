// Fixture builders for tests of core/repo and of the areas that use it (after restic's
// repository/testing.go): a manifest with sane defaults, and a buffer stored as a disk.

import { open, stat } from 'node:fs/promises';
import type { ChunkRef, DiskManifest, RestorePointManifest } from './manifest-types.ts';
import { MANIFEST_VERSION } from './manifest-types.ts';
import { diskWindows } from './manifest-chunks.ts';
import { encodeSegment, PIECE_SIZE, SEGMENT_SLICES } from './manifest-segments.ts';
import { isAllZero } from './object-format.ts';
import type { Repository } from './repository.ts';

/** A version-1 disk entry: its chunk list inline. */
export type InlineDisk = DiskManifest & { chunks: ChunkRef[] };

/** Store `data` as a disk's chunks (all-zero chunks become null) and describe it. */
export async function storeDisk(repo: Repository, data: Buffer, opts: { key?: string; fileName?: string } = {}): Promise<InlineDisk> {
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

/**
 * The same disk as a version-2 entry: its list stored as segments of `segmentSlices`
 * slices (default SEGMENT_SLICES; tests use small ones to get several segments cheaply).
 */
export async function segmentDisk(repo: Repository, d: InlineDisk, segmentSlices = SEGMENT_SLICES): Promise<DiskManifest> {
  const writer = repo.chunkWriter();
  const segments: ChunkRef[] = [];
  for (let first = 0; first < d.chunks.length; first += segmentSlices) {
    const refs = d.chunks.slice(first, first + segmentSlices);
    segments.push(refs.every((r) => r === null) ? null : (await writer.put(encodeSegment(refs))).id);
  }
  await writer.flush();
  const { chunks, ...rest } = d;
  return { ...rest, segmentSlices, segments, dataSlices: chunks.filter((c) => c !== null).length };
}

/** A manifest with defaults; version 1 when a disk lists its chunks inline, else 2. */
export function makeManifest(over: Partial<RestorePointManifest> = {}): RestorePointManifest {
  const now = new Date().toISOString();
  return {
    version: over.disks?.some((d) => d.chunks) ? 1 : MANIFEST_VERSION,
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

/** Read a stored disk (either manifest version) back into one buffer. */
export async function readDisk(repo: Repository, d: DiskManifest, pointId = '(test)'): Promise<Buffer> {
  const out = Buffer.alloc(d.virtualSize);
  for await (const w of diskWindows(repo, pointId, d)) {
    for (let j = 0; j < w.refs.length; j++) {
      const r = w.refs[j]!;
      const at = (w.first + j) * d.chunkSize;
      if (typeof r === 'string') (await repo.loadChunk(r)).copy(out, at);
      else if (r) {
        for (let q = 0; q < r.pieces.length; q++) {
          const p = r.pieces[q];
          const start = at + q * PIECE_SIZE;
          if (p) (await repo.loadChunk(p.id)).copy(out, start, p.offset, p.offset + Math.min(PIECE_SIZE, d.virtualSize - start));
        }
      }
    }
  }
  return out;
}

/**
 * Where chunk `id` is stored in a repository on a LocalBackend: the file (a pack, or a loose
 * chunks/ object) and the byte range of its sealed blob. Tests damage or read chunks in place.
 */
export async function chunkFileRange(repo: Repository, id: string): Promise<{ file: string; offset: number; length: number }> {
  const backend = repo.backend as { pathOf?: (h: { type: string; name: string }) => string };
  if (typeof backend.pathOf !== 'function') throw new Error(`chunkFileRange needs a local repository, not ${repo.location}`);
  const where = await repo.locateChunk(id);
  const file = backend.pathOf(where.handle);
  const length = where.handle.type === 'packs' ? where.length : (await stat(file)).size;
  return { file, offset: where.offset, length };
}

/** Flip one bit of chunk `id`'s stored bytes in place (byte `at` of the blob, default its middle). */
export async function flipChunkBit(repo: Repository, id: string, at?: number): Promise<void> {
  const r = await chunkFileRange(repo, id);
  const fh = await open(r.file, 'r+');
  try {
    const pos = r.offset + (at ?? r.length >> 1);
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, pos);
    b[0]! ^= 0x10;
    await fh.write(b, 0, 1, pos);
  } finally {
    await fh.close();
  }
}
