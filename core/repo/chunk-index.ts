// Where each chunk lives: a blob in a pack (from the index/ objects) or a loose chunks/<id>
// object (archive media, which store chunks one by one). Built once per repository handle
// from a listing, kept up to date by this process's own writes, refreshed after taking a lock
// (another process may have written or pruned meanwhile): only index objects not seen yet
// are read, unless one that was read is gone (GC replaced it), which means a rebuild.
//
// Every backup, restore, verify and GC holds this for the whole run, so it is stored in typed
// arrays (an IdTable, id-table.ts) rather than a Map of objects (which cost ~240 bytes per
// chunk, ~1 GB per TiB of unique data at 256 KiB chunks, and a heap of small objects every
// major GC walks). One record per pack entry, 12 u32 words = 48 bytes: the id's 32 raw bytes,
// pack number (bit 31: this record is the one the chunk is read from), offset, stored length,
// plain length. The table finds each chunk's located record. Past a memory budget (512 Ki
// records, ~28 MiB) the records move to scratch files, the located ones sorted by id into runs
// that keep only a fence (and, for runs of records added after a load, a Bloom filter) in
// memory (sorted-run.ts), so a repository of many TiB of unique data costs a job a few bytes per
// chunk instead of ~60. A load appends what it reads and sorts it all once at its end. Such a
// load then stores its records as an index table (index-table.ts) under the job's lock, and the next loads look
// chunks up in it in place (a fence, ~0.13 bytes per chunk) and read only the index objects it
// does not cover.

import { HvError, isHvError } from '../errors.ts';
import type { Backend } from './backend.ts';
import type { ObjectCodec } from './crypto/codec.ts';
import { IdTable, idKey, idKeyBytes, parseHex } from './id-table.ts';
import { decodeIndexObject, PACK_ENTRY_SIZE, PACK_INDEX_HEADER, type PackEntry, type PackIndexView } from './pack-format.ts';
import { PackTable } from './pack-table.ts';
import { BufferBin } from './buffer-bin.ts';
import { freeOwnBuffer } from './free-buffer.ts';
import { buildFirstRun, buildRun, closeQuietly, compareIds, indexMemoryRecords, mergeSorted, openScratch, readAllSync, RECORD, RunList, type SortedRun, type SortedSource, writeAllSync } from './sorted-run.ts';
import { IndexTable, IndexTableWriter, indexTableRecords, indexTablesOn } from './index-table.ts';
import { createHash } from 'node:crypto';

export { setIndexMemoryRecords } from './sorted-run.ts';

export interface ChunkLocation {
  /** Pack name, or undefined for a loose chunks/<id> object. */
  pack?: string;
  offset: number;
  length: number;
  /** Plain length when known (packed blobs); undefined for loose objects. */
  plainLength?: number;
}

/**
 * Index objects read at once, and their stored bytes at most (one large consolidated object is
 * still read alone). Loading is bound by the decoding on this thread, not the reads: a 4 M-entry
 * index (GC's objects of 256 Ki entries, ~11 MiB each) loaded as fast one object at a time as
 * two, and peaked 20 MiB lower.
 */
const LOAD_OBJECTS = 16;
const LOAD_BYTES = 12 * 1024 * 1024;

const STRIDE = 12;
const W_PACK = 8;
const W_OFFSET = 9;
const W_LENGTH = 10;
const W_PLAIN = 11;
const LOCATED = 0x8000_0000;
const PACK_BITS = 0x7fff_ffff;
/** Pack number of a loose chunk. */
const LOOSE = PACK_BITS;
/** A small repository (or a test) should not pay for a whole 3 MiB segment. */
const FIRST_SEG_RECORDS = 64;

function isU32(n: number): boolean {
  return n >>> 0 === n;
}

/** Scratch files (and the index table) of an index, closed when it is closed or, if nobody did, when it is collected. */
class ScratchFiles {
  arrival: number | undefined;
  readonly runs = new RunList();
  table: IndexTable | undefined;
  close(): void {
    this.runs.close();
    this.table?.close();
    if (this.arrival !== undefined) closeQuietly(this.arrival);
    this.arrival = undefined;
  }
}

export interface LoadIndexOptions {
  /**
   * false: read every index object, never an index table. For callers that need each pack's
   * entries and each object's packs (GC), or that must see every object as stored (verify).
   */
  table?: boolean;
}

const NO_PACKS = new Uint32Array(0);

/** The id at word `o` of `w` as 64 hex characters. */
function wordsHex(w: Uint32Array, o: number): string {
  return Buffer.from(w.buffer, w.byteOffset + o * 4, 32).toString('hex');
}

const unreachable = new FinalizationRegistry<ScratchFiles>((files) => files.close());

