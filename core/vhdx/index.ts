// Public surface of the VHDX library (MS-VHDX v1.0). Everything else in the engine
// imports from here (or from core/disk), never from the format modules directly.
// CONTRACT: these names and signatures are relied on by backup/restore/hosts; the
// bodies below are placeholders until the library lands.

import type { ByteRange, Disk } from '../disk/disk.ts';
import { HvError } from '../errors.ts';

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
}

export interface CreateOptions {
  size: number;
  type?: 'dynamic' | 'fixed';
  /** Bytes; power of two, 1 MiB to 256 MiB. Default 32 MiB (Hyper-V's default). */
  blockSize?: number;
  logicalSectorSize?: 512 | 4096;
  physicalSectorSize?: 512 | 4096;
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

/** A VHDX or raw image (detected by the "vhdxfile" signature) as a Disk. */
export async function openDisk(path: string, opts: OpenOptions = {}): Promise<Disk> {
  return notImplemented(`openDisk(${path}, ${JSON.stringify(opts)})`);
}

export async function readVhdxInfo(path: string): Promise<VhdxInfo> {
  return notImplemented(`readVhdxInfo(${path})`);
}

/** Create a new VHDX and return it opened for writing. */
export async function createVhdx(path: string, opts: CreateOptions): Promise<Disk> {
  return notImplemented(`createVhdx(${path}, ${JSON.stringify(opts)})`);
}

/** Create a differencing child (.avhdx) of `parentPath`; the child is not opened. */
export async function createDifferencingVhdx(childPath: string, parentPath: string): Promise<void> {
  return notImplemented(`createDifferencingVhdx(${childPath}, ${parentPath})`);
}

/** Merge a differencing child into its parent (Hyper-V's checkpoint delete) and delete the child. */
export async function mergeDifferencingVhdx(childPath: string, opts: { keepChild?: boolean } = {}): Promise<MergeResult> {
  return notImplemented(`mergeDifferencingVhdx(${childPath}, ${JSON.stringify(opts)})`);
}

/** Ranges a differencing child holds (from its BAT and sector bitmaps), without merging. */
export async function differencingChangedRanges(childPath: string): Promise<ByteRange[]> {
  return notImplemented(`differencingChangedRanges(${childPath})`);
}

export async function checkVhdx(path: string, opts: { repair?: boolean } = {}): Promise<CheckResult> {
  return notImplemented(`checkVhdx(${path}, ${JSON.stringify(opts)})`);
}
