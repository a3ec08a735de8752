// Pack files and pack indexes, byte for byte (docs/repository-format.md "Packs"). Pure
// functions on buffers: no I/O.
//
// A pack is many sealed chunk blobs back to back, then the pack's own index (sealed, the
// same bytes as its index/<name> object), its length and a magic. Each blob is exactly what
// a loose chunk object would hold, so a blob can be cut out of a pack and opened, exported
// to media or checked on its own. The index inside the pack means a lost index/ object is
// rebuilt from the pack alone.
//
// Plain pack index: "HVBPIDX1", u32le count, then per blob 44 bytes:
//   32 bytes chunk id (raw), u32le offset in the pack, u32le stored length, u32le plain length;
//   then the SHA-256 of everything before it. In an unencrypted repository nothing else
//   protects the index, and a damaged chunk id would make GC delete a pack a restore point
//   needs (the chunk looks unreferenced); with the hash a damaged index is refused instead.
// Pack trailer (last 12 bytes): u32le length of the sealed index before it, "HVBPACK1".

import { createHash } from 'node:crypto';
import { HvError } from '../errors.ts';

export const PACK_MAGIC = Buffer.from('HVBPACK1', 'latin1');
export const INDEX_MAGIC = Buffer.from('HVBPIDX1', 'latin1');
export const PACK_TRAILER_SIZE = 4 + PACK_MAGIC.length;
const ENTRY_SIZE = 32 + 4 + 4 + 4;
const HEADER_SIZE = INDEX_MAGIC.length + 4;
const HASH_SIZE = 32;
/** Largest pack a reader accepts: offsets are u32. */
export const MAX_PACK_SIZE = 0xffff_ffff;

export interface PackEntry {
  /** Chunk id, 64 lowercase hex. */
  id: string;
  /** Byte offset of the sealed blob in the pack. */
  offset: number;
  /** Stored (sealed) length of the blob. */
  length: number;
  /** Length of the chunk's plain bytes. */
  plainLength: number;
}

export function encodePackIndex(entries: readonly PackEntry[]): Buffer {
  const body = HEADER_SIZE + entries.length * ENTRY_SIZE;
  const out = Buffer.allocUnsafe(body + HASH_SIZE);
  INDEX_MAGIC.copy(out, 0);
  out.writeUInt32LE(entries.length, INDEX_MAGIC.length);
  let p = HEADER_SIZE;
  for (const e of entries) {
    if (out.write(e.id, p, 32, 'hex') !== 32 || !/^[0-9a-f]{64}$/.test(e.id)) throw new HvError('ERR_INTERNAL', `pack index: chunk id ${e.id} is not 64 hex characters`);
    out.writeUInt32LE(e.offset, p + 32);
    out.writeUInt32LE(e.length, p + 36);
    out.writeUInt32LE(e.plainLength, p + 40);
    p += ENTRY_SIZE;
  }
  createHash('sha256').update(out.subarray(0, body)).digest().copy(out, body);
  return out;
}

/**
 * Inverse of encodePackIndex. `packSize` (when known) bounds every blob: an index that points
 * outside its pack is corrupt, not a read error later. `what` names the object in errors.
 */
export function decodePackIndex(buf: Buffer, what: string, packSize?: number): PackEntry[] {
  const bad = (why: string) => new HvError('ERR_CORRUPT', `${what}: pack index ${why}`, { target: what });
  if (buf.length < HEADER_SIZE || !buf.subarray(0, INDEX_MAGIC.length).equals(INDEX_MAGIC)) throw bad('does not start with HVBPIDX1');
  const count = buf.readUInt32LE(INDEX_MAGIC.length);
  const body = HEADER_SIZE + count * ENTRY_SIZE;
  if (buf.length !== body + HASH_SIZE) throw bad(`is ${buf.length} bytes, ${count} entries need ${body + HASH_SIZE}`);
  if (!createHash('sha256').update(buf.subarray(0, body)).digest().equals(buf.subarray(body))) throw bad('does not match its SHA-256 (damaged)');
  const entries: PackEntry[] = new Array(count);
  let p = HEADER_SIZE;
  for (let i = 0; i < count; i++) {
    const e: PackEntry = { id: buf.toString('hex', p, p + 32), offset: buf.readUInt32LE(p + 32), length: buf.readUInt32LE(p + 36), plainLength: buf.readUInt32LE(p + 40) };
    if (e.length === 0) throw bad(`entry ${i} (${e.id}) has length 0`);
    if (packSize !== undefined && e.offset + e.length > packSize) throw bad(`entry ${i} (${e.id}) ends at ${e.offset + e.length}, beyond the pack's ${packSize} bytes`);
    entries[i] = e;
    p += ENTRY_SIZE;
  }
  return entries;
}

/** The last bytes of a pack: the sealed index's length and the magic. */
export function encodePackTrailer(sealedIndexLength: number): Buffer {
  const t = Buffer.allocUnsafe(PACK_TRAILER_SIZE);
  t.writeUInt32LE(sealedIndexLength, 0);
  PACK_MAGIC.copy(t, 4);
  return t;
}

/** Where the sealed index sits in a pack of `packSize` bytes, from its last PACK_TRAILER_SIZE bytes. */
export function decodePackTrailer(trailer: Buffer, packSize: number, what: string): { offset: number; length: number } {
  if (trailer.length !== PACK_TRAILER_SIZE || !trailer.subarray(4).equals(PACK_MAGIC)) {
    throw new HvError('ERR_CORRUPT', `${what}: not a pack (no HVBPACK1 trailer)`, { target: what });
  }
  const length = trailer.readUInt32LE(0);
  const offset = packSize - PACK_TRAILER_SIZE - length;
  if (offset < 0) throw new HvError('ERR_CORRUPT', `${what}: pack trailer names a ${length}-byte index, larger than the pack`, { target: what });
  return { offset, length };
}