export class ChunkIndex {
  // Records [#spilled, #records) are in memory, local number r - #spilled in #recs; those
  // before are in the scratch arrival file (pack order), and the located ones among them in
  // sorted runs (id order). Runs never hold two located records of one id.
  #recs = new IdTable(STRIDE, FIRST_SEG_RECORDS);
  #records = 0;
  #spilled = 0;
  readonly #files = new ScratchFiles();
  /**
   * Spilled packs removed, and spilled loose chunks removed (with the runs holding those
   * records: a loose chunk removed and added again has a visible record in a newer run):
   * their run records no longer count. A merge drops them.
   */
  readonly #removedPacks = new Set<number>();
  readonly #removedLoose = new Map<string, SortedRun[]>();
  /** Run records that removed packs or loose chunks hide (for size). */
  #hidden = 0;
  /** A run's record, as a lookup found it, and the run. */
  readonly #recWords = new Uint32Array(STRIDE);
  readonly #rec = Buffer.from(this.#recWords.buffer);
  #recRun: SortedRun | undefined;
  // Per pack, not per chunk: a pack's entries are the records [start, start + count).
  readonly #packs = new PackTable();
  /** Index objects read or stored, each with the packs it lists (by number). */
  readonly #objects = new Map<string, Uint32Array>();
  #unindexed: string[] = [];
  #unindexedEntries = 0;
  /** Loose chunks located (read from chunks/): a refresh that lists fewer saw some deleted. */
  #looseCount = 0;
  /** removePack was called: records were dropped that a refresh would not bring back. */
  #dirty = false;
  /**
   * A load is reading index objects: records are appended without being looked up, and a
   * spill writes them to the arrival file only. The load's end finds each chunk's first record
   * (#locateLoaded).
   */
  #deferred = false;

