// Metadata region (MS-VHDX 2.6): the table, the known items and the parent locator.
// Pure codecs over the region's bytes. The table has no checksum.
import {
  META_FILE_PARAMETERS, META_LOGICAL_SECTOR_SIZE, META_PAGE83, META_PARENT_LOCATOR,
  META_PHYSICAL_SECTOR_SIZE, META_VIRTUAL_DISK_SIZE, METADATA_TABLE_SIZE, MiB,
} from './constants.ts';
import { decodeGuid, encodeGuid } from './guid.ts';

const SIGNATURE = 'metadata';
const MAX_ENTRIES = 2047;

export interface MetadataEntry {
  itemId: string;
  offset: number;
  length: number;
  isUser: boolean;
  isVirtualDisk: boolean;
  isRequired: boolean;
}

export type MetadataTableResult = { ok: true; entries: MetadataEntry[] } | { ok: false; problem: string };

export function decodeMetadataTable(buf: Buffer): MetadataTableResult {
  if (buf.length < METADATA_TABLE_SIZE) return { ok: false, problem: 'metadata table is truncated' };
  if (buf.toString('latin1', 0, 8) !== SIGNATURE) return { ok: false, problem: 'metadata table signature "metadata" missing' };
  const count = buf.readUInt16LE(10);
  if (count > MAX_ENTRIES) return { ok: false, problem: `metadata entry count ${count} exceeds ${MAX_ENTRIES}` };
  const entries: MetadataEntry[] = [];
  for (let i = 0; i < count; i++) {
    const o = 32 + i * 32;
    const flags = buf.readUInt32LE(o + 24);
    entries.push({
      itemId: decodeGuid(buf, o),
      offset: buf.readUInt32LE(o + 16),
      length: buf.readUInt32LE(o + 20),
      isUser: (flags & 1) !== 0,
      isVirtualDisk: (flags & 2) !== 0,
      isRequired: (flags & 4) !== 0,
    });
  }
  return { ok: true, entries };
}

/** Problems of one entry against the region length (offset/length rules of 2.6.1.2). */
export function metadataEntryProblems(e: MetadataEntry, regionLength: number): string[] {
  if (e.length === 0) return e.offset === 0 ? [] : [`metadata item ${e.itemId} has length 0 but offset ${e.offset}`];
  const p: string[] = [];
  if (e.offset < METADATA_TABLE_SIZE) p.push(`metadata item ${e.itemId} offset ${e.offset} lies inside the metadata table`);
  if (e.length > MiB) p.push(`metadata item ${e.itemId} length ${e.length} exceeds 1 MiB`);
  if (e.offset + e.length > regionLength) p.push(`metadata item ${e.itemId} (offset ${e.offset}, length ${e.length}) runs past the metadata region (${regionLength} bytes)`);
  return p;
}

export interface FileParameters {
  blockSize: number;
  leaveBlockAllocated: boolean;
  hasParent: boolean;
}

export function decodeFileParameters(b: Buffer): FileParameters {
  const flags = b.readUInt32LE(4);
  return { blockSize: b.readUInt32LE(0), leaveBlockAllocated: (flags & 1) !== 0, hasParent: (flags & 2) !== 0 };
}

export function encodeFileParameters(p: FileParameters): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt32LE(p.blockSize, 0);
  b.writeUInt32LE((p.leaveBlockAllocated ? 1 : 0) | (p.hasParent ? 2 : 0), 4);
  return b;
}

export interface ParentLocator {
  locatorType: string;
  /** Keys and values in file order (duplicates are a structural problem the caller may report). */
  entries: [string, string][];
}

export function decodeParentLocator(b: Buffer): ParentLocator {
  if (b.length < 20) throw new RangeError('parent locator is shorter than its 20-byte header');
  const count = b.readUInt16LE(18);
  const entries: [string, string][] = [];
  for (let i = 0; i < count; i++) {
    const o = 20 + i * 12;
    if (o + 12 > b.length) throw new RangeError(`parent locator entry ${i} lies outside the item`);
    const ko = b.readUInt32LE(o), vo = b.readUInt32LE(o + 4), kl = b.readUInt16LE(o + 8), vl = b.readUInt16LE(o + 10);
    if (ko + kl > b.length || vo + vl > b.length) throw new RangeError(`parent locator entry ${i} points outside the item`);
    entries.push([b.toString('utf16le', ko, ko + kl), b.toString('utf16le', vo, vo + vl)]);
  }
  return { locatorType: decodeGuid(b, 0), entries };
}

/** Offsets are relative to the start of the item, lengths in bytes, strings UTF-16LE without NUL. */
export function encodeParentLocator(p: ParentLocator): Buffer {
  const header = Buffer.alloc(20 + p.entries.length * 12);
  encodeGuid(p.locatorType, header, 0);
  header.writeUInt16LE(p.entries.length, 18);
  const strings: Buffer[] = [];
  let pos = header.length;
  p.entries.forEach(([k, v], i) => {
    const kb = Buffer.from(k, 'utf16le'), vb = Buffer.from(v, 'utf16le');
    const o = 20 + i * 12;
    header.writeUInt32LE(pos, o);
    header.writeUInt32LE(pos + kb.length, o + 4);
    header.writeUInt16LE(kb.length, o + 8);
    header.writeUInt16LE(vb.length, o + 10);
    strings.push(kb, vb);
    pos += kb.length + vb.length;
  });
  return Buffer.concat([header, ...strings]);
}

export interface MetadataItem {
  itemId: string;
  data: Buffer;
  isVirtualDisk: boolean;
  isRequired: boolean;
}

