// Region table (MS-VHDX 2.3): where the BAT and metadata regions live. Pure codec.
import { MiB, REGION_TABLE_SIZE } from './constants.ts';
import { crc32cWithZeroField } from './crc32c.ts';
import { decodeGuid, encodeGuid } from './guid.ts';

const SIGNATURE = 'regi';
const MAX_ENTRIES = 2047;

export interface RegionEntry {
  guid: string;
  fileOffset: number;
  length: number;
  required: boolean;
}

export type RegionTableDecodeResult = { ok: true; entries: RegionEntry[] } | { ok: false; problem: string };

export function decodeRegionTable(buf: Buffer): RegionTableDecodeResult {
  if (buf.length < REGION_TABLE_SIZE) return { ok: false, problem: 'region table is truncated' };
  const b = buf.subarray(0, REGION_TABLE_SIZE);
  if (b.toString('latin1', 0, 4) !== SIGNATURE) return { ok: false, problem: 'region table signature "regi" missing' };
  const stored = b.readUInt32LE(4);
  const actual = crc32cWithZeroField(b, 4);
  if (stored !== actual) return { ok: false, problem: `region table checksum mismatch (stored 0x${stored.toString(16)}, computed 0x${actual.toString(16)})` };
  const count = b.readUInt32LE(8);
  if (count > MAX_ENTRIES) return { ok: false, problem: `region table entry count ${count} exceeds ${MAX_ENTRIES}` };
  const entries: RegionEntry[] = [];
  for (let i = 0; i < count; i++) {
    const o = 16 + i * 32;
    entries.push({
      guid: decodeGuid(b, o),
      fileOffset: Number(b.readBigUInt64LE(o + 16)),
      length: b.readUInt32LE(o + 24),
      required: (b.readUInt32LE(o + 28) & 1) === 1,
    });
  }
  return { ok: true, entries };
}

export function encodeRegionTable(entries: RegionEntry[]): Buffer {
  const b = Buffer.alloc(REGION_TABLE_SIZE);
  b.write(SIGNATURE, 0, 'latin1');
  b.writeUInt32LE(entries.length, 8);
  entries.forEach((e, i) => {
    const o = 16 + i * 32;
    encodeGuid(e.guid, b, o);
    b.writeBigUInt64LE(BigInt(e.fileOffset), o + 16);
    b.writeUInt32LE(e.length, o + 24);
    b.writeUInt32LE(e.required ? 1 : 0, o + 28);
  });
  b.writeUInt32LE(crc32cWithZeroField(b, 4), 4);
  return b;
}

/** Structural problems of one region entry (alignment), as readable sentences. */
export function regionEntryProblems(e: RegionEntry): string[] {
  const p: string[] = [];
  if (e.fileOffset % MiB !== 0 || e.fileOffset < MiB) p.push(`region ${e.guid} offset ${e.fileOffset} is not a multiple of 1 MiB at or after 1 MiB`);
  if (e.length % MiB !== 0 || e.length === 0) p.push(`region ${e.guid} length ${e.length} is not a non-zero multiple of 1 MiB`);
  return p;
}
