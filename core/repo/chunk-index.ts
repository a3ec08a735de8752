// Where each chunk lives: a blob in a pack (from the index/ objects) or a loose chunks/<id>
// object (archive media, which store chunks one by one). Built once per repository handle
// from a listing, kept up to date by this process's own writes, rebuilt after taking a lock
// (another process may have written or pruned meanwhile).
//
// Every backup, restore, verify and GC holds this for the whole run, so it is stored in typed
// arrays rather than a Map of objects (which cost ~240 bytes per chunk, ~1 GB per TiB of unique
// data at 256 KiB chunks, and a heap of small objects every major GC walks). One record per pack
// entry, 12 u32 words = 48 bytes: the id's 32 raw bytes, pack number (bit 31: this record is the
// one the chunk is read from), offset, stored length, plain length. Records sit in segments of
// 64 Ki, so growing never copies the whole index (nor needs twice its memory while it does).
// Lookups go through an open-addressing table of record numbers keyed by the id's first word:
// ids are SHA-256 or HMAC outputs, so those bits are already uniform.

import { HvError } from '../errors.ts';
import type { Backend } from './backend.ts';
import type { ObjectCodec } from './crypto/codec.ts';
import { decodePackIndex, type PackEntry } from './pack-format.ts';

export interface ChunkLocation {
  /** Pack name, or undefined for a loose chunks/<id> object. */
  pack?: string;
  offset: number;
  length: number;
  /** Plain length when known (packed blobs); undefined for loose objects. */
  plainLength?: number;
}

const LOAD_BATCH = 16;

const STRIDE = 12;
const W_PACK = 8;
const W_OFFSET = 9;
const W_LENGTH = 10;
const W_PLAIN = 11;
const LOCATED = 0x8000_0000;
const PACK_BITS = 0x7fff_ffff;
/** Pack number of a loose chunk. */
const LOOSE = PACK_BITS;
const SEG_SHIFT = 16;
const SEG_RECORDS = 1 << SEG_SHIFT;
const SEG_MASK = SEG_RECORDS - 1;
/** A small repository (or a test) should not pay for a whole 3 MiB segment. */
const FIRST_SEG_RECORDS = 64;
const FIRST_TABLE_SLOTS = 1024;

const HEX_VALUE = new Int8Array(128).fill(-1);
for (let i = 0; i < 10; i++) HEX_VALUE[48 + i] = i;
for (let i = 0; i < 6; i++) HEX_VALUE[97 + i] = 10 + i;

// Lookups take hex ids; parsing them here (one thread per module instance) allocates nothing.
const scratch = new Uint32Array(8);
/** A Buffer like the segments' byte views, so parseHex writes to one kind of array. */
const scratchBytes = Buffer.from(scratch.buffer);

/** 64 lowercase hex characters into 32 bytes at `at`; false (bytes undefined) for anything else. */
export function parseHex(id: string, into: Uint8Array, at: number): boolean {
  if (id.length !== 64) return false;
  for (let i = 0; i < 32; i++) {
    const hi = id.charCodeAt(2 * i);
    const lo = id.charCodeAt(2 * i + 1);
    if (hi >= 128 || lo >= 128) return false;
    const h = HEX_VALUE[hi]!;
    const l = HEX_VALUE[lo]!;
    if ((h | l) < 0) return false;
    into[at + i] = (h << 4) | l;
  }
  return true;
}

function isU32(n: number): boolean {
  return n >>> 0 === n;
}

export class ChunkIndex {
  /** Record words, per segment; #bytes views the same memory (ids are parsed into and printed from it). */
  #words: Uint32Array[] = [];
  #bytes: Buffer[] = [];
  #records = 0;
  /** Record number + 1 per slot, 0 = empty. Linear probing, at most 3/4 full. */
  #table = new Uint32Array(FIRST_TABLE_SLOTS);
  #mask = FIRST_TABLE_SLOTS - 1;
  #located = 0;
  // Per pack, not per chunk: a pack's entries are the records [start, start + count).
  #packNames: string[] = [];
  #packStart: number[] = [];
  #packCount: number[] = [];
  #packByName = new Map<string, number>();

