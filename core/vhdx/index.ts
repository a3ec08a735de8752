// Public surface of the VHDX library (MS-VHDX v1.0). Everything else in the engine
// imports from here (or from core/disk), never from the format modules directly.
// CONTRACT: these names and signatures are relied on by backup/restore/hosts.

import { existsSync } from 'node:fs';
import { open } from 'node:fs/promises';
import type { ByteRange, Disk } from '../disk/disk.ts';
import { RawDisk } from '../disk/raw.ts';
import { HvError } from '../errors.ts';
import { MiB } from './format/constants.ts';
import { isVhdxSignature } from './format/header.ts';
import { checkFile } from './io/check.ts';
import { writeNewVhdx } from './io/create.ts';
import { changedRanges, mergeChild } from './io/merge.ts';
import { openVhdxDisk } from './io/open.ts';
import { buildParentLocator, parentCandidates } from './io/parent.ts';
import { VhdxDisk } from './io/vhdx-disk.ts';

export { VhdxDisk };
export { vhdxTestHooks } from './io/vhdx-file.ts';

export type VhdxType = 'fixed' | 'dynamic' | 'differencing';

export interface VhdxInfo {
  path: string;
  type: VhdxType;
  virtualSize: number;
  blockSize: number;
  logicalSectorSize: number;
  physicalSectorSize: number;
  /** Braced lower-case GUID strings, e.g. "{83ed0ec3-...}". */
  dataWriteGuid: string;
  fileWriteGuid: string;
  page83Id: string;
  /** Bytes of payload blocks allocated in this file (not counting the parent). */
  allocatedBytes: number;
  fileSize: number;
  logPending: boolean;
  parent?: { linkage: string; relativePath?: string; absoluteWin32Path?: string; volumePath?: string; resolvedPath?: string };
}

export interface OpenOptions {
  /** Open for writing (replays a pending log first). Default read-only. */
  writable?: boolean;
  /** Read-only open of a disk whose log needs replay: replay into memory instead of refusing. */
  replayLogInMemory?: boolean;
  /**
   * Default true: every completed write call is on stable storage. false: each call is
   * still one log transaction, but nothing is flushed until flush()/close(), as
   * qemu-img convert does by default; only for a target discarded if the process dies.
   */
  durable?: boolean;
}

export interface CreateOptions {
  size: number;
  type?: 'dynamic' | 'fixed';
  /** Bytes; power of two, 1 MiB to 256 MiB. Default 32 MiB (Hyper-V's default). */
  blockSize?: number;
  logicalSectorSize?: 512 | 4096;
  physicalSectorSize?: 512 | 4096;
  /** See OpenOptions.durable. */
  durable?: boolean;
  /**
   * Payload writes from page-aligned buffers (alignedBuffer in core/disk/file-io.ts) at
   * 4 KiB-aligned offsets bypass the page cache (O_DIRECT); other writes are buffered as usual.
   */
  directWrites?: boolean;
}

export interface MergeResult {
  parentPath: string;
  /** Virtual byte ranges the child had written (block- or sector-granular), sorted, merged. */
  changed: ByteRange[];
}

export interface CheckResult {
  path: string;
  problems: string[];
  repaired: string[];
}

export function notImplemented(what: string): never {
  throw new HvError('ERR_UNSUPPORTED', `${what} is not implemented yet`);
}

const VHDX_EXTENSION = /\.a?vhdx$/i;

async function hasVhdxSignature(path: string): Promise<boolean> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new HvError(e.code === 'ENOENT' ? 'ERR_NOT_FOUND' : 'ERR_IO', `cannot open ${path}: ${e.message}`, { target: path, cause: err });
  }
  try {
    const b = Buffer.alloc(8);
    await fh.read(b, 0, 8, 0);
    return isVhdxSignature(b);
  } finally {
    await fh.close();
  }
}

/**
 * A VHDX or raw image (detected by the "vhdxfile" signature) as a Disk. A file named
 * .vhdx/.avhdx without the signature is an error, never silently read as raw.
 */
export async function openDisk(path: string, opts: OpenOptions = {}): Promise<Disk> {
  if (await hasVhdxSignature(path)) return openVhdxDisk(path, opts);
  if (VHDX_EXTENSION.test(path)) {
    throw new HvError('ERR_CORRUPT', `${path}: not a VHDX file (no "vhdxfile" signature at offset 0)`, { target: path });
  }
  return RawDisk.open(path, { writable: opts.writable });
}

export async function readVhdxInfo(path: string): Promise<VhdxInfo> {
  const disk = await openVhdxDisk(path, { replayLogInMemory: true, withoutParent: true });
  try {
    const info = disk.info;
    info.logPending = disk.file.overlay !== undefined;
    // Where the parent would be found, without opening (and so without requiring) it.
    const resolved = info.parent && parentCandidates(path, info.parent).find((p) => existsSync(p));
    if (info.parent && resolved) info.parent.resolvedPath = resolved;
    return info;
  } finally {
    await disk.close();
  }
}

/** Create a new VHDX and return it opened for writing. */
export async function createVhdx(path: string, opts: CreateOptions): Promise<VhdxDisk> {
  await writeNewVhdx(path, {
    size: opts.size, type: opts.type ?? 'dynamic', blockSize: opts.blockSize ?? 32 * MiB,
    logicalSectorSize: opts.logicalSectorSize ?? 512, physicalSectorSize: opts.physicalSectorSize ?? 4096,
  });
  return openVhdxDisk(path, { writable: true, durable: opts.durable, directWrites: opts.directWrites });
}

/** Create a differencing child (.avhdx) of `parentPath`; the child is not opened. */
export async function createDifferencingVhdx(childPath: string, parentPath: string): Promise<void> {
  const parent = await openVhdxDisk(parentPath);
  try {
    const info = parent.info;
    await writeNewVhdx(childPath, {
      size: info.virtualSize, type: 'differencing', blockSize: info.blockSize,
      logicalSectorSize: info.logicalSectorSize, physicalSectorSize: info.physicalSectorSize,
      parentLocator: buildParentLocator(childPath, parentPath, parent.file.header.dataWriteGuid),
    });
  } finally {
    await parent.close();
  }
}

/**
 * Merge a differencing child into its parent (Hyper-V's checkpoint delete) and delete the child.
 * resume: finish a merge that was interrupted (the parent's DataWriteGuid no longer matches the
 * child's parent_linkage because the first attempt already wrote it).
 */
export async function mergeDifferencingVhdx(childPath: string, opts: { keepChild?: boolean; resume?: boolean } = {}): Promise<MergeResult> {
  return mergeChild(childPath, opts);
}

/** Ranges a differencing child holds (from its BAT and sector bitmaps), without merging. */
export async function differencingChangedRanges(childPath: string): Promise<ByteRange[]> {
  return changedRanges(childPath);
}

export async function checkVhdx(path: string, opts: { repair?: boolean } = {}): Promise<CheckResult> {
  return checkFile(path, opts);
}

export { copyDisk, type CopyOptions } from './io/convert.ts';
