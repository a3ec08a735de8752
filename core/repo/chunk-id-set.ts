// A set of chunk ids in typed arrays: what garbage collection holds of every chunk some restore
// point references, for the whole run, beside the chunk index. A Set of 64-character hex
// strings costs ~110 bytes per id (the string, its hash and the set's entry), so at 256 KiB
// chunks a repository of 10 TiB of unique data (40 M chunks) needed ~4.4 GB for it; here an id
// is its 32 raw bytes in an IdTable (id-table.ts): ~40 bytes per id. Independent of ChunkIndex
// on purpose: prune forgets packs from the index while it still asks what is referenced, so
// membership must not go through the index's records.

import { HvError } from '../errors.ts';
import { IdTable, idKey, idKeyBytes, parseHex } from './id-table.ts';

const STRIDE = 8;
/** A small set (a test, a repository of a few VMs) should not pay for a whole 2 MiB segment. */
const FIRST_SEG_IDS = 256;

export class ChunkIdSet {
  readonly #ids = new IdTable(STRIDE, FIRST_SEG_IDS);
  #count = 0;

  get size(): number {
    return this.#count;
  }

  /** Add a chunk id (64 lowercase hex). Anything else is refused: no stored chunk has such a name. */
  add(id: string): this {
    if (!parseHex(id, idKeyBytes, 0)) throw new HvError('ERR_INVALID_ARGUMENT', `chunk id set: ${JSON.stringify(id.slice(0, 80))} is not 64 lowercase hex characters`);
    const slot = this.#ids.find();
    if (slot >= 0) return this;
    const n = this.#count++;
    const w = this.#ids.ensure(n);
    const o = this.#ids.at(n);
    for (let k = 0; k < STRIDE; k++) w[o + k] = idKey[k]!;
    this.#ids.insert(~slot, n);
    return this;
  }

  has(id: string): boolean {
    return parseHex(id, idKeyBytes, 0) && this.#ids.find() >= 0;
  }

  /** Every id once, in the order added. */
  *[Symbol.iterator](): IterableIterator<string> {
    for (let n = 0; n < this.#count; n++) yield this.#ids.hex(n);
  }
}