  /**
   * Every pack's entries as its index object lists them (duplicates across packs included),
   * made on demand from the records: a caller going through the packs (prune) holds one
   * pack's entries at a time, not a second object per chunk.
   */
  readonly packs: ReadonlyMap<string, PackEntry[]> = this.#packView();
  /** index/ objects that did not load: their packs' chunks are unknown, so nothing may be pruned. */
  readonly damaged: { name: string; problem: string }[] = [];

  static async load(backend: Backend, codec: ObjectCodec, signal?: AbortSignal): Promise<ChunkIndex> {
    const index = new ChunkIndex();
    const names: string[] = [];
    for await (const o of backend.list(signal, 'index')) names.push(o.name);
    names.sort();
    for (let i = 0; i < names.length; i += LOAD_BATCH) {
      await Promise.all(names.slice(i, i + LOAD_BATCH).map(async (name) => {
        try {
          const sealed = await backend.load(signal, { type: 'index', name });
          index.addPack(name, decodePackIndex(codec.open('index', name, sealed), `<index/${name}>`));
        } catch (err) {
          if (signal?.aborted) throw err;
          index.damaged.push({ name, problem: (err as Error).message });
        }
      }));
    }
    for await (const o of backend.list(signal, 'chunks')) {
      // A name that is not a chunk id is not a chunk: nothing references it or could read it.
      if (parseHex(o.name, scratchBytes, 0)) index.addLoose(o.name, o.size);
    }
    return index;
  }

  has(id: string): boolean {
    return parseHex(id, scratchBytes, 0) && this.#find() >= 0;
  }

  /** has() for a raw 32-byte id at `offset` in `id`, for callers that hold the bytes. */
  hasBytes(id: Uint8Array, offset = 0): boolean {
    if (offset < 0 || offset + 32 > id.length) return false;
    // Byte by byte: a subarray to copy from would be an allocation per lookup.
    for (let k = 0; k < 32; k++) scratchBytes[k] = id[offset + k]!;
    return this.#find() >= 0;
  }

  locate(id: string): ChunkLocation | undefined {
    if (!parseHex(id, scratchBytes, 0)) return undefined;
    const slot = this.#find();
    return slot < 0 ? undefined : this.#location(this.#table[slot]! - 1);
  }

  get size(): number {
    return this.#located;
  }

