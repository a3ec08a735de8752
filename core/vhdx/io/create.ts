// Creating new VHDX files: dynamic, fixed and differencing. Layout as qemu and
// Hyper-V use: headers in the first MiB, log at 1 MiB, metadata at 2 MiB, BAT at 3 MiB.
import { open, unlink } from 'node:fs/promises';
import { HvError, wrapError } from '../../errors.ts';
import { batGeometry, payloadEntryIndex, writeBatEntry } from '../format/bat.ts';
import {
  HEADER_OFFSETS, MiB, PAYLOAD_BLOCK_FULLY_PRESENT, REGION_BAT, REGION_METADATA, REGION_TABLE_OFFSETS,
} from '../format/constants.ts';
import { newGuid, NULL_GUID } from '../format/guid.ts';
import { encodeFileIdentifier, encodeHeader } from '../format/header.ts';
import { encodeDiskMetadataItems, encodeMetadataRegion, type ParentLocator } from '../format/metadata.ts';
import { encodeRegionTable } from '../format/region-table.ts';
import { pwriteFully } from '../../disk/file-io.ts';

export const CREATOR = 'HVBackup 0.1.0';
const LOG_OFFSET = MiB;
const LOG_LENGTH = MiB;
const METADATA_OFFSET = 2 * MiB;
const METADATA_LENGTH = MiB;
const BAT_OFFSET = 3 * MiB;

export interface NewVhdxSpec {
  size: number;
  type: 'dynamic' | 'fixed' | 'differencing';
  blockSize: number;
  logicalSectorSize: number;
  physicalSectorSize: number;
  parentLocator?: ParentLocator;
}

export function validateSpec(path: string, s: NewVhdxSpec): void {
  const bad = (msg: string) => new HvError('ERR_INVALID_ARGUMENT', `cannot create ${path}: ${msg}`, { target: path });
  const bs = s.blockSize;
  if (!Number.isSafeInteger(bs) || bs < MiB || bs > 256 * MiB || (bs & (bs - 1)) !== 0) throw bad(`block size ${bs} must be a power of two from 1 MiB to 256 MiB`);
  for (const [n, v] of [['logical', s.logicalSectorSize], ['physical', s.physicalSectorSize]] as const) {
    if (v !== 512 && v !== 4096) throw bad(`${n} sector size ${v} must be 512 or 4096`);
  }
  if (!Number.isSafeInteger(s.size) || s.size <= 0 || s.size > 64 * 2 ** 40 || s.size % s.logicalSectorSize !== 0) {
    throw bad(`size ${s.size} must be a positive multiple of the logical sector size (${s.logicalSectorSize}) up to 64 TiB`);
  }
}

/** Write a complete new file (refusing to overwrite) and flush it. */
export async function writeNewVhdx(path: string, s: NewVhdxSpec): Promise<void> {
  validateSpec(path, s);
  const hasParent = s.type === 'differencing';
  const g = batGeometry(s.size, s.blockSize, s.logicalSectorSize, hasParent);
  const payloadStart = BAT_OFFSET + g.regionLength;
  // Only a fixed disk's BAT has entries at creation; a dynamic or differencing disk's is all
  // zeros, which the file's extension below reads as without a write (1 MiB and more of
  // zeros written and flushed on every backup checkpoint, for nothing).
  const bat = s.type === 'fixed' ? Buffer.alloc(g.regionLength) : undefined;
  let fileSize = payloadStart;
  if (bat) {
    for (let b = 0; b < g.payloadBlocks; b++) writeBatEntry(bat, payloadEntryIndex(g, b), { state: PAYLOAD_BLOCK_FULLY_PRESENT, fileOffset: payloadStart + b * s.blockSize });
    fileSize += g.payloadBlocks * s.blockSize;
  }
  const items = encodeDiskMetadataItems({
    fileParameters: { blockSize: s.blockSize, leaveBlockAllocated: s.type === 'fixed', hasParent },
    virtualDiskSize: s.size, page83: newGuid(), logicalSectorSize: s.logicalSectorSize, physicalSectorSize: s.physicalSectorSize,
    ...(s.parentLocator ? { parentLocator: s.parentLocator } : {}),
  });
  const regions = encodeRegionTable([
    { guid: REGION_BAT, fileOffset: BAT_OFFSET, length: g.regionLength, required: true },
    { guid: REGION_METADATA, fileOffset: METADATA_OFFSET, length: METADATA_LENGTH, required: true },
  ]);
  const header = { sequenceNumber: 1n, fileWriteGuid: newGuid(), dataWriteGuid: newGuid(), logGuid: NULL_GUID, logVersion: 0, version: 1, logLength: LOG_LENGTH, logOffset: LOG_OFFSET };
  let fh;
  try {
    fh = await open(path, 'wx');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new HvError(e.code === 'EEXIST' ? 'ERR_ALREADY_EXISTS' : 'ERR_IO', `cannot create ${path}: ${e.code === 'EEXIST' ? 'the file already exists' : e.message}`, { target: path, cause: err });
  }
  try {
    await pwriteFully(fh, encodeFileIdentifier({ creator: CREATOR }), 0);
    await pwriteFully(fh, encodeHeader(header), HEADER_OFFSETS[0]);
    await pwriteFully(fh, encodeHeader({ ...header, sequenceNumber: 2n }), HEADER_OFFSETS[1]);
    await pwriteFully(fh, regions, REGION_TABLE_OFFSETS[0]);
    await pwriteFully(fh, regions, REGION_TABLE_OFFSETS[1]);
    await pwriteFully(fh, encodeMetadataRegion(items, METADATA_LENGTH), METADATA_OFFSET);
    if (bat) await pwriteFully(fh, bat, BAT_OFFSET);
    await fh.truncate(fileSize);
    await fh.sync();
  } catch (err) {
    // A file this call made and could not finish (a full volume) is no VHDX: do not leave it.
    await fh.close().catch(() => undefined);
    await unlink(path).catch(() => undefined);
    throw wrapError(err, `create ${path}`, path);
  }
  await fh.close();
}