  constructor() {
    unreachable.register(this, this.#files, this);
  }

  /**
   * Every pack's entries as its index object lists them (duplicates across packs included),
   * made on demand from the records: a caller going through the packs (prune) holds one
   * pack's entries at a time, not a second object per chunk.
   */
  readonly packs: ReadonlyMap<string, PackEntry[]> = this.#packView();
  /** index/ objects that did not load: their packs' chunks are unknown, so nothing may be pruned. */
  readonly damaged: { name: string; problem: string }[] = [];
  /** Index tables that could not be used (damaged, or a newer format): the load read index/ instead. */
  readonly tableProblems: { name: string; problem: string }[] = [];
  /** Packs numbered below this came from the index table: their entries are not known here. */
  #tablePacks = 0;
  /** Records the newest table this index read or stored holds (a new one pays only for records outside it). */
  #inTable = 0;

  static async load(backend: Backend, codec: ObjectCodec, signal?: AbortSignal, opts: LoadIndexOptions = {}): Promise<ChunkIndex> {
    const index = new ChunkIndex();
    try {
      let objects: { name: string; size: number }[] = [];
      for await (const o of backend.list(signal, 'index')) objects.push({ name: o.name, size: o.size });
      const table = opts.table === false || !indexTablesOn() ? 'none' : await index.#useTable(backend, codec, new Set(objects.map((o) => o.name)), signal);
      if (table === 'used') objects = objects.filter((o) => !index.#objects.has(o.name));
      if (table !== 'restart') {
        index.#deferred = true;
        await index.#loadObjects(backend, codec, objects, signal);
      }
      if (table === 'restart' || !index.#locateLoaded()) {
        // The table failed after its packs were numbered (or, a block, as the load's sort read
        // through it): read index/ alone, the table's problem kept as a warning.
        index.close();
        const plain = await ChunkIndex.load(backend, codec, signal, { table: false });
        plain.tableProblems.push(...index.tableProblems);
        return plain;
      }
      for await (const o of backend.list(signal, 'chunks')) {
        // A name that is not a chunk id is not a chunk: nothing references it or could read it.
        if (parseHex(o.name, idKeyBytes, 0)) index.addLoose(o.name, o.size);
      }
      index.#releaseAfterLoad();
    } catch (err) {
      index.close();
      throw err;
    }
    return index;
  }

  /**
   * This index brought up to date with the store: index objects and loose chunks it has not
   * seen are added (this process's own packs stay known). When something it had read is gone
   * (another process's GC replaced index objects or deleted loose chunks), when an object did
   * not load, or after removePack, it is rebuilt instead: the result is then a new ChunkIndex.
   */
  async refresh(backend: Backend, codec: ObjectCodec, signal?: AbortSignal): Promise<ChunkIndex> {
    if (this.#dirty || this.damaged.length > 0) return ChunkIndex.load(backend, codec, signal);
    // Names only, and sizes for the new objects alone: index/ grows by one object per backup
    // until GC consolidates it, and a stat each was most of a warm refresh.
    const freshNames: string[] = [];
    let known = 0;
    for await (const name of backend.listNames(signal, 'index')) {
      if (this.#objects.has(name)) known++;
      else freshNames.push(name);
    }
    if (known < this.#objects.size) return ChunkIndex.load(backend, codec, signal);
    let fresh: { name: string; size: number }[];
    try {
      fresh = await Promise.all(freshNames.map((name) => backend.stat(signal, { type: 'index', name })));
    } catch (err) {
      // Gone since the listing: another process's GC is consolidating; read it all afresh.
      if (backend.isNotFound(err)) return ChunkIndex.load(backend, codec, signal);
      throw err;
    }
    const loose: { name: string; size: number }[] = [];
    known = 0;
    for await (const o of backend.list(signal, 'chunks')) {
      if (!parseHex(o.name, idKeyBytes, 0)) continue;
      const pack = this.#lookup();
      if (pack < 0) loose.push({ name: o.name, size: o.size });
      else if (pack === LOOSE) known++;
    }
    if (known < this.#looseCount) return ChunkIndex.load(backend, codec, signal);
    await this.#loadObjects(backend, codec, fresh, signal);
    for (const o of loose) this.addLoose(o.name, o.size);
    return this;
  }

  async #loadObjects(backend: Backend, codec: ObjectCodec, objects: { name: string; size: number }[], signal?: AbortSignal): Promise<void> {
    objects.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    // About one entry per 44 stored bytes (ids do not compress): the table grows once, not
    // ~log2(n) times; never past what memory holds before a spill.
    this.#recs.reserve(Math.min(indexMemoryRecords(), this.#recs.inTable + objects.reduce((a, o) => a + o.size, 0) / PACK_ENTRY_SIZE));
    const reading = new Set<Promise<void>>();
    // Each object is read into a buffer lent from here and given back once its packs are added
    // (the records are copies), so a large index goes through a few buffers. A fresh one per
    // object (~11 MiB for GC's consolidated ones) stayed with the allocator until a garbage
    // collection: loading 4 M entries peaked ~50 MiB higher. Freed at once when the load ends.
    const buffers = new BufferBin<Buffer>({ maxItems: LOAD_OBJECTS });
    let bytes = 0;
    try {
      for (const o of objects) {
        while (reading.size > 0 && (reading.size >= LOAD_OBJECTS || bytes + o.size > LOAD_BYTES)) await Promise.race(reading);
        bytes += o.size;
        const into = buffers.take(o.size) ?? Buffer.allocUnsafeSlow(Math.max(o.size, 64 * 1024));
        const one = this.#loadObject(backend, codec, o.name, into, signal).finally(() => {
          buffers.give(into);
          bytes -= o.size;
          reading.delete(one);
        });
        reading.add(one);
      }
      await Promise.all(reading);
    } finally {
      await Promise.allSettled(reading);
      for (const b of buffers.drain()) freeOwnBuffer(b);
    }
  }

  /** Index object `name`'s packs added; `into`: a buffer to read it into (it is done with when this resolves). */
  async #loadObject(backend: Backend, codec: ObjectCodec, name: string, into: Buffer, signal?: AbortSignal): Promise<void> {
    let packs: Uint32Array;
    try {
      const sealed = await backend.load(signal, { type: 'index', name }, { into });
      const obj = decodeIndexObject(codec.open('index', name, sealed), name, `<index/${name}>`);
      packs = new Uint32Array(obj.packs);
      let i = 0;
      for (const p of obj.views()) packs[i++] = this.#addPackIndex(p.name, p.index);
    } catch (err) {
      if (signal?.aborted) throw err;
      // A spill that failed (no room for the scratch file) is the job's failure, not a damaged object.
      if (err instanceof HvError && err.code === 'ERR_IO') throw err;
      this.damaged.push({ name, problem: (err as Error).message });
      return;
    }
    this.#objects.set(name, packs);
  }

  /**
   * The stored table covering the most of `listed` (index objects, every one it covers among
   * them) becomes this index's oldest records: its packs are numbered first, its objects count
   * as read. 'none' when there is none to use; a table that fails to open is reported in
   * tableProblems and passed over ('restart': the failure came after its packs were numbered,
   * so the load starts again without tables).
   */
  async #useTable(backend: Backend, codec: ObjectCodec, listed: ReadonlySet<string>, signal?: AbortSignal): Promise<'used' | 'none' | 'restart'> {
    let best: IndexTable | undefined;
    for await (const name of backend.listNames(signal, 'tables')) {
      if (!/^[0-9a-f]{64}$/.test(name)) continue;
      let table: IndexTable;
      try {
        table = await IndexTable.open(backend, codec, name, signal);
      } catch (err) {
        if (signal?.aborted) throw err;
        // Gone since the listing: GC removed it (every index object it covered is gone too).
        if (!backend.isNotFound(err)) this.tableProblems.push({ name, problem: (err as Error).message });
        continue;
      }
      if (table.objects.every((o) => listed.has(o)) && table.objects.length > (best?.objects.length ?? 0)) {
        best?.close();
        best = table;
      } else table.close();
    }
    if (!best) return 'none';
    try {
      await best.prepare(signal);
      const names = best.packNames();
      best.loadFence();
      // A pack listed twice (a table no CRC catches as damaged, but not one we wrote) throws here.
      for (let p = 0; p < names.length / 32; p++) this.#packs.addBytes(names, p * 32, 0, 0);
    } catch (err) {
      best.close();
      if (signal?.aborted) throw err;
      this.tableProblems.push({ name: best.name, problem: (err as Error).message });
      return this.#packs.length > 0 ? 'restart' : 'none';
    }
    this.#tablePacks = this.#packs.length;
    this.#inTable = best.count;
    for (const o of best.objects) this.#objects.set(o, NO_PACKS);
    this.#files.table = best;
    return 'used';
  }

  /** The index table this index looks chunks up in, if any (reports and tests). */
  get table(): { name: string; records: number; objects: number; memoryBytes: number } | undefined {
    const t = this.#files.table;
    return t && { name: t.name, records: t.count, objects: t.objects.length, memoryBytes: t.memoryBytes };
  }

  /**
   * Store what this index holds as an index table when its records found outside a table are
   * many (indexTableRecords(), and a quarter of the table's): the next loads read it in place
   * instead of the index objects it covers. The caller holds a lock (GC, which deletes tables,
   * waits for it). Nothing is stored when the index is not exactly what index/ lists (damaged
   * objects, packs waiting for an index object, removals) or the backend cannot write a stream;
   * the name is then undefined. Records in memory move to a scratch run first; once stored,
   * the table replaces this index's runs (their Bloom filters: ~2 bytes a chunk), unless loose
   * chunks are among them.
   */
  async saveTable(backend: Backend, codec: ObjectCodec, signal?: AbortSignal): Promise<string | undefined> {
    if (!indexTablesOn()) return undefined;
    const table = this.#files.table;
    const outside = this.size - this.#inTable - this.#looseCount;
    if (outside < Math.max(indexTableRecords(), this.#inTable / 4)) return undefined;
    if (this.#dirty || this.damaged.length > 0 || this.#unindexed.length > 0 || this.#hidden > 0 || this.#removedPacks.size > 0 || this.#removedLoose.size > 0) return undefined;
    const objects = [...this.#objects.keys()].sort();
    // Named by what it covers: two jobs that would write the same table meet at one name.
    const name = createHash('sha256').update(objects.join('\n')).digest('hex');
    if (table?.name === name) return undefined;
    const writer = await IndexTableWriter.open(backend, codec, name, signal);
    if (!writer) return undefined;
    let records: number;
    let ours = true;
    try {
      if (this.#records > this.#spilled) this.#spill();
      const sources: SortedSource[] = [...(table ? [table] : []), ...this.#files.runs.runs];
      // Loose chunks stay out: chunks/ is listed by every load, and GC deletes them without touching index/.
      for (const { words, count } of mergeSorted(sources, (w, o) => (w[o + W_PACK]! & PACK_BITS) === LOOSE)) {
        await writer.add(words, count);
      }
      records = writer.records;
      await writer.finish(this.#packs.nameBytes(), objects);
    } catch (err) {
      await writer.abort().catch(() => undefined);
      // Another job stored the same table first (the same objects: the same chunks). Not
      // switched to: its pack numbers (the order its loads finished reading objects in) are
      // not necessarily this index's.
      if (!(err instanceof HvError && err.code === 'ERR_ALREADY_EXISTS')) throw err;
      records = this.size - this.#looseCount;
      ours = false;
    }
    this.#inTable = records;
    if (ours && this.#looseCount === 0) await this.#switchTo(backend, codec, name, signal);
    return name;
  }

  /** Table `name`, just stored from every record here, in place of the runs and the table they came from. */
  async #switchTo(backend: Backend, codec: ObjectCodec, name: string, signal?: AbortSignal): Promise<void> {
    const stored = await IndexTable.open(backend, codec, name, signal);
    try {
      await stored.prepare(signal);
      stored.loadFence();
    } catch (err) {
      stored.close();
      throw err;
    }
    const files = this.#files;
    files.table?.close();
    files.runs.close();
    files.runs.runs = [];
    files.table = stored;
    this.#tablePacks = this.#packs.length;
  }

  /**
   * What is wrong with stored table `name`, checked against this index (every index object
   * read: verify's), or undefined when nothing is. A table covering an object that is gone is
   * not checked (no load uses it; GC removes it). Checked: every block opens and passes its
   * CRC, ids ascend, pack numbers are in range; every chunk it lists is in index/, at the same
   * place where index/ reads it from the same pack; and every chunk index/ reads from a pack of
   * the objects it covers is in it (a chunk missing there would be missing to every job).
   */
  async checkTable(backend: Backend, codec: ObjectCodec, name: string, signal?: AbortSignal): Promise<string | undefined> {
    if (this.#files.table) this.#needsObjects('checking an index table');
    let table: IndexTable;
    try {
      table = await IndexTable.open(backend, codec, name, signal);
    } catch (err) {
      return (err as Error).message;
    }
    try {
      if (!table.objects.every((o) => this.#objects.has(o))) return undefined;
      await table.prepare(signal);
      const names = table.packNames();
      const packs = names.length / 32;
      table.loadFence();
      const prev = new Uint32Array(STRIDE);
      let n = 0;
      for (const { words, count } of table.batches()) {
        for (let i = 0; i < count; i++, n++) {
          const o = i * STRIDE;
          const id = () => wordsHex(words, o);
          if (n > 0 && compareIds(prev, 0, words, o) >= 0) return `record ${n} (${id()}) is not after the one before it`;
          for (let k = 0; k < 8; k++) prev[k] = words[o + k]!;
          const pack = words[o + W_PACK]! & PACK_BITS;
          if (pack >= packs) return `record ${n} (${id()}) names pack number ${pack} of ${packs}`;
          for (let k = 0; k < 8; k++) idKey[k] = words[o + k]!;
          if (this.#lookup() < 0) return `lists chunk ${id()}, which no index object lists`;
          const loc = this.locate(id())!;
          const tablePack = names.toString('hex', pack * 32, pack * 32 + 32);
          if (loc.pack === tablePack && (loc.offset !== words[o + W_OFFSET] || loc.length !== words[o + W_LENGTH])) {
            return `places chunk ${id()} at ${words[o + W_OFFSET]}+${words[o + W_LENGTH]} of <packs/${tablePack}>, where index/ says ${loc.offset}+${loc.length}`;
          }
        }
      }
      const covered = new Set<string>();
      for (const o of table.objects) for (const p of this.objects.get(o) ?? []) covered.add(p);
      const found = new Uint32Array(STRIDE);
      for (const [id, loc] of this.entries()) {
        if (loc.pack === undefined || !covered.has(loc.pack)) continue;
        parseHex(id, idKeyBytes, 0);
        if (!table.find(idKey, found)) return `misses chunk ${id} (in <packs/${loc.pack}>, which an index object it covers lists)`;
      }
      return undefined;
    } catch (err) {
      if (signal?.aborted) throw err;
      return (err as Error).message;
    } finally {
      table.close();
    }
  }

  /** ERR_INTERNAL: what the caller asked for needs every index object read, and a table stood in for some. */
  #needsObjects(what: string): never {
    throw new HvError('ERR_INTERNAL', `chunk index: ${what} needs every index object read, not an index table (load with table: false)`);
  }

  /** The caller changes this index in ways the store does not (prune's plans): the next refresh rebuilds it. */
  invalidate(): void {
    this.#dirty = true;
  }

  /**
   * index/ objects this index has read or this process has stored, each with the packs it lists
   * (names made when asked for: prune goes through them once).
   */
  get objects(): ReadonlyMap<string, readonly string[]> {
    return this.#objectView();
  }

  /**
   * Index object `name`, listing `packs`, is stored (read from the store, or written by this
   * process). Packs this index does not know are left out: nothing can be read from them here.
   */
  noteObject(name: string, packs: readonly string[]): void {
    const numbers = packs.map((p) => this.#packs.find(p)).filter((n) => n >= 0);
    this.#objects.set(name, Uint32Array.from(numbers));
  }

  /** A pack of this process is durable but no index object lists it yet (pack-writer.ts stores one for such packs). */
  markUnindexed(name: string): void {
    const pack = this.#packs.find(name);
    if (pack < 0) return;
    this.#unindexed.push(name);
    this.#unindexedEntries += this.#packs.count(pack);
  }

  /** Packs waiting for an index object, and their entries in all. */
  get unindexed(): { packs: number; entries: number } {
    return { packs: this.#unindexed.length, entries: this.#unindexedEntries };
  }

  /** Take the packs waiting for an index object (with their entries); the caller stores one or gives them back. */
  takeUnindexed(): { name: string; entries: PackEntry[] }[] {
    const names = this.#unindexed;
    this.#unindexed = [];
    this.#unindexedEntries = 0;
    return names.flatMap((name) => {
      const entries = this.packs.get(name);
      return entries ? [{ name, entries }] : [];
    });
  }

  /** Index objects being stored one after another (pack-writer.ts), so each waiting pack goes into exactly one. */
  indexing: Promise<void> = Promise.resolve();

  has(id: string): boolean {
    return parseHex(id, idKeyBytes, 0) && (this.#recs.find() >= 0 || this.#inRuns());
  }

  /** has() for a raw 32-byte id at `offset` in `id`, for callers that hold the bytes. */
  hasBytes(id: Uint8Array, offset = 0): boolean {
    if (offset < 0 || offset + 32 > id.length) return false;
    // Byte by byte: a subarray to copy from would be an allocation per lookup.
    for (let k = 0; k < 32; k++) idKeyBytes[k] = id[offset + k]!;
    return this.#recs.find() >= 0 || this.#inRuns();
  }

  locate(id: string): ChunkLocation | undefined {
    if (!parseHex(id, idKeyBytes, 0)) return undefined;
    const slot = this.#recs.find();
    if (slot >= 0) {
      const r = this.#recs.record(slot);
      return this.#locationAt(this.#recs.bytes(r), this.#recs.at(r) * 4);
    }
    return this.#inRuns() ? this.#locationAt(this.#rec, 0) : undefined;
  }

  get size(): number {
    let n = this.#recs.inTable - this.#hidden + (this.#files.table?.count ?? 0);
    for (const run of this.#files.runs.runs) n += run.count;
    return n;
  }

  /** Scratch-file runs and what they keep in memory (reports and tests). */
  get spilled(): { records: number; runs: number; memoryBytes: number } {
    const { runs } = this.#files.runs;
    return { records: this.#spilled, runs: runs.length, memoryBytes: runs.reduce((a, r) => a + r.memoryBytes, 0) };
  }

  /** Every known chunk once, with where it is read from: those in the table and in scratch runs in id order, then the rest in the order they became known. */
  *entries(): IterableIterator<[string, ChunkLocation]> {
    const table = this.#files.table;
    if (table) {
      const one = Buffer.allocUnsafe(RECORD);
      const ow = new Uint32Array(one.buffer, one.byteOffset, STRIDE);
      for (const { words, count } of table.batches()) {
        for (let i = 0; i < count; i++) {
          for (let k = 0; k < STRIDE; k++) ow[k] = words[i * STRIDE + k]!;
          yield [one.toString('hex', 0, 32), this.#locationAt(one, 0)];
        }
      }
    }
    for (const run of this.#files.runs.runs) {
      for (const { buf, words, count } of run.batches()) {
        for (let i = 0; i < count; i++) {
          if (!this.#hiddenAt(words, i * STRIDE, run)) yield [buf.toString('hex', i * RECORD, i * RECORD + 32), this.#locationAt(buf, i * RECORD)];
        }
      }
    }
    const local = this.#records - this.#spilled;
    for (let r = 0; r < local; r++) {
      if (this.#recs.words(r)[this.#recs.at(r) + W_PACK]! & LOCATED) yield [this.#recs.hex(r), this.#locationAt(this.#recs.bytes(r), this.#recs.at(r) * 4)];
    }
  }

  /**
   * A pack became durable (or was listed): its blobs are readable from now on. A chunk already
   * located stays where it is. A pack already known (listed by two index objects: an old
   * one-pack object beside a consolidated one, or GC killed between writing one and removing
   * the other) is added once.
   */
  addPack(name: string, entries: readonly PackEntry[]): void {
    if (this.#packs.find(name) >= 0) return;
    const start = this.#records - this.#spilled;
    // Every record first, the table after: an entry that does not fit leaves the index as it was.
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      const r = start + i;
      const w = this.#recs.ensure(r);
      const o = this.#recs.at(r);
      if (!parseHex(e.id, this.#recs.bytes(r), o * 4) || !isU32(e.offset) || !isU32(e.length) || !isU32(e.plainLength)) {
        throw new HvError('ERR_INTERNAL', `chunk index: pack ${name} entry ${i} (${e.id}, offset ${e.offset}, length ${e.length}, plain ${e.plainLength}) is not a 64-hex id with u32 sizes`, { target: `<packs/${name}>` });
      }
      w[o + W_PACK] = this.#packs.length;
      w[o + W_OFFSET] = e.offset;
      w[o + W_LENGTH] = e.length;
      w[o + W_PLAIN] = e.plainLength;
    }
    this.#listPack(name, start, entries.length);
  }

  /** addPack from a pack index as stored (checked already): its raw ids copied, never made hex. */
  addPackIndex(name: string, v: PackIndexView): void {
    this.#addPackIndex(name, v);
  }

  /** addPackIndex, returning the pack's number (its earlier one if it is known already). */
  #addPackIndex(name: string, v: PackIndexView): number {
    const known = this.#packs.find(name);
    if (known >= 0) return known;
    const pack = this.#nextPack();
    const start = this.#records - this.#spilled;
    const { buf, count } = v;
    for (let i = 0, p = PACK_INDEX_HEADER; i < count; i++, p += PACK_ENTRY_SIZE) {
      const r = start + i;
      const w = this.#recs.ensure(r);
      const o = this.#recs.at(r);
      const bytes = this.#recs.bytes(r);
      for (let k = 0, at = o * 4; k < 32; k++) bytes[at + k] = buf[p + k]!;
      w[o + W_PACK] = pack;
      w[o + W_OFFSET] = buf.readUInt32LE(p + 32);
      w[o + W_LENGTH] = buf.readUInt32LE(p + 36);
      w[o + W_PLAIN] = buf.readUInt32LE(p + 40);
    }
    this.#listPack(name, start, count);
    return pack;
  }

  /** The number the next pack gets (its records carry it before it is listed). */
  #nextPack(): number {
    const pack = this.#packs.length;
    if (pack >= LOOSE) throw new HvError('ERR_INTERNAL', `chunk index: more than ${LOOSE - 1} packs`);
    return pack;
  }

  /** The next pack's records, local [start, start + count), are written: list the pack and find its chunks. */
  #listPack(name: string, start: number, count: number): void {
    this.#nextPack();
    this.#packs.add(name, this.#spilled + start, count);
    this.#records = this.#spilled + start + count;
    if (!this.#deferred) this.#locate(start, start + count);
    this.#spillIfFull();
  }

  /** In-memory records [from, to) (local numbers) that are their chunk's first located. */
  #locate(from: number, to: number): void {
    for (let r = from; r < to; r++) {
      this.#recs.keyOf(r);
      const slot = this.#recs.find();
      if (slot < 0 && !this.#inRuns()) this.#insert(~slot, r);
    }
  }

  /**
   * The end of a load's reading: each chunk located at its first record. Records all still in
   * memory are looked up there (and in the table). Past the budget, every record is in the
   * arrival file, in the order read: one sort finds each id's first (buildFirstRun), without
   * those the table holds, into one run without a Bloom filter. The lookups and filters of the
   * runs a record-by-record load made cost a 16 M-chunk load ~25 s and ~60 MiB (each run's
   * filter, and a merge's new one beside the old). False: the table is damaged (tableProblems
   * says how), and the load must read index/ without it.
   */
  #locateLoaded(): boolean {
    if (this.#spilled === 0) {
      this.#deferred = false;
      this.#locate(0, this.#records);
      return true;
    }
    if (this.#records > this.#spilled) this.#spill();
    this.#deferred = false;
    // The sort reads the whole table (before, a damaged block failed only lookups that reached
    // it): an error reading it means the table is passed over, as one that does not open is.
    const table = this.#files.table;
    let tableFailed: unknown;
    const older = table && {
      *batches() {
        try {
          yield* table.batches();
        } catch (err) {
          tableFailed = err;
          throw err;
        }
      },
    };
    let run: SortedRun;
    try {
      run = buildFirstRun(this.#files.arrival!, this.#records, older, (w, o) => { w[o + W_PACK]! |= LOCATED; });
    } catch (err) {
      if (err !== tableFailed || !table || !isHvError(err, 'ERR_CORRUPT')) throw err;
      this.tableProblems.push({ name: table.name, problem: err.message });
      return false;
    }
    this.#files.runs.add(run);
    return true;
  }

  addLoose(id: string, size: number): void {
    if (!parseHex(id, idKeyBytes, 0)) throw new HvError('ERR_INTERNAL', `chunk index: loose chunk id ${id} is not 64 lowercase hex`, { target: `<chunks/${id}>` });
    if (!isU32(size)) throw new HvError('ERR_CORRUPT', `<chunks/${id}>: ${size} bytes is larger than any chunk object`, { target: `<chunks/${id}>` });
    const slot = this.#recs.find();
    if (slot >= 0 || this.#inRuns()) return;
    const r = this.#records - this.#spilled;
    const w = this.#recs.ensure(r);
    const o = this.#recs.at(r);
    for (let k = 0; k < 8; k++) w[o + k] = idKey[k]!;
    w[o + W_PACK] = LOOSE;
    w[o + W_OFFSET] = 0;
    w[o + W_LENGTH] = size;
    w[o + W_PLAIN] = 0;
    this.#records++;
    this.#looseCount++;
    this.#insert(~slot, r);
    this.#spillIfFull();
  }

  /**
   * Forget a pack (pruned). Chunks it held are forgotten too, even where another pack has a
   * copy: looking for one meant scanning every pack per chunk, and prune, the only caller,
   * reloads the index when it is done. The pack's records stay unused until then.
   */
  removePack(name: string): void {
    const pack = this.#packs.find(name);
    if (pack < 0) return;
    if (pack < this.#tablePacks) this.#needsObjects(`removing pack ${name}`);
    this.#dirty = true;
    this.#packs.remove(pack);
    const start = this.#packs.start(pack);
    const end = start + this.#packs.count(pack);
    if (start < this.#spilled) {
      // Its located records are in runs: hidden from now on, and counted out.
      const seen = new Set<string>();
      for (const e of this.#spilledEntries(start, end - start)) {
        if (seen.has(e.id)) continue;
        seen.add(e.id);
        parseHex(e.id, idKeyBytes, 0);
        if (this.#inRuns() && (this.#recWords[W_PACK]! & PACK_BITS) === pack) this.#hidden++;
      }
      this.#removedPacks.add(pack);
      return;
    }
    for (let r = start - this.#spilled; r < end - this.#spilled; r++) {
      this.#recs.keyOf(r);
      const slot = this.#recs.find();
      // By name: an earlier addPack of the same name may hold the chunk's located record.
      if (slot >= 0) {
        const of = this.#packOf(this.#recs.record(slot));
        if (of !== LOOSE && this.#packs.sameName(of, pack)) this.#delete(slot);
      }
    }
  }

  removeLoose(id: string): void {
    if (!parseHex(id, idKeyBytes, 0)) return;
    const slot = this.#recs.find();
    if (slot >= 0) {
      if (this.#packOf(this.#recs.record(slot)) === LOOSE) {
        this.#delete(slot);
        this.#looseCount--;
      }
      return;
    }
    if (this.#inRuns() && (this.#recWords[W_PACK]! & PACK_BITS) === LOOSE) {
      const runs = this.#removedLoose.get(id);
      if (runs) runs.push(this.#recRun!);
      else this.#removedLoose.set(id, [this.#recRun!]);
      this.#hidden++;
      this.#looseCount--;
    }
  }

  /** Close the scratch files, if any: a lookup that needs them fails from now on. */
  close(): void {
    unreachable.unregister(this);
    this.#files.close();
  }

  /** The id in idKey is in a run (its record then in #rec), not hidden by a removal. */
  #inRuns(): boolean {
    // Newest first: a removed chunk located again later has its new record in a newer run.
    const { runs } = this.#files.runs;
    for (let i = runs.length - 1; i >= 0; i--) {
      const run = runs[i]!;
      if (run.find(idKey, this.#recWords) && !this.#hiddenAt(this.#recWords, 0, run)) {
        this.#recRun = run;
        return true;
      }
    }
    // The table's records are the oldest: a chunk it holds was never located again elsewhere.
    if (this.#files.table?.find(idKey, this.#recWords)) {
      this.#recRun = undefined;
      return true;
    }
    return false;
  }

  /** Pack number of the id in idKey where it is located (LOOSE for a loose chunk), or -1. */
  #lookup(): number {
    const slot = this.#recs.find();
    if (slot >= 0) {
      const r = this.#recs.record(slot);
      return this.#recs.words(r)[this.#recs.at(r) + W_PACK]! & PACK_BITS;
    }
    return this.#inRuns() ? this.#recWords[W_PACK]! & PACK_BITS : -1;
  }

  /** Run `run`'s record at word `o` of `w` is of a removed pack or loose chunk. */
  #hiddenAt(w: Uint32Array, o: number, run: SortedRun): boolean {
    if (this.#hidden === 0) return false;
    const pack = w[o + W_PACK]! & PACK_BITS;
    if (pack !== LOOSE) return this.#removedPacks.has(pack);
    return this.#removedLoose.size > 0 && this.#removedLoose.get(wordsHex(w, o))?.includes(run) === true;
  }

  /**
   * Past the memory budget: every in-memory record to the arrival file, the located ones
   * sorted into a new run (RunList merges them when they pile up), the in-memory table emptied
   * for the next ones.
   */
  #spillIfFull(): void {
    if (this.#records - this.#spilled >= indexMemoryRecords()) this.#spill();
  }

  /**
   * A load that spilled: the records still in memory go to a run too, and their memory (the
   * budget's segments and table, ~28 MiB by default) is let go. What a job adds after the load
   * (its own packs) is little, and a restore or verify adds nothing. Lookups ask one filter more.
   */
  #releaseAfterLoad(): void {
    if (this.#spilled === 0) return;
    if (this.#records > this.#spilled) this.#spill();
    this.#recs = new IdTable(STRIDE, FIRST_SEG_RECORDS);
  }

  #spill(): void {
    const local = this.#records - this.#spilled;
    const files = this.#files;
    files.arrival ??= openScratch('chunk-index');
    const recs = this.#recs;
    for (let r = 0; r < local; r += 1 << 16) {
      const n = Math.min(1 << 16, local - r);
      const at = recs.at(r) * 4;
      writeAllSync(files.arrival, recs.bytes(r).subarray(at, at + n * RECORD), (this.#spilled + r) * RECORD, 'chunk index');
    }
    if (this.#deferred) {
      // Nothing was looked up: the load's end sorts them all (#locateLoaded).
      this.#spilled = this.#records;
      recs.clear();
      return;
    }
    const run = buildRun(local, STRIDE, (r) => recs.words(r), (r) => recs.at(r), (w, o) => (w[o + W_PACK]! & LOCATED) !== 0);
    this.#spilled = this.#records;
    recs.clear();
    // A merge leaves out the records of removed packs and loose chunks, and counts them out.
    files.runs.add(run, (w, o, from) => {
      if (!this.#hiddenAt(w, o, from)) return false;
      this.#hidden--;
      if ((w[o + W_PACK]! & PACK_BITS) === LOOSE) {
        const id = wordsHex(w, o);
        const left = this.#removedLoose.get(id)!.filter((r) => r !== from);
        if (left.length > 0) this.#removedLoose.set(id, left);
        else this.#removedLoose.delete(id);
      }
      return true;
    });
  }

  /** Records [start, start + count) of the arrival file as pack entries. */
  *#spilledEntries(start: number, count: number): Generator<PackEntry> {
    const fd = this.#files.arrival;
    if (fd === undefined) throw new HvError('ERR_INTERNAL', 'chunk index: a spilled pack\'s entries asked for after close');
    const buf = Buffer.allocUnsafe(Math.min(count, 1 << 16) * RECORD);
    for (let i = 0; i < count; i += 1 << 16) {
      const n = Math.min(1 << 16, count - i);
      readAllSync(fd, buf, n * RECORD, (start + i) * RECORD, 'chunk index');
      for (let k = 0; k < n; k++) {
        const o = k * RECORD;
        yield { id: buf.toString('hex', o, o + 32), offset: buf.readUInt32LE(o + 36), length: buf.readUInt32LE(o + 40), plainLength: buf.readUInt32LE(o + 44) };
      }
    }
  }

  #insert(slot: number, r: number): void {
    this.#recs.words(r)[this.#recs.at(r) + W_PACK]! |= LOCATED;
    this.#recs.insert(slot, r);
  }

  #delete(slot: number): void {
    const r = this.#recs.record(slot);
    this.#recs.words(r)[this.#recs.at(r) + W_PACK]! &= PACK_BITS;
    this.#recs.delete(slot);
  }

  /** Pack number of in-memory record r (local number), LOOSE for a loose chunk. */
  #packOf(r: number): number {
    return this.#recs.words(r)[this.#recs.at(r) + W_PACK]! & PACK_BITS;
  }

  #locationAt(buf: Buffer, off: number): ChunkLocation {
    const pack = buf.readUInt32LE(off + 32) & PACK_BITS;
    if (pack === LOOSE) return { offset: 0, length: buf.readUInt32LE(off + 40) };
    return { pack: this.#packs.name(pack), offset: buf.readUInt32LE(off + 36), length: buf.readUInt32LE(off + 40), plainLength: buf.readUInt32LE(off + 44) };
  }

  #entriesOf(pack: number): PackEntry[] {
    if (pack < this.#tablePacks) this.#needsObjects(`the entries of pack ${this.#packs.name(pack)}`);
    const start = this.#packs.start(pack);
    const count = this.#packs.count(pack);
    if (start < this.#spilled) return [...this.#spilledEntries(start, count)];
    const out: PackEntry[] = new Array(count);
    for (let i = 0; i < out.length; i++) {
      const r = start - this.#spilled + i;
      const w = this.#recs.words(r);
      const o = this.#recs.at(r);
      out[i] = { id: this.#recs.hex(r), offset: w[o + W_OFFSET]!, length: w[o + W_LENGTH]!, plainLength: w[o + W_PLAIN]! };
    }
    return out;
  }

  #packView(): ReadonlyMap<string, PackEntry[]> {
    const packs = this.#packs;
    return mapView({
      size: () => packs.size,
      has: (name) => packs.find(name) >= 0,
      get: (name) => {
        const pack = packs.find(name);
        return pack < 0 ? undefined : this.#entriesOf(pack);
      },
      *keys() {
        for (const pack of packs.live()) yield packs.name(pack);
      },
    });
  }

  #objectView(): ReadonlyMap<string, readonly string[]> {
    const objects = this.#objects;
    const names = (numbers: Uint32Array) => Array.from(numbers, (p) => this.#packs.name(p));
    return mapView({
      size: () => objects.size,
      has: (name) => objects.has(name),
      get: (name) => {
        const numbers = objects.get(name);
        if (numbers === NO_PACKS) this.#needsObjects(`the packs of index object ${name}`);
        return numbers && names(numbers);
      },
      keys: () => objects.keys(),
    });
  }
}

/** A read-only Map whose values are made when asked for, from its size, lookups and its keys in order. */
function mapView<V>(m: { size(): number; has(key: string): boolean; get(key: string): V | undefined; keys(): Iterator<string> & Iterable<string> }): ReadonlyMap<string, V> {
  function* pairs(): MapIterator<[string, V]> {
    for (const key of m.keys()) yield [key, m.get(key)!];
  }
  function* values(): MapIterator<V> {
    for (const [, v] of pairs()) yield v;
  }
  function* keys(): MapIterator<string> {
    yield* m.keys();
  }
  return {
    get size() { return m.size(); },
    has: (key: string) => m.has(key),
    get: (key: string) => m.get(key),
    keys,
    values,
    entries: pairs,
    [Symbol.iterator]: pairs,
    forEach(fn: (value: V, key: string, map: ReadonlyMap<string, V>) => void, thisArg?: unknown) {
      for (const [key, v] of pairs()) fn.call(thisArg, v, key, this);
    },
  };
}
