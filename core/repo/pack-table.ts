// The packs a chunk index knows, by number: each pack's name (its 32 raw bytes), its first
// record and its entry count, in an IdTable (id-table.ts) keyed by the name. A pack's number is
// its record number, so the chunk index's records name their pack in one u32 word.
//
// Per pack, not per chunk, but a pack holds only ~32 chunks (8 MiB of 256 KiB chunks): as a hex
// string, a Map entry and three JS array slots it cost ~150 bytes, ~4.7 bytes per chunk, more
// than everything a spilled index keeps per chunk (sorted-run.ts's fence and Bloom filter,
// ~2 bytes). Here it is 40 bytes and a table slot. Names are made hex only when asked for.

import { HvError } from '../errors.ts';
import { IdTable, idKeyBytes, parseHex } from './id-table.ts';

const STRIDE = 10;
const W_START = 8;
const W_COUNT = 9;
/** Bit of the count word: the pack was removed (its number stays, and names it, for the records that still carry it). */
const REMOVED = 0x8000_0000;
/** A small repository (or a test) should not pay for a whole 2.5 MiB segment. */
const FIRST_SEG_PACKS = 64;

export class PackTable {
  readonly #t = new IdTable(STRIDE, FIRST_SEG_PACKS);
  #numbers = 0;

  /** Numbers given, removed packs included: the next pack's number. */
  get length(): number {
    return this.#numbers;
  }

  /** Packs known and not removed. */
  get size(): number {
    return this.#t.inTable;
  }

  /** The number of the pack named `name`, or -1 (unknown, removed, or not a pack name). Overwrites idKey (id-table.ts). */
  find(name: string): number {
    if (!parseHex(name, idKeyBytes, 0)) return -1;
    const slot = this.#t.find();
    return slot >= 0 ? this.#t.record(slot) : -1;
  }

  /** A new pack (find(name) is -1): its number. Overwrites idKey. */
  add(name: string, start: number, count: number): number {
    if (!parseHex(name, idKeyBytes, 0)) throw new HvError('ERR_INTERNAL', `pack table: pack name ${JSON.stringify(name.slice(0, 80))} is not 64 lowercase hex`);
    return this.#addKey(start, count);
  }

  /** add() of the name whose 32 raw bytes are at `at` of `buf` (an index table's pack list). */
  addBytes(buf: Uint8Array, at: number, start: number, count: number): number {
    for (let k = 0; k < 32; k++) idKeyBytes[k] = buf[at + k]!;
    return this.#addKey(start, count);
  }

  /** Every pack's name bytes by number, 32 each (removed packs too: their numbers still name them). */
  nameBytes(): Buffer {
    const out = Buffer.allocUnsafe(this.#numbers * 32);
    for (let p = 0; p < this.#numbers; p++) {
      const at = this.#t.at(p) * 4;
      this.#t.bytes(p).copy(out, p * 32, at, at + 32);
    }
    return out;
  }

  /** The pack named in idKey. */
  #addKey(start: number, count: number): number {
    const name = () => idKeyBytes.toString('hex');
    if (start >>> 0 !== start || count >>> 0 !== count || count >= REMOVED) throw new HvError('ERR_INTERNAL', `pack table: pack ${name()} at record ${start} with ${count} entries does not fit its u32 words`);
    const slot = this.#t.find();
    if (slot >= 0) throw new HvError('ERR_INTERNAL', `pack table: pack ${name()} added twice`);
    const pack = this.#numbers++;
    const w = this.#t.ensure(pack);
    const o = this.#t.at(pack);
    this.#t.bytes(pack).set(idKeyBytes, o * 4);
    w[o + W_START] = start;
    w[o + W_COUNT] = count;
    this.#t.insert(~slot, pack);
    return pack;
  }

  /** Forget pack `pack` by name (find no longer finds it); its number keeps its name. Overwrites idKey. */
  remove(pack: number): void {
    const w = this.#t.words(pack);
    const o = this.#t.at(pack);
    if (w[o + W_COUNT]! & REMOVED) return;
    w[o + W_COUNT]! |= REMOVED;
    this.#t.keyOf(pack);
    const slot = this.#t.find();
    if (slot >= 0 && this.#t.record(slot) === pack) this.#t.delete(slot);
  }

  removed(pack: number): boolean {
    return (this.#t.words(pack)[this.#t.at(pack) + W_COUNT]! & REMOVED) !== 0;
  }

  name(pack: number): string {
    return this.#t.hex(pack);
  }

  /** Both numbers name one pack (a pack removed and listed again has a new number). */
  sameName(a: number, b: number): boolean {
    if (a === b) return true;
    const wa = this.#t.words(a), oa = this.#t.at(a), wb = this.#t.words(b), ob = this.#t.at(b);
    for (let k = 0; k < 8; k++) if (wa[oa + k] !== wb[ob + k]) return false;
    return true;
  }

  /** Its first record (the chunk index's numbering). */
  start(pack: number): number {
    return this.#t.words(pack)[this.#t.at(pack) + W_START]!;
  }

  count(pack: number): number {
    return this.#t.words(pack)[this.#t.at(pack) + W_COUNT]! & ~REMOVED;
  }

  /** The packs not removed, by number, in the order they were added. */
  *live(): Generator<number> {
    for (let p = 0; p < this.#numbers; p++) if (!this.removed(p)) yield p;
  }
}
