// A set of chunk ids in typed arrays: what garbage collection holds of every chunk some restore
// point references, for the whole run, beside the chunk index. A Set of 64-character hex
// strings costs ~110 bytes per id (the string, its hash and the set's entry), so at 256 KiB
// chunks a repository of 10 TiB of unique data (40 M chunks) needed ~4.4 GB for it; here an id
// is its 32 raw bytes in an IdTable (id-table.ts): ~40 bytes per id. Independent of ChunkIndex
// on purpose: prune forgets packs from the index while it still asks what is referenced, so
// membership must not go through the index's records. Past the same memory budget as the chunk
// index (HVB_INDEX_MEMORY_RECORDS), the ids spill to sorted runs in scratch files
// (sorted-run.ts), as the index's records do: a few bytes of memory per id instead of ~40.

import { HvError } from '../errors.ts';
import { IdTable, idKey, idKeyBytes, parseHex } from './id-table.ts';
import { buildRun, indexMemoryRecords, RunList } from './sorted-run.ts';

const STRIDE = 8;
/** A small set (a test, a repository of a few VMs) should not pay for a whole 2 MiB segment. */
const FIRST_SEG_IDS = 256;
/** Words of a run record (sorted-run.ts): the id, then four words a set does not use. */
const RUN_WORDS = 12;
/** A set nobody closed closes its scratch files when it is collected. */
const unreachable = new FinalizationRegistry<RunList>((runs) => runs.close());

export class ChunkIdSet {
  readonly #ids = new IdTable(STRIDE, FIRST_SEG_IDS);
  /** Ids in #ids; earlier ones are in #runs (each id in one place only). */
  #inMemory = 0;
  #count = 0;
  readonly #runs = new RunList();
  /** A run record (the id and four unused words), for lookups. */
  readonly #rec = new Uint32Array(RUN_WORDS);

  constructor() {
    unreachable.register(this, this.#runs, this);
  }

  get size(): number {
    return this.#count;
  }

  /** Add a chunk id (64 lowercase hex). Anything else is refused: no stored chunk has such a name. */
  add(id: string): this {
    if (!parseHex(id, idKeyBytes, 0)) throw new HvError('ERR_INVALID_ARGUMENT', `chunk id set: ${JSON.stringify(id.slice(0, 80))} is not 64 lowercase hex characters`);
    const slot = this.#ids.find();
    if (slot >= 0 || this.#inRuns()) return this;
    const n = this.#inMemory++;
    this.#count++;
    const w = this.#ids.ensure(n);
    const o = this.#ids.at(n);
    for (let k = 0; k < STRIDE; k++) w[o + k] = idKey[k]!;
    this.#ids.insert(~slot, n);
    if (this.#inMemory >= indexMemoryRecords()) this.#spill();
    return this;
  }

  has(id: string): boolean {
    return parseHex(id, idKeyBytes, 0) && (this.#ids.find() >= 0 || this.#inRuns());
  }

  /** Every id once: those spilled (in id order, run by run), then the rest in the order added. */
  *[Symbol.iterator](): IterableIterator<string> {
    for (const run of this.#runs.runs) {
      for (const { buf, count } of run.batches()) {
        for (let i = 0; i < count; i++) yield buf.toString('hex', i * RUN_WORDS * 4, i * RUN_WORDS * 4 + 32);
      }
    }
    for (let n = 0; n < this.#inMemory; n++) yield this.#ids.hex(n);
  }

  /** Close the scratch files, if any: a lookup that needs them fails from now on. */
  close(): void {
    unreachable.unregister(this);
    this.#runs.close();
  }

  #inRuns(): boolean {
    for (const run of this.#runs.runs) if (run.find(idKey, this.#rec)) return true;
    return false;
  }

  /** The in-memory ids, sorted, to a new run (RunList merges them when they pile up). */
  #spill(): void {
    const ids = this.#ids;
    this.#runs.add(buildRun(this.#inMemory, STRIDE, (n) => ids.words(n), (n) => ids.at(n), () => true));
    ids.clear();
    this.#inMemory = 0;
  }
}
