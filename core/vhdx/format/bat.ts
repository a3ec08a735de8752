// Block Allocation Table (MS-VHDX 2.5): geometry (payload/sector-bitmap interleave)
// and entry packing. The in-memory BAT is the on-disk byte image, so changed 4 KiB
// pages can be logged as they are.
import { MiB, SECTORS_PER_CHUNK } from './constants.ts';

export interface BatGeometry {
  blockSize: number;
  logicalSectorSize: number;
  virtualSize: number;
  hasParent: boolean;
  /** Payload blocks per sector-bitmap block: 2^23 * logicalSectorSize / blockSize. */
  chunkRatio: number;
  payloadBlocks: number;
  sectorBitmapBlocks: number;
  totalEntries: number;
  /** Bytes of BAT entries rounded up to 1 MiB (the minimum region length). */
  regionLength: number;
}

export function batGeometry(virtualSize: number, blockSize: number, logicalSectorSize: number, hasParent: boolean): BatGeometry {
  const chunkRatio = (SECTORS_PER_CHUNK * logicalSectorSize) / blockSize;
  const payloadBlocks = Math.ceil(virtualSize / blockSize);
  const sectorBitmapBlocks = Math.ceil(payloadBlocks / chunkRatio);
  // MS-VHDX 2.5: differencing disks carry a sector-bitmap entry after every chunk,
  // including a trailing partial chunk; others only between full chunks.
  const totalEntries = hasParent
    ? sectorBitmapBlocks * (chunkRatio + 1)
    : payloadBlocks + Math.floor((payloadBlocks - 1) / chunkRatio);
  const regionLength = Math.ceil((totalEntries * 8) / MiB) * MiB;
  return { blockSize, logicalSectorSize, virtualSize, hasParent, chunkRatio, payloadBlocks, sectorBitmapBlocks, totalEntries, regionLength };
}

/** BAT index of payload block `block`. */
export function payloadEntryIndex(g: BatGeometry, block: number): number {
  return block + Math.floor(block / g.chunkRatio);
}

/** BAT index of the sector-bitmap entry for chunk `chunk`. */
export function sectorBitmapEntryIndex(g: BatGeometry, chunk: number): number {
  return (chunk + 1) * (g.chunkRatio + 1) - 1;
}

export interface BatEntry {
  state: number;
  /** File offset in bytes (a multiple of 1 MiB), 0 when none. */
  fileOffset: number;
}

export function readBatEntry(bat: Buffer, index: number): BatEntry {
  const lo = bat.readUInt32LE(index * 8);
  const hi = bat.readUInt32LE(index * 8 + 4);
  return { state: lo & 7, fileOffset: ((lo >>> 20) + hi * 4096) * MiB };
}

export function writeBatEntry(bat: Buffer, index: number, e: BatEntry): void {
  if (e.fileOffset % MiB !== 0) throw new RangeError(`BAT file offset ${e.fileOffset} is not a multiple of 1 MiB`);
  const mb = e.fileOffset / MiB;
  bat.writeUInt32LE((((mb % 4096) << 20) | (e.state & 7)) >>> 0, index * 8);
  bat.writeUInt32LE(Math.floor(mb / 4096), index * 8 + 4);
}

/** Reserved bits 3..19 must be zero. */
export function batEntryReservedBits(bat: Buffer, index: number): number {
  return (bat.readUInt32LE(index * 8) >>> 3) & 0x1ffff;
}
