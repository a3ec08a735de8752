// GUIDs as MS-VHDX stores them: Data1 u32 LE, Data2/Data3 u16 LE, Data4 8 raw bytes.
// In memory we use canonical lower-case strings without braces ("2dc27766-f623-...").
import { randomBytes } from 'node:crypto';

const RE = /^\{?([0-9a-f]{8})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{12})\}?$/i;
export const NULL_GUID = '00000000-0000-0000-0000-000000000000';

export function decodeGuid(buf: Uint8Array, offset = 0): string {
  const b = Buffer.from(buf.buffer, buf.byteOffset + offset, 16);
  const hex = (n: number, w: number) => n.toString(16).padStart(w, '0');
  const d4 = b.subarray(8, 16).toString('hex');
  return `${hex(b.readUInt32LE(0), 8)}-${hex(b.readUInt16LE(4), 4)}-${hex(b.readUInt16LE(6), 4)}-${d4.slice(0, 4)}-${d4.slice(4)}`;
}

export function encodeGuid(guid: string, out: Buffer, offset = 0): void {
  const m = RE.exec(guid);
  if (!m) throw new RangeError(`not a GUID: ${guid}`);
  out.writeUInt32LE(parseInt(m[1], 16), offset);
  out.writeUInt16LE(parseInt(m[2], 16), offset + 4);
  out.writeUInt16LE(parseInt(m[3], 16), offset + 6);
  Buffer.from(m[4] + m[5], 'hex').copy(out, offset + 8);
}

/** Canonical form: lower case, no braces; returns undefined when `s` is not a GUID. */
export function normalizeGuid(s: string): string | undefined {
  const m = RE.exec(s.trim());
  return m ? `${m[1]}-${m[2]}-${m[3]}-${m[4]}-${m[5]}`.toLowerCase() : undefined;
}

export function bracedGuid(guid: string): string {
  return `{${guid.toLowerCase()}}`;
}

/** A random (version 4) GUID. */
export function newGuid(): string {
  const b = randomBytes(16);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
