// Where each chunk lives: a blob in a pack (from the index/ objects) or a loose chunks/<id>
// object (archive media, which store chunks one by one). Built once per repository handle
// from a listing, kept up to date by this process's own writes, rebuilt after taking a lock
// (another process may have written or pruned meanwhile).

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

export class ChunkIndex {
  readonly #byId = new Map<string, ChunkLocation>();
  /** Every pack's entries as its index object lists them (duplicates across packs included). */
  readonly packs = new Map<string, PackEntry[]>();
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
      if (!index.#byId.has(o.name)) index.#byId.set(o.name, { offset: 0, length: o.size });
    }
    return index;
  }

  has(id: string): boolean {
    return this.#byId.has(id);
  }

  locate(id: string): ChunkLocation | undefined {
    return this.#byId.get(id);
  }

  get size(): number {
    return this.#byId.size;
  }

  /** Every known chunk once, with where it is read from. */
  entries(): IterableIterator<[string, ChunkLocation]> {
    return this.#byId.entries();
  }

  /** A pack became durable (or was listed): its blobs are readable from now on. A chunk already located stays where it is. */
  addPack(name: string, entries: PackEntry[]): void {
    this.packs.set(name, entries);
    for (const e of entries) {
      if (!this.#byId.has(e.id)) this.#byId.set(e.id, { pack: name, offset: e.offset, length: e.length, plainLength: e.plainLength });
    }
  }

  addLoose(id: string, size: number): void {
    if (!this.#byId.has(id)) this.#byId.set(id, { offset: 0, length: size });
  }

  /**
   * Forget a pack (pruned). Chunks it held are forgotten too, even where another pack has a
   * copy: looking for one meant scanning every pack per chunk, and prune, the only caller,
   * reloads the index when it is done.
   */
  removePack(name: string): void {
    const gone = this.packs.get(name);
    this.packs.delete(name);
    for (const e of gone ?? []) if (this.#byId.get(e.id)?.pack === name) this.#byId.delete(e.id);
  }

  removeLoose(id: string): void {
    if (this.#byId.get(id)?.pack === undefined) this.#byId.delete(id);
  }
}
