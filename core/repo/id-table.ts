// Fixed-size records keyed by a chunk id, in typed arrays: the storage under ChunkIndex (where
// each chunk is) and ChunkIdSet (GC's referenced chunks), which each hold one record per chunk
// of a repository for a whole run. A record is `stride` u32 words, the first 8 the id's 32 raw
// bytes. Records sit in segments of 64 Ki, so growing never copies them all (nor needs twice
// their memory while it does). Lookups go through an open-addressing table of record numbers
// keyed by the id's first word: ids are SHA-256 or HMAC outputs, so those bits are uniform.

const SEG_SHIFT = 16;
const SEG_RECORDS = 1 << SEG_SHIFT;
const SEG_MASK = SEG_RECORDS - 1;
const FIRST_TABLE_SLOTS = 1024;

const HEX_VALUE = new Int8Array(128).fill(-1);
for (let i = 0; i < 10; i++) HEX_VALUE[48 + i] = i;
for (let i = 0; i < 6; i++) HEX_VALUE[97 + i] = 10 + i;

/**
 * The id a lookup or an insert is about: parse or copy it here first. One per module instance
 * (a thread), so looking up a hex id allocates nothing.
 */
export const idKey = new Uint32Array(8);
/** idKey's bytes. A Buffer like the segments' byte views, so parseHex writes to one kind of array. */
export const idKeyBytes = Buffer.from(idKey.buffer);

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

export class IdTable {
  /** u32 words per record. */
  readonly stride: number;
  readonly #firstSegRecords: number;
  /** Record words, per segment; #bytes views the same memory (ids are parsed into and printed from it). */
  #words: Uint32Array[] = [];
  #bytes: Buffer[] = [];
  /** Record number + 1 per slot, 0 = empty. Linear probing, at most 3/4 full. */
  #table = new Uint32Array(FIRST_TABLE_SLOTS);
  #mask = FIRST_TABLE_SLOTS - 1;
  #inTable = 0;

  /** `firstSegRecords`: a small table (a test, a small repository) should not pay for a whole segment. */
  constructor(stride: number, firstSegRecords: number) {
    this.stride = stride;
    this.#firstSegRecords = firstSegRecords;
  }

  /** Records the table finds (a record may be stored and not found: ChunkIndex's duplicates). */
  get inTable(): number {
    return this.#inTable;
  }

  /** The words of record r's segment; r's words start at at(r). */
  words(r: number): Uint32Array {
    return this.#words[r >>> SEG_SHIFT]!;
  }

  at(r: number): number {
    return (r & SEG_MASK) * this.stride;
  }

  /** The bytes of record r's segment; r's id starts at 4 * at(r). */
  bytes(r: number): Buffer {
    return this.#bytes[r >>> SEG_SHIFT]!;
  }

  hex(r: number): string {
    const at = this.at(r) * 4;
    return this.#bytes[r >>> SEG_SHIFT]!.toString('hex', at, at + 32);
  }

  /** Room for record r: the segment it goes in, grown or added if r does not fit yet. */
  ensure(r: number): Uint32Array {
    const si = r >>> SEG_SHIFT;
    const need = ((r & SEG_MASK) + 1) * this.stride;
    const have = this.#words[si];
    if (have !== undefined && have.length >= need) return have;
    let records = have === undefined ? this.#firstSegRecords : (have.length / this.stride) * 2;
    while (records * this.stride < need) records *= 2;
    const w = new Uint32Array(Math.min(records, SEG_RECORDS) * this.stride);
    if (have !== undefined) w.set(have);
    this.#words[si] = w;
    this.#bytes[si] = Buffer.from(w.buffer, w.byteOffset, w.byteLength);
    return w;
  }

  /** idKey := record r's id. */
  keyOf(r: number): void {
    const w = this.words(r);
    const o = this.at(r);
    for (let k = 0; k < 8; k++) idKey[k] = w[o + k]!;
  }

  /** The slot holding the id in idKey, or ~(the empty slot where it would go). */
  find(): number {
    const table = this.#table;
    const mask = this.#mask;
    const words = this.#words;
    const stride = this.stride;
    const w0 = idKey[0]!;
    for (let s = w0 & mask; ; s = (s + 1) & mask) {
      const v = table[s]!;
      if (v === 0) return ~s;
      const r = v - 1;
      const w = words[r >>> SEG_SHIFT]!;
      const o = (r & SEG_MASK) * stride;
      if (w[o] === w0 && w[o + 1] === idKey[1] && w[o + 2] === idKey[2] && w[o + 3] === idKey[3]
        && w[o + 4] === idKey[4] && w[o + 5] === idKey[5] && w[o + 6] === idKey[6] && w[o + 7] === idKey[7]) return s;
    }
  }

  /** The record a slot find() returned holds. */
  record(slot: number): number {
    return this.#table[slot]! - 1;
  }

  /** Put record r in the empty slot find() returned for its id (its ~result). */
  insert(slot: number, r: number): void {
    this.#table[slot] = r + 1;
    if (++this.#inTable * 4 > this.#table.length * 3) this.#grow();
  }

  /** Empty a slot; later entries of its probe run move back so that no lookup stops short (no tombstones). */
  delete(slot: number): void {
    const table = this.#table;
    const mask = this.#mask;
    this.#inTable--;
    let hole = slot;
    for (let s = (slot + 1) & mask; ; s = (s + 1) & mask) {
      const v = table[s]!;
      if (v === 0) break;
      const r = v - 1;
      const home = this.words(r)[this.at(r)]! & mask;
      // The entry may fill the hole if the hole lies on its probe run (between home and s).
      if (((s - home) & mask) >= ((s - hole) & mask)) {
        table[hole] = v;
        hole = s;
      }
    }
    table[hole] = 0;
  }

  /** Forget every record and slot, keeping the memory for the next ones (a chunk index that spilled them). */
  clear(): void {
    this.#table.fill(0);
    this.#inTable = 0;
  }

  /** Room in the table for `records` in all, made at once instead of by doubling as they come. */
  reserve(records: number): void {
    let slots = this.#table.length;
    while (records * 4 > slots * 3) slots *= 2;
    if (slots > this.#table.length) this.#rehash(slots);
  }

  #grow(): void {
    this.#rehash(this.#table.length * 2);
  }

  #rehash(slots: number): void {
    const old = this.#table;
    const table = new Uint32Array(slots);
    const mask = table.length - 1;
    for (let i = 0; i < old.length; i++) {
      const v = old[i]!;
      if (v === 0) continue;
      const r = v - 1;
      let s = this.words(r)[this.at(r)]! & mask;
      while (table[s] !== 0) s = (s + 1) & mask;
      table[s] = v;
    }
    this.#table = table;
    this.#mask = mask;
  }
}
