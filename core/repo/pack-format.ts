// Pack files and pack indexes, byte for byte (docs/repository-format.md "Packs"). Pure
// functions on buffers: no I/O.
//
// A pack is many sealed chunk blobs back to back, then the pack's own index (sealed, the
// same bytes a one-pack index/<pack> object holds), its length and a magic. Each blob is
// exactly what a loose chunk object would hold, so a blob can be cut out of a pack and
// opened, exported to media or checked on its own. The index inside the pack means a pack no
// index/ object lists (lost, or a killed backup's) is indexed again from the pack alone.
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
 * A pack index checked whole and read where it is: entry i's raw 32-byte id is at
 * `buf[PACK_INDEX_HEADER + i * PACK_ENTRY_SIZE]`, its offset, stored and plain lengths the
 * u32le words after it. The chunk index copies ids from here into its records instead of
 * decoding them to hex strings and parsing those back (loading a 64,696-chunk index from 181
 * objects: 90–111 CPU-ms before, 77–94 after; 71–78 with its table sized up front).
 */
export interface PackIndexView {
  buf: Buffer;
  count: number;
}
export const PACK_INDEX_HEADER = HEADER_SIZE;
export const PACK_ENTRY_SIZE = ENTRY_SIZE;

/**
 * The checks of decodePackIndex, without decoding. `packSize` (when known) bounds every blob:
 * an index that points outside its pack is corrupt, not a read error later. `what` names the
 * object in errors. `hashed`: the caller has already checked a SHA-256 covering these bytes
 * (an index object's own), so the index's own is not computed again.
 */
export function checkPackIndex(buf: Buffer, what: string, packSize?: number, hashed = false): PackIndexView {
  const bad = (why: string) => new HvError('ERR_CORRUPT', `${what}: pack index ${why}`, { target: what });
  if (buf.length < HEADER_SIZE || !buf.subarray(0, INDEX_MAGIC.length).equals(INDEX_MAGIC)) throw bad('does not start with HVBPIDX1');
  const count = buf.readUInt32LE(INDEX_MAGIC.length);
  const body = HEADER_SIZE + count * ENTRY_SIZE;
  if (buf.length !== body + HASH_SIZE) throw bad(`is ${buf.length} bytes, ${count} entries need ${body + HASH_SIZE}`);
  if (!hashed && !createHash('sha256').update(buf.subarray(0, body)).digest().equals(buf.subarray(body))) throw bad('does not match its SHA-256 (damaged)');
  for (let i = 0, p = HEADER_SIZE; i < count; i++, p += ENTRY_SIZE) {
    const offset = buf.readUInt32LE(p + 32);
    const length = buf.readUInt32LE(p + 36);
    if (length === 0) throw bad(`entry ${i} (${buf.toString('hex', p, p + 32)}) has length 0`);
    if (packSize !== undefined && offset + length > packSize) throw bad(`entry ${i} (${buf.toString('hex', p, p + 32)}) ends at ${offset + length}, beyond the pack's ${packSize} bytes`);
  }
  return { buf, count };
}

/** The entries of a checked pack index, as objects. */
export function packIndexEntries(v: PackIndexView): PackEntry[] {
  const { buf, count } = v;
  const entries: PackEntry[] = new Array(count);
  for (let i = 0, p = HEADER_SIZE; i < count; i++, p += ENTRY_SIZE) {
    entries[i] = { id: buf.toString('hex', p, p + 32), offset: buf.readUInt32LE(p + 32), length: buf.readUInt32LE(p + 36), plainLength: buf.readUInt32LE(p + 40) };
  }
  return entries;
}

