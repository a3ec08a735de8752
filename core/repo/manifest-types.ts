// The restore-point manifest: one per restore point, written last (after every chunk it
// names is durable), never modified. Every restore point restores alone from its manifest.
// CONTRACT shared by core/repo (stores it), core/backup (writes it), core/restore and
// core/archive (read it). Encoding/decoding and validation live in core/repo/manifest.ts.

import type { BackupMethod } from '../api/types.ts';
import type { Consistency, DiskReference } from '../hosts/host.ts';

/**
 * 2: a disk's chunk list is stored as segment chunks (`segments`, manifest-segments.ts);
 * 1: inline `chunks` (still read everywhere, and still accepted by saveManifest).
 */
export const MANIFEST_VERSION = 2;
/** The manifest versions this HVBackup reads. */
export const MANIFEST_VERSIONS: readonly number[] = [1, 2];

/** One chunk-sized slice of a disk or file: a chunk id (hex) or null for all zeros. */
export type ChunkRef = string | null;

/**
 * One piece of a split slice: bytes [offset, offset + piece length) of chunk `id`, always a
 * chunk holding plain data (a whole slice or a piece stored alone), never another split
 * slice, so a piece is one chunk read.
 */
export interface PieceRef {
  id: string;
  offset: number;
}

/**
 * A slice stored as pieces (segment format 2): pieces[p] covers bytes
 * [p*PIECE_SIZE, (p+1)*PIECE_SIZE) of the slice (the last piece of a disk's last slice is
 * shorter), null for all zeros. Written by a changed-blocks backup that changed only some
 * of a slice's pieces: the changed ones are new chunks, the others point where their bytes
 * already are.
 */
export interface SplitSlice {
  pieces: (PieceRef | null)[];
}

/** A slice of a disk listed in a segment: a chunk id, null for all zeros, or pieces. */
export type SliceRef = ChunkRef | SplitSlice;

export interface DiskManifest {
  /** Stable key of the disk in the VM (controller location or file name). */
  key: string;
  /** File name the disk had, e.g. "web01.vhdx"; restore writes this name. */
  fileName: string;
  format: 'vhdx' | 'raw';
  virtualSize: number;
  /** Source VHDX parameters, so a restore recreates the same geometry. */
  blockSize: number;
  logicalSectorSize: number;
  physicalSectorSize: number;
  /** Bytes per chunk slice (the last slice may be shorter: virtualSize - i*chunkSize). */
  chunkSize: number;
  /**
   * Version 1 only: chunks[i] covers [i*chunkSize, min((i+1)*chunkSize, virtualSize)).
   * Read it through core/repo/manifest-chunks.ts, which handles both versions.
   */
  chunks?: ChunkRef[];
  /** Version 2: slices per segment (the last segment may hold fewer). */
  segmentSlices?: number;
  /**
   * Version 2: segments[k] is the id of the chunk holding the chunk ids of slices
   * [k*segmentSlices, min((k+1)*segmentSlices, slices)) (manifest-segments.ts), or null
   * when every one of those slices is all zeros.
   */
  segments?: ChunkRef[];
  /** Version 2: slices that are not all zeros (restore's progress total; checked as segments are read). */
  dataSlices?: number;
  /** Where the next incremental asks for changes from (RCT id / local tracking reference). */
  reference?: DiskReference;
}

export interface ConfigFileManifest {
  /** Path relative to the VM's folder, '/'-separated, e.g. "Virtual Machines/web01.json". */
  path: string;
  size: number;
  chunks: ChunkRef[];
}

export interface RestorePointManifest {
  version: number;
  /** Restore point id: 64 hex characters (the manifest's object name). */
  id: string;
  vm: { id: string; name: string; generation: 1 | 2; configVersion?: string; host: 'local' | 'hyperv'; hostName: string };
  createdAt: string;      // ISO time the checkpoint was taken
  finishedAt: string;     // ISO time the manifest was written
  consistency: Consistency;
  consistencyNote?: string;
  method: BackupMethod;
  methodReason?: string;
  /** The restore point this one was incremental to, if any. */
  parentId?: string;
  disks: DiskManifest[];
  configFiles: ConfigFileManifest[];
  stats: { totalBytes: number; readBytes: number; newChunks: number; storedBytes: number; durationMs: number };
  /** Host-specific facts (Hyper-V config version, cluster, RCT ids). */
  details?: Record<string, unknown>;
}

/**
 * A restore point without its chunk lists: what listing and choosing points needs. Stored
 * beside each manifest as points/<id> (small whatever the disk size), so finding a VM's
 * newest point does not decode every manifest's chunk list. A full manifest is one too.
 */
export type RestorePointSummary = Omit<RestorePointManifest, 'disks' | 'configFiles'> & {
  disks: Omit<DiskManifest, 'chunks' | 'segments'>[];
  configFiles: Omit<ConfigFileManifest, 'chunks'>[];
};
