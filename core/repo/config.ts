// The repository's `config` object: plain JSON (it must be readable before any key is
// unlocked, because it says whether and how the repository is encrypted). Pure code.

import { HvError } from '../errors.ts';

/**
 * 5: an index/ object may list many packs (HVBMIDX1, one per writer flush, GC's consolidated
 * ones), which HVBackup before them would take for damaged index objects (its restore would
 * miss chunks, its GC stop): its version check refuses such a repository instead.
 */
export const REPOSITORY_VERSION = 5;
/** The first version whose index objects may list many packs. */
export const MULTI_INDEX_VERSION = 5;
/**
 * 4: a segment may split slices into 64 KiB pieces (segment format 2, written by
 * changed-blocks backups), which HVBackup before pieces cannot read: its version check
 * refuses such a repository instead of calling its segments corrupt (or misreading them).
 * Opened read-write; rewritten as version 5 (upgradeFormat) before a backup or GC.
 */
export const SPLIT_VERSION = 4;
/**
 * 3: restore points may list disks in segments (manifest version 2), which HVBackup before
 * segments cannot read. Opened read-write; rewritten as version 5 (upgradeFormat) before a backup or GC.
 */
export const SEGMENTS_VERSION = 3;
/**
 * 2: new chunks are stored in packs (index/ + packs/); loose chunks/ objects are still read.
 * Opened read-write; rewritten as version 5 (upgradeFormat) before a backup or GC.
 */
export const PACKS_VERSION = 2;
/**
 * 1: every chunk a loose chunks/ object (HVBackup before packs). Still opened, read-only, so
 * restore points made then restore and verify; no chunk, restore point or deletion is written
 * into such a repository (locks still are, as for any reader).
 */
export const READ_ONLY_VERSION = 1;

export interface RepositoryConfig {
  /** Format version; readers refuse versions they do not know. */
  version: number;
  /** 64 hex characters, random at init. */
  id: string;
  /** Bytes per chunk slice of a disk. */
  chunkSize: number;
  compression: 'zstd';
  createdAt: string;
  /** null: unencrypted. Otherwise whatever core/repo/crypto needs to unlock keys/ (kdf, algorithms). */
  encryption: null | Record<string, unknown>;
}

export const MIN_CHUNK_SIZE = 64 * 1024;
export const MAX_CHUNK_SIZE = 64 * 1024 * 1024;

export function encodeConfig(c: RepositoryConfig): Buffer {
  return Buffer.from(JSON.stringify(c, null, 2) + '\n', 'utf8');
}

export function decodeConfig(buf: Buffer, where: string): RepositoryConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(buf.toString('utf8'));
  } catch (err) {
    throw new HvError('ERR_CORRUPT', `${where}: repository config is not valid JSON (${(err as Error).message})`, { target: where, cause: err });
  }
  const c = raw as Partial<RepositoryConfig> | null;
  if (typeof c !== 'object' || c === null || typeof c.version !== 'number') {
    throw new HvError('ERR_CORRUPT', `${where}: repository config has no version field`, { target: where });
  }
  if (c.version !== REPOSITORY_VERSION && c.version !== SPLIT_VERSION && c.version !== SEGMENTS_VERSION && c.version !== PACKS_VERSION && c.version !== READ_ONLY_VERSION) {
    throw new HvError('ERR_UNSUPPORTED', `${where}: repository format version ${c.version} is not supported (this HVBackup reads versions ${READ_ONLY_VERSION} to ${REPOSITORY_VERSION})`, { target: where, data: { version: c.version } });
  }
  const problem = configProblem(c);
  if (problem) throw new HvError('ERR_CORRUPT', `${where}: repository config ${problem}`, { target: where });
  return c as RepositoryConfig;
}

function configProblem(c: Partial<RepositoryConfig>): string | undefined {
  if (typeof c.id !== 'string' || !/^[0-9a-f]{64}$/.test(c.id)) return 'has an invalid id';
  if (!Number.isSafeInteger(c.chunkSize) || c.chunkSize! < MIN_CHUNK_SIZE || c.chunkSize! > MAX_CHUNK_SIZE) return `has an invalid chunkSize ${c.chunkSize}`;
  if (c.compression !== 'zstd') return `names unknown compression ${JSON.stringify(c.compression)}`;
  if (c.encryption !== null && (typeof c.encryption !== 'object' || Array.isArray(c.encryption))) return 'has an invalid encryption field';
  if (typeof c.createdAt !== 'string') return 'has no createdAt';
  return undefined;
}