  /** Every known chunk once, with where it is read from (in the order they became known). */
  *entries(): IterableIterator<[string, ChunkLocation]> {
    for (let r = 0; r < this.#records; r++) {
      const w = this.#words[r >>> SEG_SHIFT]!;
      if (w[(r & SEG_MASK) * STRIDE + W_PACK]! & LOCATED) yield [this.#hex(r), this.#location(r)];
    }
  }

  /** A pack became durable (or was listed): its blobs are readable from now on. A chunk already located stays where it is. */
  addPack(name: string, entries: readonly PackEntry[]): void {
    const pack = this.#packNames.length;
    if (pack >= LOOSE) throw new HvError('ERR_INTERNAL', `chunk index: more than ${LOOSE - 1} packs`);
    const start = this.#records;
    // Every record first, the table after: an entry that does not fit leaves the index as it was.
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      const r = start + i;
      const li = r & SEG_MASK;
      const w = this.#segment(r);
      if (!parseHex(e.id, this.#bytes[r >>> SEG_SHIFT]!, li * STRIDE * 4) || !isU32(e.offset) || !isU32(e.length) || !isU32(e.plainLength)) {
        throw new HvError('ERR_INTERNAL', `chunk index: pack ${name} entry ${i} (${e.id}, offset ${e.offset}, length ${e.length}, plain ${e.plainLength}) is not a 64-hex id with u32 sizes`, { target: `<packs/${name}>` });
      }
      const o = li * STRIDE;
      w[o + W_PACK] = pack;
      w[o + W_OFFSET] = e.offset;
      w[o + W_LENGTH] = e.length;
      w[o + W_PLAIN] = e.plainLength;
    }
    this.#records = start + entries.length;
    this.#packNames.push(name);
    this.#packStart.push(start);
    this.#packCount.push(entries.length);
    this.#packByName.set(name, pack);
    for (let r = start; r < this.#records; r++) {
      const w = this.#words[r >>> SEG_SHIFT]!;
      const o = (r & SEG_MASK) * STRIDE;
      for (let k = 0; k < 8; k++) scratch[k] = w[o + k]!;
      const slot = this.#find();
      if (slot < 0) this.#insert(~slot, r);
    }
  }

  addLoose(id: string, size: number): void {
    if (!parseHex(id, scratchBytes, 0)) throw new HvError('ERR_INTERNAL', `chunk index: loose chunk id ${id} is not 64 lowercase hex`, { target: `<chunks/${id}>` });
    if (!isU32(size)) throw new HvError('ERR_CORRUPT', `<chunks/${id}>: ${size} bytes is larger than any chunk object`, { target: `<chunks/${id}>` });
    const slot = this.#find();
    if (slot >= 0) return;
    const r = this.#records;
    const w = this.#segment(r);
    const o = (r & SEG_MASK) * STRIDE;
    for (let k = 0; k < 8; k++) w[o + k] = scratch[k]!;
    w[o + W_PACK] = LOOSE;
    w[o + W_OFFSET] = 0;
    w[o + W_LENGTH] = size;
    w[o + W_PLAIN] = 0;
    this.#records = r + 1;
    this.#insert(~slot, r);
  }

  /**
   * Forget a pack (pruned). Chunks it held are forgotten too, even where another pack has a
   * copy: looking for one meant scanning every pack per chunk, and prune, the only caller,
   * reloads the index when it is done. The pack's records stay unused until then.
   */
  removePack(name: string): void {
    const pack = this.#packByName.get(name);
    if (pack === undefined) return;
    this.#packByName.delete(name);
    const start = this.#packStart[pack]!;
    const end = start + this.#packCount[pack]!;
    for (let r = start; r < end; r++) {
      const w = this.#words[r >>> SEG_SHIFT]!;
      const o = (r & SEG_MASK) * STRIDE;
      for (let k = 0; k < 8; k++) scratch[k] = w[o + k]!;
      const slot = this.#find();
      // By name: an earlier addPack of the same name may hold the chunk's located record.
      if (slot >= 0 && this.#packOf(this.#table[slot]! - 1) === name) this.#delete(slot);
    }
  }

  removeLoose(id: string): void {
    if (!parseHex(id, scratchBytes, 0)) return;
    const slot = this.#find();
    if (slot >= 0 && this.#packOf(this.#table[slot]! - 1) === undefined) this.#delete(slot);
  }

  /** The slot holding the id in `scratch`, or ~(the empty slot where it would go). */
  #find(): number {
    const table = this.#table;
    const mask = this.#mask;
    const words = this.#words;
    const w0 = scratch[0]!;
    for (let s = w0 & mask; ; s = (s + 1) & mask) {
      const v = table[s]!;
      if (v === 0) return ~s;
      const r = v - 1;
      const w = words[r >>> SEG_SHIFT]!;
      const o = (r & SEG_MASK) * STRIDE;
      if (w[o] === w0 && w[o + 1] === scratch[1] && w[o + 2] === scratch[2] && w[o + 3] === scratch[3]
        && w[o + 4] === scratch[4] && w[o + 5] === scratch[5] && w[o + 6] === scratch[6] && w[o + 7] === scratch[7]) return s;
    }
  }

  #insert(slot: number, r: number): void {
    this.#table[slot] = r + 1;
    this.#words[r >>> SEG_SHIFT]![(r & SEG_MASK) * STRIDE + W_PACK]! |= LOCATED;
    if (++this.#located * 4 > this.#table.length * 3) this.#grow();
  }

  /** Empty a slot; later entries of its probe run move back so that no lookup stops short (no tombstones). */
  #delete(slot: number): void {
    const table = this.#table;
    const mask = this.#mask;
    const gone = table[slot]! - 1;
    this.#words[gone >>> SEG_SHIFT]![(gone & SEG_MASK) * STRIDE + W_PACK]! &= PACK_BITS;
    this.#located--;
    let hole = slot;
    for (let s = (slot + 1) & mask; ; s = (s + 1) & mask) {
      const v = table[s]!;
      if (v === 0) break;
      const r = v - 1;
      const home = this.#words[r >>> SEG_SHIFT]![(r & SEG_MASK) * STRIDE]! & mask;
      // The entry may fill the hole if the hole lies on its probe run (between home and s).
      if (((s - home) & mask) >= ((s - hole) & mask)) {
        table[hole] = v;
        hole = s;
      }
    }
    table[hole] = 0;
  }

  #grow(): void {
    const old = this.#table;
    const table = new Uint32Array(old.length * 2);
    const mask = table.length - 1;
    for (let i = 0; i < old.length; i++) {
      const v = old[i]!;
      if (v === 0) continue;
      const r = v - 1;
      let s = this.#words[r >>> SEG_SHIFT]![(r & SEG_MASK) * STRIDE]! & mask;
      while (table[s] !== 0) s = (s + 1) & mask;
      table[s] = v;
    }
    this.#table = table;
    this.#mask = mask;
  }

