// Log entries (MS-VHDX 2.3.1): header, zero/data descriptors and data sectors. Pure
// codecs; the ring buffer handling lives in io/log.ts.
import { LOG_SECTOR_SIZE } from './constants.ts';
import { crc32cWithZeroField } from './crc32c.ts';
import { decodeGuid, encodeGuid } from './guid.ts';

const ENTRY_SIGNATURE = 'loge';
const FIRST_SECTOR_DESCRIPTORS = 126;
const DESCRIPTORS_PER_SECTOR = 128;

export type LogDescriptor =
  | { kind: 'zero'; fileOffset: number; length: number; sequenceNumber: bigint }
  | { kind: 'data'; fileOffset: number; sequenceNumber: bigint; leading: Buffer; trailing: Buffer; data?: Buffer };

export interface LogEntryHeader {
  entryLength: number;
  tail: number;
  sequenceNumber: bigint;
  descriptorCount: number;
  logGuid: string;
  flushedFileOffset: number;
  lastFileOffset: number;
}

export interface LogEntry extends LogEntryHeader {
  descriptors: LogDescriptor[];
}

/** A change to log: a whole 4 KiB page (`data`) or a 4 KiB-multiple zero range. */
export type LogWrite = { fileOffset: number; data: Buffer } | { fileOffset: number; zeroLength: number };

export function descriptorSectors(count: number): number {
  return count <= FIRST_SECTOR_DESCRIPTORS ? 1 : 1 + Math.ceil((count - FIRST_SECTOR_DESCRIPTORS) / DESCRIPTORS_PER_SECTOR);
}

export function entryLengthFor(writes: LogWrite[]): number {
  const dataSectors = writes.filter((w) => 'data' in w).length;
  return (descriptorSectors(writes.length) + dataSectors) * LOG_SECTOR_SIZE;
}

/** Encode one log entry holding `writes` (page writes must be exactly 4 KiB). */
export function encodeLogEntry(h: Omit<LogEntryHeader, 'entryLength' | 'descriptorCount'>, writes: LogWrite[]): Buffer {
  const entryLength = entryLengthFor(writes);
  const b = Buffer.alloc(entryLength);
  b.write(ENTRY_SIGNATURE, 0, 'latin1');
  b.writeUInt32LE(entryLength, 8);
  b.writeUInt32LE(h.tail, 12);
  b.writeBigUInt64LE(h.sequenceNumber, 16);
  b.writeUInt32LE(writes.length, 24);
  encodeGuid(h.logGuid, b, 32);
  b.writeBigUInt64LE(BigInt(h.flushedFileOffset), 48);
  b.writeBigUInt64LE(BigInt(h.lastFileOffset), 56);
  let dataPos = descriptorSectors(writes.length) * LOG_SECTOR_SIZE;
  const seqHi = Number(h.sequenceNumber >> 32n), seqLo = Number(h.sequenceNumber & 0xffffffffn);
  writes.forEach((w, i) => {
    const d = 64 + i * 32;
    if ('zeroLength' in w) {
      b.write('zero', d, 'latin1');
      b.writeBigUInt64LE(BigInt(w.zeroLength), d + 8);
    } else {
      if (w.data.length !== LOG_SECTOR_SIZE) throw new RangeError('a logged data write must be one 4 KiB sector');
      b.write('desc', d, 'latin1');
      b.writeUInt32LE(w.data.readUInt32LE(4092), d + 4);
      w.data.copy(b, d + 8, 0, 8);
      b.write('data', dataPos, 'latin1');
      b.writeUInt32LE(seqHi, dataPos + 4);
      w.data.copy(b, dataPos + 8, 8, 4092);
      b.writeUInt32LE(seqLo, dataPos + 4092);
      dataPos += LOG_SECTOR_SIZE;
    }
    b.writeBigUInt64LE(BigInt(w.fileOffset), d + 16);
    b.writeBigUInt64LE(h.sequenceNumber, d + 24);
  });
  b.writeUInt32LE(crc32cWithZeroField(b, 4), 4);
  return b;
}