/**
 * A metadata region: table then items packed from 64 KiB, as qemu and Hyper-V lay it out. The
 * buffer holds the region's used bytes only (whole 4 KiB pages): the rest of the region is
 * zeros, which a new file leaves unwritten.
 */
export function encodeMetadataRegion(items: MetadataItem[], regionLength: number): Buffer {
  let used = METADATA_TABLE_SIZE;
  for (const it of items) used += Math.ceil(it.data.length / 8) * 8;
  if (used > regionLength) throw new RangeError('metadata items do not fit in the region');
  const b = Buffer.alloc(Math.ceil(used / 4096) * 4096);
  b.write(SIGNATURE, 0, 'latin1');
  b.writeUInt16LE(items.length, 10);
  let pos = METADATA_TABLE_SIZE;
  items.forEach((it, i) => {
    const o = 32 + i * 32;
    encodeGuid(it.itemId, b, o);
    b.writeUInt32LE(it.data.length === 0 ? 0 : pos, o + 16);
    b.writeUInt32LE(it.data.length, o + 20);
    b.writeUInt32LE((it.isVirtualDisk ? 2 : 0) | (it.isRequired ? 4 : 0), o + 24);
    it.data.copy(b, pos);
    pos += Math.ceil(it.data.length / 8) * 8;
  });
  return b;
}

export interface DiskMetadata {
  fileParameters: FileParameters;
  virtualDiskSize: number;
  page83: string;
  logicalSectorSize: number;
  physicalSectorSize: number;
  parentLocator?: ParentLocator;
}

export function encodeDiskMetadataItems(m: DiskMetadata): MetadataItem[] {
  const u32 = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(n); return b; };
  const u64 = (n: number) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(n)); return b; };
  const g = Buffer.alloc(16);
  encodeGuid(m.page83, g);
  const items: MetadataItem[] = [
    { itemId: META_FILE_PARAMETERS, data: encodeFileParameters(m.fileParameters), isVirtualDisk: false, isRequired: true },
    { itemId: META_VIRTUAL_DISK_SIZE, data: u64(m.virtualDiskSize), isVirtualDisk: true, isRequired: true },
    { itemId: META_PAGE83, data: g, isVirtualDisk: true, isRequired: true },
    { itemId: META_LOGICAL_SECTOR_SIZE, data: u32(m.logicalSectorSize), isVirtualDisk: true, isRequired: true },
    { itemId: META_PHYSICAL_SECTOR_SIZE, data: u32(m.physicalSectorSize), isVirtualDisk: true, isRequired: true },
  ];
  if (m.parentLocator) items.push({ itemId: META_PARENT_LOCATOR, data: encodeParentLocator(m.parentLocator), isVirtualDisk: false, isRequired: true });
  return items;
}

const ITEM_SIZES: Record<string, number> = {
  [META_FILE_PARAMETERS]: 8, [META_VIRTUAL_DISK_SIZE]: 8, [META_PAGE83]: 16,
  [META_LOGICAL_SECTOR_SIZE]: 4, [META_PHYSICAL_SECTOR_SIZE]: 4,
};

/** Decode the known items from their bytes (keyed by item id); throws RangeError naming what is wrong. */
export function decodeDiskMetadata(items: Map<string, Buffer>): DiskMetadata {
  const need = (id: string, name: string) => {
    const b = items.get(id);
    if (!b) throw new RangeError(`required metadata item ${name} (${id}) is missing`);
    if (b.length < ITEM_SIZES[id]) throw new RangeError(`metadata item ${name} is ${b.length} bytes, expected ${ITEM_SIZES[id]}`);
    return b;
  };
  const fileParameters = decodeFileParameters(need(META_FILE_PARAMETERS, 'File Parameters'));
  const m: DiskMetadata = {
    fileParameters,
    virtualDiskSize: Number(need(META_VIRTUAL_DISK_SIZE, 'Virtual Disk Size').readBigUInt64LE(0)),
    page83: decodeGuid(need(META_PAGE83, 'Page 83 Data'), 0),
    logicalSectorSize: need(META_LOGICAL_SECTOR_SIZE, 'Logical Sector Size').readUInt32LE(0),
    physicalSectorSize: need(META_PHYSICAL_SECTOR_SIZE, 'Physical Sector Size').readUInt32LE(0),
  };
  const pl = items.get(META_PARENT_LOCATOR);
  if (fileParameters.hasParent) {
    if (!pl) throw new RangeError('HasParent is set but the Parent Locator metadata item is missing');
    m.parentLocator = decodeParentLocator(pl);
  }
  return m;
}

/** Semantic checks on decoded metadata; each problem as one sentence. */
export function diskMetadataProblems(m: DiskMetadata): string[] {
  const p: string[] = [];
  const bs = m.fileParameters.blockSize;
  if (bs < MiB || bs > 256 * MiB || (bs & (bs - 1)) !== 0) p.push(`block size ${bs} is not a power of two between 1 MiB and 256 MiB`);
  if (m.logicalSectorSize !== 512 && m.logicalSectorSize !== 4096) p.push(`logical sector size ${m.logicalSectorSize} is not 512 or 4096`);
  if (m.physicalSectorSize !== 512 && m.physicalSectorSize !== 4096) p.push(`physical sector size ${m.physicalSectorSize} is not 512 or 4096`);
  if (m.virtualDiskSize <= 0 || m.virtualDiskSize > 64 * 2 ** 40 || m.virtualDiskSize % m.logicalSectorSize !== 0) {
    p.push(`virtual disk size ${m.virtualDiskSize} is not a positive multiple of the logical sector size up to 64 TiB`);
  }
  return p;
}
