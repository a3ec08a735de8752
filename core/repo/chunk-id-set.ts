// A set of chunk ids in typed arrays: what garbage collection holds of every chunk some restore
// point references, for the whole run, beside the chunk index. A Set of 64-character hex
// strings costs ~110 bytes per id (the string, its hash and the set's entry), so at 256 KiB
// chunks a repository of 10 TiB of unique data (40 M chunks) needed ~4.4 GB for it; here an id
// is its 32 raw bytes in segments of 64 Ki, found through an open-addressing table of id
// numbers keyed by the id's first word (SHA-256 and HMAC outputs are uniform already): ~40 bytes
// per id. Independent of ChunkIndex on purpose: prune forgets packs from the index while it
// still asks what is referenced, so membership must not go through the index's records.

import { HvError } from '../errors.ts';
import { parseHex } from './chunk-index.ts';

const WORDS = 8;
const SEG_SHIFT = 16;
const SEG_IDS = 1 << SEG_SHIFT;
const SEG_MASK = SEG_IDS - 1;
/** A small set (a test, a repository of a few VMs) should not pay for a whole 2 MiB segment. */
const FIRST_SEG_IDS = 256;
const FIRST_TABLE_SLOTS = 1024;

// Parsing a lookup's hex id here allocates nothing.
const scratch = new Uint32Array(WORDS);
const scratchBytes = Buffer.from(scratch.buffer);

export class ChunkIdSet {
  /** Id words per segment; #bytes views the same memory. */
  #words: Uint32Array[] = [];
  #bytes: Buffer[] = [];
  #count = 0;
  /** Id number + 1 per slot, 0 = empty. Linear probing, at most 3/4 full; nothing is ever removed. */
  #table = new Uint32Array(FIRST_TABLE_SLOTS);
  #mask = FIRST_TABLE_SLOTS - 1;

  get size(): number {
    return this.#count;
  }

  /** Add a chunk id (64 lowercase hex). Anything else is refused: no stored chunk has such a name. */
  add(id: string): this {
    if (!parseHex(id, scratchBytes, 0)) throw new HvError('ERR_INVALID_ARGUMENT', `chunk id set: ${JSON.stringify(id.slice(0, 80))} is not 64 lowercase hex characters`);
    const slot = this.#find();
    if (slot >= 0) return this;
    const n = this.#count;
    const w = this.#segment(n);
    const o = (n & SEG_MASK) * WORDS;
    for (let k = 0; k < WORDS; k++) w[o + k] = scratch[k]!;
    this.#count = n + 1;
    this.#table[~slot] = n + 1;
    if (this.#count * 4 > this.#table.length * 3) this.#grow();
    return this;
  }

  has(id: string): boolean {
    return parseHex(id, scratchBytes, 0) && this.#find() >= 0;
  }

  /** Every id once, in the order added. */
  *[Symbol.iterator](): IterableIterator<string> {
    for (let n = 0; n < this.#count; n++) {
      const at = (n & SEG_MASK) * WORDS * 4;
      yield this.#bytes[n >>> SEG_SHIFT]!.toString('hex', at, at + 32);
    }
  }

  /** The slot holding the id in `scratch`, or ~(the empty slot where it would go). */
  #find(): number {
    const table = this.#table;
    const mask = this.#mask;
    const w0 = scratch[0]!;
    for (let s = w0 & mask; ; s = (s + 1) & mask) {
      const v = table[s]!;
      if (v === 0) return ~s;
      const n = v - 1;
      const w = this.#words[n >>> SEG_SHIFT]!;
      const o = (n & SEG_MASK) * WORDS;
      if (w[o] === w0 && w[o + 1] === scratch[1] && w[o + 2] === scratch[2] && w[o + 3] === scratch[3]
        && w[o + 4] === scratch[4] && w[o + 5] === scratch[5] && w[o + 6] === scratch[6] && w[o + 7] === scratch[7]) return s;
    }
  }

  #grow(): void {
    const old = this.#table;
    const table = new Uint32Array(old.length * 2);
    const mask = table.length - 1;
    for (let i = 0; i < old.length; i++) {
      const v = old[i]!;
      if (v === 0) continue;
      const n = v - 1;
      let s = this.#words[n >>> SEG_SHIFT]![(n & SEG_MASK) * WORDS]! & mask;
      while (table[s] !== 0) s = (s + 1) & mask;
      table[s] = v;
    }
    this.#table = table;
    this.#mask = mask;
  }

  /** The segment id number n goes in, grown or added if n does not fit yet. */
  #segment(n: number): Uint32Array {
    const si = n >>> SEG_SHIFT;
    const need = ((n & SEG_MASK) + 1) * WORDS;
    const have = this.#words[si];
    if (have !== undefined && have.length >= need) return have;
    let ids = have === undefined ? FIRST_SEG_IDS : (have.length / WORDS) * 2;
    while (ids * WORDS < need) ids *= 2;
    const w = new Uint32Array(Math.min(ids, SEG_IDS) * WORDS);
    if (have !== undefined) w.set(have);
    this.#words[si] = w;
    this.#bytes[si] = Buffer.from(w.buffer, w.byteOffset, w.byteLength);
    return w;
  }
}