/** Inverse of encodePackIndex, with checkPackIndex's checks. */
export function decodePackIndex(buf: Buffer, what: string, packSize?: number): PackEntry[] {
  return packIndexEntries(checkPackIndex(buf, what, packSize));
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

// Index objects (index/<name>), two kinds told apart by their first 8 plain bytes:
// - "HVBPIDX1": one pack's index, exactly the plain index in its trailer; the object's name
//   is the pack's name (format 2 to 4 writers, one per pack).
// - "HVBMIDX1": many packs (format 5 writers: one per flush, GC's consolidated ones), named
//   at random. u32le pack count, then per pack: 32 bytes pack name (raw), u32le length L,
//   L bytes of that pack's plain index (as in its trailer); then the SHA-256 of everything
//   before it, so a damaged pack name or length is refused like a damaged entry.
/** What every pack's name is (random, as written by pack-writer.ts): what an index object can list. */
export const PACK_NAME = /^[0-9a-f]{64}$/;
export const MULTI_INDEX_MAGIC = Buffer.from('HVBMIDX1', 'latin1');
const MULTI_HEADER_SIZE = MULTI_INDEX_MAGIC.length + 4;

export interface IndexedPack {
  /** Pack name, 64 lowercase hex. */
  name: string;
  entries: PackEntry[];
}

export interface IndexedPackView {
  /** Pack name, 64 lowercase hex. */
  name: string;
  index: PackIndexView;
}

export function encodeIndexObject(packs: readonly { name: string; entries: readonly PackEntry[] }[]): Buffer {
  const parts: Buffer[] = [];
  const header = Buffer.allocUnsafe(MULTI_HEADER_SIZE);
  MULTI_INDEX_MAGIC.copy(header, 0);
  header.writeUInt32LE(packs.length, MULTI_INDEX_MAGIC.length);
  parts.push(header);
  for (const p of packs) {
    const head = Buffer.allocUnsafe(36);
    if (head.write(p.name, 0, 32, 'hex') !== 32 || !PACK_NAME.test(p.name)) throw new HvError('ERR_INTERNAL', `index object: pack name ${p.name} is not 64 hex characters`);
    const index = encodePackIndex(p.entries);
    head.writeUInt32LE(index.length, 32);
    parts.push(head, index);
  }
  const hash = createHash('sha256');
  for (const b of parts) hash.update(b);
  parts.push(hash.digest());
  return Buffer.concat(parts);
}

/**
 * The packs an index object lists, either kind (`name` is the object's name: the pack's own
 * for a one-pack object). The whole object is checked before the first pack is given out, and
 * each pack's entries are decoded only when asked for, so a large object is never held as
 * entry objects all at once; views() gives each pack's index checked but not decoded.
 */
export function decodeIndexObject(buf: Buffer, name: string, what: string): { packs: number; each(): Generator<IndexedPack>; views(): Generator<IndexedPackView> } {
  const magic = buf.subarray(0, 8);
  if (magic.equals(INDEX_MAGIC)) {
    const index = checkPackIndex(buf, what);
    return { packs: 1, *each() { yield { name, entries: packIndexEntries(index) }; }, *views() { yield { name, index }; } };
  }
  const bad = (why: string) => new HvError('ERR_CORRUPT', `${what}: index object ${why}`, { target: what });
  if (buf.length < MULTI_HEADER_SIZE + HASH_SIZE || !magic.equals(MULTI_INDEX_MAGIC)) throw bad('does not start with HVBPIDX1 or HVBMIDX1');
  const body = buf.length - HASH_SIZE;
  if (!createHash('sha256').update(buf.subarray(0, body)).digest().equals(buf.subarray(body))) throw bad('does not match its SHA-256 (damaged)');
  const count = buf.readUInt32LE(MULTI_INDEX_MAGIC.length);
  const at: { name: string; start: number; end: number }[] = new Array(count);
  const seen = new Set<string>();
  let p = MULTI_HEADER_SIZE;
  for (let i = 0; i < count; i++) {
    if (p + 36 > body) throw bad(`ends inside pack ${i} of ${count}`);
    const pack = buf.toString('hex', p, p + 32);
    const end = p + 36 + buf.readUInt32LE(p + 32);
    if (end > body) throw bad(`pack ${i} (${pack}) runs past the end`);
    if (seen.has(pack)) throw bad(`lists pack ${pack} twice`);
    seen.add(pack);
    at[i] = { name: pack, start: p + 36, end };
    p = end;
  }
  if (p !== body) throw bad(`has ${body - p} bytes after its ${count} packs`);
  // The object's SHA-256 above covers each pack's index: a second hash per pack (~1 in 7 of a
  // 4 M-entry index's load) would find nothing more.
  const views = function* (): Generator<IndexedPackView> {
    for (const a of at) yield { name: a.name, index: checkPackIndex(buf.subarray(a.start, a.end), `${what} (pack ${a.name})`, undefined, true) };
  };
  return {
    packs: count,
    *each() {
      for (const v of views()) yield { name: v.name, entries: packIndexEntries(v.index) };
    },
    views,
  };
}