  /** The segment record r goes in, grown or added if r does not fit yet. */
  #segment(r: number): Uint32Array {
    const si = r >>> SEG_SHIFT;
    const need = ((r & SEG_MASK) + 1) * STRIDE;
    const have = this.#words[si];
    if (have !== undefined && have.length >= need) return have;
    let records = have === undefined ? FIRST_SEG_RECORDS : (have.length / STRIDE) * 2;
    while (records * STRIDE < need) records *= 2;
    const w = new Uint32Array(Math.min(records, SEG_RECORDS) * STRIDE);
    if (have !== undefined) w.set(have);
    this.#words[si] = w;
    this.#bytes[si] = Buffer.from(w.buffer, w.byteOffset, w.byteLength);
    return w;
  }

  #packOf(r: number): string | undefined {
    const pack = this.#words[r >>> SEG_SHIFT]![(r & SEG_MASK) * STRIDE + W_PACK]! & PACK_BITS;
    return pack === LOOSE ? undefined : this.#packNames[pack];
  }

  #hex(r: number): string {
    const at = (r & SEG_MASK) * STRIDE * 4;
    return this.#bytes[r >>> SEG_SHIFT]!.toString('hex', at, at + 32);
  }

  #location(r: number): ChunkLocation {
    const w = this.#words[r >>> SEG_SHIFT]!;
    const o = (r & SEG_MASK) * STRIDE;
    const pack = w[o + W_PACK]! & PACK_BITS;
    if (pack === LOOSE) return { offset: 0, length: w[o + W_LENGTH]! };
    return { pack: this.#packNames[pack], offset: w[o + W_OFFSET]!, length: w[o + W_LENGTH]!, plainLength: w[o + W_PLAIN]! };
  }

  #entriesOf(pack: number): PackEntry[] {
    const start = this.#packStart[pack]!;
    const out: PackEntry[] = new Array(this.#packCount[pack]!);
    for (let i = 0; i < out.length; i++) {
      const r = start + i;
      const w = this.#words[r >>> SEG_SHIFT]!;
      const o = (r & SEG_MASK) * STRIDE;
      out[i] = { id: this.#hex(r), offset: w[o + W_OFFSET]!, length: w[o + W_LENGTH]!, plainLength: w[o + W_PLAIN]! };
    }
    return out;
  }

  #packView(): ReadonlyMap<string, PackEntry[]> {
    const byName = this.#packByName;
    const entriesOf = (pack: number) => this.#entriesOf(pack);
    function* pairs(): MapIterator<[string, PackEntry[]]> {
      for (const [name, pack] of byName) yield [name, entriesOf(pack)];
    }
    function* values(): MapIterator<PackEntry[]> {
      for (const pack of byName.values()) yield entriesOf(pack);
    }
    return {
      get size() { return byName.size; },
      has: (name: string) => byName.has(name),
      get: (name: string) => {
        const pack = byName.get(name);
        return pack === undefined ? undefined : entriesOf(pack);
      },
      keys: () => byName.keys(),
      values,
      entries: pairs,
      [Symbol.iterator]: pairs,
      forEach(fn: (value: PackEntry[], key: string, map: ReadonlyMap<string, PackEntry[]>) => void, thisArg?: unknown) {
        for (const [name, entries] of pairs()) fn.call(thisArg, entries, name, this);
      },
    };
  }
}
