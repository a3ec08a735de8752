// File identifier and the two VHDX headers (MS-VHDX 2.1, 2.2). Pure codecs.
import { HEADER_SIZE } from './constants.ts';
import { crc32cWithZeroField } from './crc32c.ts';
import { decodeGuid, encodeGuid } from './guid.ts';

export const FILE_SIGNATURE = 'vhdxfile';
const HEADER_SIGNATURE = 'head';
const CREATOR_OFFSET = 8;
const CREATOR_BYTES = 512;

export interface FileIdentifier {
  creator: string;
}

export function isVhdxSignature(buf: Uint8Array): boolean {
  return buf.length >= 8 && Buffer.from(buf.buffer, buf.byteOffset, 8).toString('latin1') === FILE_SIGNATURE;
}

export function decodeFileIdentifier(buf: Buffer): FileIdentifier | undefined {
  if (!isVhdxSignature(buf)) return undefined;
  const raw = buf.subarray(CREATOR_OFFSET, CREATOR_OFFSET + CREATOR_BYTES).toString('utf16le');
  const nul = raw.indexOf('\0');
  return { creator: nul < 0 ? raw : raw.slice(0, nul) };
}

export function encodeFileIdentifier(id: FileIdentifier): Buffer {
  const buf = Buffer.alloc(64 * 1024);
  buf.write(FILE_SIGNATURE, 0, 'latin1');
  buf.write(id.creator.slice(0, CREATOR_BYTES / 2 - 1), CREATOR_OFFSET, 'utf16le');
  return buf;
}

export interface VhdxHeader {
  sequenceNumber: bigint;
  fileWriteGuid: string;
  dataWriteGuid: string;
  /** NULL_GUID when the log is empty. */
  logGuid: string;
  logVersion: number;
  version: number;
  logLength: number;
  logOffset: number;
}

export type HeaderDecodeResult = { ok: true; header: VhdxHeader } | { ok: false; problem: string };

/** Decode a 4 KiB header; a wrong signature, checksum or version is reported, not thrown. */
export function decodeHeader(buf: Buffer): HeaderDecodeResult {
  if (buf.length < HEADER_SIZE) return { ok: false, problem: 'header is truncated' };
  const b = buf.subarray(0, HEADER_SIZE);
  if (b.toString('latin1', 0, 4) !== HEADER_SIGNATURE) return { ok: false, problem: 'header signature "head" missing' };
  const stored = b.readUInt32LE(4);
  const actual = crc32cWithZeroField(b, 4);
  if (stored !== actual) return { ok: false, problem: `header checksum mismatch (stored 0x${stored.toString(16)}, computed 0x${actual.toString(16)})` };
  const header: VhdxHeader = {
    sequenceNumber: b.readBigUInt64LE(8),
    fileWriteGuid: decodeGuid(b, 16),
    dataWriteGuid: decodeGuid(b, 32),
    logGuid: decodeGuid(b, 48),
    logVersion: b.readUInt16LE(64),
    version: b.readUInt16LE(66),
    logLength: b.readUInt32LE(68),
    logOffset: Number(b.readBigUInt64LE(72)),
  };
  if (header.version !== 1) return { ok: false, problem: `header version ${header.version} is not 1` };
  return { ok: true, header };
}

export function encodeHeader(h: VhdxHeader): Buffer {
  const b = Buffer.alloc(HEADER_SIZE);
  b.write(HEADER_SIGNATURE, 0, 'latin1');
  b.writeBigUInt64LE(h.sequenceNumber, 8);
  encodeGuid(h.fileWriteGuid, b, 16);
  encodeGuid(h.dataWriteGuid, b, 32);
  encodeGuid(h.logGuid, b, 48);
  b.writeUInt16LE(h.logVersion, 64);
  b.writeUInt16LE(h.version, 66);
  b.writeUInt32LE(h.logLength, 68);
  b.writeBigUInt64LE(BigInt(h.logOffset), 72);
  b.writeUInt32LE(crc32cWithZeroField(b, 4), 4);
  return b;
}

/**
 * Pick the current header: the valid one with the higher sequence number. Equal
 * numbers are accepted only when the headers are identical (Disk2VHD writes them so).
 */
export function selectHeader(h1: HeaderDecodeResult, h2: HeaderDecodeResult): { index: 0 | 1; header: VhdxHeader } | { problem: string } {
  if (h1.ok && h2.ok) {
    if (h1.header.sequenceNumber === h2.header.sequenceNumber) {
      if (JSON.stringify(h1.header, bigintJson) !== JSON.stringify(h2.header, bigintJson)) {
        return { problem: 'both headers have the same sequence number but differ' };
      }
      return { index: 0, header: h1.header };
    }
    return h1.header.sequenceNumber > h2.header.sequenceNumber ? { index: 0, header: h1.header } : { index: 1, header: h2.header };
  }
  if (h1.ok) return { index: 0, header: h1.header };
  if (h2.ok) return { index: 1, header: h2.header };
  return { problem: `no valid header (header 1: ${h1.problem}; header 2: ${h2.problem})` };
}

function bigintJson(_k: string, v: unknown): unknown {
  return typeof v === 'bigint' ? v.toString() : v;
}