/** Decode just the 64-byte entry header, or undefined if the signature is absent. */
export function decodeLogEntryHeader(b: Buffer): LogEntryHeader | undefined {
  if (b.length < 64 || b.toString('latin1', 0, 4) !== ENTRY_SIGNATURE) return undefined;
  return {
    entryLength: b.readUInt32LE(8),
    tail: b.readUInt32LE(12),
    sequenceNumber: b.readBigUInt64LE(16),
    descriptorCount: b.readUInt32LE(24),
    logGuid: decodeGuid(b, 32),
    flushedFileOffset: Number(b.readBigUInt64LE(48)),
    lastFileOffset: Number(b.readBigUInt64LE(56)),
  };
}

/**
 * Decode and validate a whole entry (`b` is exactly EntryLength bytes). Returns a
 * problem string when the checksum, descriptors or data sectors do not hold.
 */
export function decodeLogEntry(b: Buffer): { ok: true; entry: LogEntry } | { ok: false; problem: string } {
  const h = decodeLogEntryHeader(b);
  if (!h) return { ok: false, problem: 'log entry signature "loge" missing' };
  if (h.entryLength !== b.length || h.entryLength % LOG_SECTOR_SIZE !== 0) return { ok: false, problem: `log entry length ${h.entryLength} is invalid` };
  if (crc32cWithZeroField(b, 4) !== b.readUInt32LE(4)) return { ok: false, problem: `log entry ${h.sequenceNumber} checksum mismatch` };
  if (h.sequenceNumber === 0n) return { ok: false, problem: 'log entry sequence number is 0' };
  const descriptors: LogDescriptor[] = [];
  let dataPos = descriptorSectors(h.descriptorCount) * LOG_SECTOR_SIZE;
  for (let i = 0; i < h.descriptorCount; i++) {
    const d = 64 + i * 32;
    if (d + 32 > b.length) return { ok: false, problem: `log entry ${h.sequenceNumber} descriptor ${i} lies outside the entry` };
    const sig = b.toString('latin1', d, d + 4);
    const fileOffset = Number(b.readBigUInt64LE(d + 16));
    const sequenceNumber = b.readBigUInt64LE(d + 24);
    if (sequenceNumber !== h.sequenceNumber) return { ok: false, problem: `log entry ${h.sequenceNumber} descriptor ${i} has sequence number ${sequenceNumber}` };
    if (fileOffset % LOG_SECTOR_SIZE !== 0) return { ok: false, problem: `log entry ${h.sequenceNumber} descriptor ${i} offset ${fileOffset} is not 4 KiB aligned` };
    if (sig === 'zero') {
      descriptors.push({ kind: 'zero', fileOffset, length: Number(b.readBigUInt64LE(d + 8)), sequenceNumber });
    } else if (sig === 'desc') {
      if (dataPos + LOG_SECTOR_SIZE > b.length || b.toString('latin1', dataPos, dataPos + 4) !== 'data') {
        return { ok: false, problem: `log entry ${h.sequenceNumber} data sector ${i} is missing` };
      }
      const seq = (BigInt(b.readUInt32LE(dataPos + 4)) << 32n) | BigInt(b.readUInt32LE(dataPos + 4092));
      if (seq !== h.sequenceNumber) return { ok: false, problem: `log entry ${h.sequenceNumber} data sector ${i} has sequence number ${seq}` };
      const data = Buffer.alloc(LOG_SECTOR_SIZE);
      b.copy(data, 0, d + 8, d + 16);
      b.copy(data, 8, dataPos + 8, dataPos + 4092);
      b.copy(data, 4092, d + 4, d + 8);
      descriptors.push({ kind: 'data', fileOffset, sequenceNumber, leading: data.subarray(0, 8), trailing: data.subarray(4092), data });
      dataPos += LOG_SECTOR_SIZE;
    } else {
      return { ok: false, problem: `log entry ${h.sequenceNumber} descriptor ${i} has unknown signature "${sig}"` };
    }
  }
  return { ok: true, entry: { ...h, descriptors } };
}

