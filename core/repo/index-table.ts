// An index table: the located records of a chunk index, sorted by id, stored in the repository
// (tables/<name>) so that the next job looks chunks up in it in place instead of reading every
// index/ object and sorting their records into scratch runs again. A derived object, like a
// search index: it says nothing index/ does not, a job that finds none (or none it can use)
// reads index/ as before, and deleting tables/ loses nothing. Layout in
// docs/repository-format.md "Index tables".
//
// Made by a job whose index load moved more than a budget of records to scratch runs (a large
// repository's), covering the index objects that load read. A later load uses the table that
// covers the most index objects, all of them still listed (GC replaces index objects whenever
// it removes a pack, so a table covering one it removed is ignored, and GC then deletes it),
// and reads only the index objects it does not cover. Lookups read one block (64 records, 3 KiB)
// through the fence, a few MiB in memory per TiB of unique data: no Bloom filter, so a lookup
// of an absent id reads a block too (a few µs from the page cache).
//
// Blocks are sealed one by one (each bound to its table and number in an encrypted repository)
// so a lookup opens 3 KiB, and each carries a CRC-32 of its records, so a damaged table of an
// unencrypted repository is noticed too.

import { fstatSync, openSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import { HvError } from '../errors.ts';
import type { Backend, Handle, ObjectWriter } from './backend.ts';
import type { ObjectCodec } from './crypto/codec.ts';
import { BLOCK_RECORDS, closeQuietly, Fence, findInBlock, openScratch, readAllSync, RECORD, recordsSetting, type SortedSource, writeAllSync } from './sorted-run.ts';

export const TABLE_MAGIC = 'HVBIXT01';
export const TABLE_VERSION = 1;
export const TABLE_TRAILER = 64;
const WORDS = RECORD / 4;
/** A block's plain bytes: BLOCK_RECORDS records, then the CRC-32 of them. */
const PLAIN_BLOCK = BLOCK_RECORDS * RECORD + 4;
/** Sealed blocks written at a time (~3 MiB). */
const WRITE_BLOCKS = 1024;
/** Bytes copied at a time into a scratch file from a backend without local files. */
const COPY_BYTES = 4 * 1024 * 1024;

/** What the trailer says. */
export interface TableTrailer {
  records: number;
  sealedBlock: number;
  packs: number;
  objects: number;
  objectsLength: number;
  packsLength: number;
  fencesLength: number;
}

export function encodeTrailer(t: TableTrailer): Buffer {
  const b = Buffer.alloc(TABLE_TRAILER);
  b.write(TABLE_MAGIC, 0, 'latin1');
  b.writeUInt32LE(TABLE_VERSION, 8);
  b.writeUInt32LE(BLOCK_RECORDS, 12);
  b.writeUInt32LE(t.sealedBlock, 16);
  b.writeUInt32LE(t.packs, 20);
  b.writeUInt32LE(t.objects, 24);
  b.writeUInt32LE(t.objectsLength, 28);
  b.writeUInt32LE(t.packsLength, 32);
  b.writeUInt32LE(t.fencesLength, 36);
  b.writeBigUInt64LE(BigInt(t.records), 40);
  b.writeUInt32LE(crc32(b.subarray(0, 60)), 60);
  return b;
}

/** The trailer of a table of `size` bytes, checked against that size; `what` names it in errors. */
export function decodeTrailer(b: Buffer, size: number, what: string): TableTrailer {
  const bad = (problem: string) => new HvError('ERR_CORRUPT', `${what}: ${problem}`, { target: what });
  if (b.length !== TABLE_TRAILER || b.toString('latin1', 0, 8) !== TABLE_MAGIC) throw bad('not an index table (no HVBIXT01 trailer)');
  if (crc32(b.subarray(0, 60)) !== b.readUInt32LE(60)) throw bad('trailer checksum mismatch');
  const version = b.readUInt32LE(8);
  if (version !== TABLE_VERSION) throw new HvError('ERR_UNSUPPORTED', `${what}: index table version ${version} (this HVBackup reads ${TABLE_VERSION})`, { target: what });
  if (b.readUInt32LE(12) !== BLOCK_RECORDS) throw bad(`${b.readUInt32LE(12)} records per block, not ${BLOCK_RECORDS}`);
  const t: TableTrailer = {
    sealedBlock: b.readUInt32LE(16),
    packs: b.readUInt32LE(20),
    objects: b.readUInt32LE(24),
    objectsLength: b.readUInt32LE(28),
    packsLength: b.readUInt32LE(32),
    fencesLength: b.readUInt32LE(36),
    records: Number(b.readBigUInt64LE(40)),
  };
  const blocks = Math.ceil(t.records / BLOCK_RECORDS);
  const expect = blocks * t.sealedBlock + t.objectsLength + t.packsLength + t.fencesLength + TABLE_TRAILER;
  if (t.sealedBlock < PLAIN_BLOCK || !Number.isSafeInteger(t.records) || expect !== size) throw bad(`its sections (${t.records} records in blocks of ${t.sealedBlock} bytes, ${t.objectsLength} + ${t.packsLength} + ${t.fencesLength} bytes) do not add up to its ${size} bytes`);
  return t;
}

/** A section's plain bytes: `body` then its CRC-32. */
function withCrc(body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(body.length + 4);
  body.copy(out, 0);
  out.writeUInt32LE(crc32(body), body.length);
  return out;
}

/** The body of a section's plain bytes, its CRC-32 checked. */
function checkCrc(plain: Buffer, what: string): Buffer {
  if (plain.length < 4) throw new HvError('ERR_CORRUPT', `${what}: ${plain.length} bytes, too short`, { target: what });
  const body = plain.subarray(0, plain.length - 4);
  if (crc32(body) !== plain.readUInt32LE(body.length)) throw new HvError('ERR_CORRUPT', `${what}: checksum mismatch`, { target: what });
  return body;
}

/** The names a table's parts are sealed under (bound to the table and place in an encrypted repository). */
function blockName(table: string, b: number): string {
  return `${table}.b${b}`;
}

/**
 * Writes a table from records in id order: blocks as they fill, then the sections, then the
 * trailer. Nothing is visible under its name before finish() (ObjectWriter.commit).
 */
export class IndexTableWriter {
  readonly #out: ObjectWriter;
  readonly #codec: ObjectCodec;
  readonly #name: string;
  readonly #plain = Buffer.alloc(PLAIN_BLOCK);
  readonly #plainWords = new Uint32Array(this.#plain.buffer, this.#plain.byteOffset, (BLOCK_RECORDS * RECORD) / 4);
  readonly #sealedBlock: number;
  readonly #pending: Buffer;
  #inPending = 0;
  #inBlock = 0;
  #blocks = 0;
  #records = 0;
  /** The first 8 bytes of each block's first id. */
  #fences: Buffer[] = [];
  #fence = Buffer.allocUnsafe(8 * WRITE_BLOCKS);
  #inFence = 0;

  private constructor(out: ObjectWriter, codec: ObjectCodec, name: string) {
    this.#out = out;
    this.#codec = codec;
    this.#name = name;
    this.#sealedBlock = codec.seal('tables', this.#plain, blockName(name, 0)).length;
    this.#pending = Buffer.allocUnsafeSlow(this.#sealedBlock * WRITE_BLOCKS);
  }

  /** A writer of tables/<name>, or undefined when the backend cannot write a stream (a dry run). */
  static async open(backend: Backend, codec: ObjectCodec, name: string, signal?: AbortSignal): Promise<IndexTableWriter | undefined> {
    if (!backend.openWriter) return undefined;
    return new IndexTableWriter(await backend.openWriter(signal, { type: 'tables', name }), codec, name);
  }

  get records(): number {
    return this.#records;
  }

  /** `count` records from word 0 of `words`, ids after the last one added. */
  async add(words: Uint32Array, count: number): Promise<void> {
    for (let i = 0; i < count; i++) {
      const at = this.#inBlock * WORDS;
      for (let k = 0; k < WORDS; k++) this.#plainWords[at + k] = words[i * WORDS + k]!;
      if (this.#inBlock === 0) {
        if (this.#inFence === WRITE_BLOCKS) {
          this.#fences.push(this.#fence);
          this.#fence = Buffer.allocUnsafe(8 * WRITE_BLOCKS);
          this.#inFence = 0;
        }
        this.#plain.copy(this.#fence, this.#inFence++ * 8, 0, 8);
      }
      this.#records++;
      if (++this.#inBlock === BLOCK_RECORDS) await this.#sealBlock();
    }
  }

  async #sealBlock(): Promise<void> {
    // A short last block is padded with zero records: every sealed block has one size.
    this.#plain.fill(0, this.#inBlock * RECORD, BLOCK_RECORDS * RECORD);
    this.#plain.writeUInt32LE(crc32(this.#plain.subarray(0, BLOCK_RECORDS * RECORD)), BLOCK_RECORDS * RECORD);
    this.#codec.sealInto('tables', [this.#plain], blockName(this.#name, this.#blocks), this.#pending, this.#inPending * this.#sealedBlock);
    this.#blocks++;
    this.#inBlock = 0;
    if (++this.#inPending === WRITE_BLOCKS) await this.#flush();
  }

  async #flush(): Promise<void> {
    if (this.#inPending === 0) return;
    await this.#out.write(this.#pending.subarray(0, this.#inPending * this.#sealedBlock));
    this.#inPending = 0;
  }

  /**
   * The last block, the sections and the trailer; then the object is stored. `packs`: every
   * pack name by number (32 raw bytes each), `objects`: the index objects covered (64-hex names).
   */
  async finish(packs: Buffer, objects: readonly string[]): Promise<void> {
    if (this.#inBlock > 0) await this.#sealBlock();
    await this.#flush();
    const objectBytes = Buffer.allocUnsafe(objects.length * 32);
    objects.forEach((o, i) => {
      if (objectBytes.write(o, i * 32, 'hex') !== 32) throw new HvError('ERR_INTERNAL', `index table: object name ${o} is not 64 hex`);
    });
    const sections = [
      this.#codec.seal('tables', withCrc(objectBytes), `${this.#name}.objects`),
      this.#codec.seal('tables', withCrc(packs), `${this.#name}.packs`),
      this.#codec.seal('tables', withCrc(Buffer.concat([...this.#fences, this.#fence.subarray(0, this.#inFence * 8)])), `${this.#name}.fences`),
    ];
    for (const s of sections) await this.#out.write(s);
    await this.#out.write(encodeTrailer({
      records: this.#records,
      sealedBlock: this.#sealedBlock,
      packs: packs.length / 32,
      objects: objects.length,
      objectsLength: sections[0]!.length,
      packsLength: sections[1]!.length,
      fencesLength: sections[2]!.length,
    }));
    await this.#out.commit();
  }

  abort(): Promise<void> {
    return this.#out.abort();
  }
}

/** A stored table open for lookups: its file (in place, or a scratch copy), fence and trailer. */
export class IndexTable implements SortedSource {
  readonly name: string;
  readonly count: number;
  /** The index objects it covers (64-hex names). */
  readonly objects: readonly string[];
  readonly #what: string;
  /** The file read in place, or (a backend without local files) undefined until prepare() copies it to scratch. */
  #fd: number | undefined;
  readonly #backend: Backend;
  readonly #codec: ObjectCodec;
  readonly #t: TableTrailer;
  #fence: Fence;
  readonly #sealed: Buffer;
  #closed = false;

  private constructor(name: string, fd: number | undefined, backend: Backend, codec: ObjectCodec, t: TableTrailer, objects: string[], fence: Fence) {
    this.name = name;
    this.#what = `<tables/${name}>`;
    this.#fd = fd;
    this.#backend = backend;
    this.#codec = codec;
    this.#t = t;
    this.count = t.records;
    this.objects = objects;
    this.#fence = fence;
    this.#sealed = Buffer.allocUnsafeSlow(t.sealedBlock);
  }

  /** Memory it holds (fence, block buffer), for reports. */
  get memoryBytes(): number {
    return this.#fence.memoryBytes + this.#sealed.length;
  }

  /**
   * Table `name` opened: its trailer and object list read and checked, and nothing more (a
   * caller that may not use it asks `objects` first, then prepare(), `packNames()` and
   * `loadFence()`). A backend without local files is read by ranges here and copied whole only
   * by prepare(). ERR_CORRUPT (or ERR_UNSUPPORTED, a newer version) naming <tables/name> when
   * it is not one.
   */
  static async open(backend: Backend, codec: ObjectCodec, name: string, signal?: AbortSignal): Promise<IndexTable> {
    const h: Handle = { type: 'tables', name };
    const fd = backend.localFile ? openLocal(backend.localFile(h), h) : undefined;
    try {
      const what = `<tables/${name}>`;
      const size = fd === undefined ? (await backend.stat(signal, h)).size : fstatSync(fd).size;
      const read = async (at: number, length: number): Promise<Buffer> => {
        if (fd !== undefined) {
          const buf = Buffer.allocUnsafe(length);
          readAllSync(fd, buf, length, at, 'index table');
          return buf;
        }
        return backend.load(signal, h, { offset: at, length });
      };
      if (size < TABLE_TRAILER) throw new HvError('ERR_CORRUPT', `${what}: ${size} bytes, too short for an index table`, { target: what });
      const t = decodeTrailer(await read(size - TABLE_TRAILER, TABLE_TRAILER), size, what);
      const blocksEnd = Math.ceil(t.records / BLOCK_RECORDS) * t.sealedBlock;
      const objectBytes = openSection(await read(blocksEnd, t.objectsLength), codec, name, 'objects');
      if (objectBytes.length !== t.objects * 32) throw new HvError('ERR_CORRUPT', `${what}: object list of ${objectBytes.length} bytes for ${t.objects} objects`, { target: what });
      const objects = Array.from({ length: t.objects }, (_, i) => objectBytes.toString('hex', i * 32, i * 32 + 32));
      return new IndexTable(name, fd, backend, codec, t, objects, new Fence(0));
    } catch (err) {
      if (fd !== undefined) closeQuietly(fd);
      throw err;
    }
  }

  /** Ready for packNames(), loadFence() and lookups: a table of a backend without local files is copied to a scratch file. */
  async prepare(signal?: AbortSignal): Promise<void> {
    if (this.#fd !== undefined) return;
    const fd = await copyToScratch(this.#backend, { type: 'tables', name: this.name }, signal);
    if (this.#closed) closeQuietly(fd);
    else this.#fd = fd;
  }

  /** The file, once prepare() has run. */
  #file(): number {
    if (this.#closed) throw new HvError('ERR_INTERNAL', `${this.#what}: used after close`);
    if (this.#fd === undefined) throw new HvError('ERR_INTERNAL', `${this.#what}: used before prepare()`);
    return this.#fd;
  }

  /** Every pack's 32 raw name bytes, by number (read when asked for: tens of MiB in a large repository). */
  packNames(): Buffer {
    const t = this.#t;
    const at = Math.ceil(t.records / BLOCK_RECORDS) * t.sealedBlock + t.objectsLength;
    const packs = readSection(this.#file(), this.#codec, this.name, 'packs', at, t.packsLength);
    if (packs.length !== t.packs * 32) throw new HvError('ERR_CORRUPT', `${this.#what}: pack list of ${packs.length} bytes for ${t.packs} packs`, { target: this.#what });
    return packs;
  }

  /** The fence read in, so lookups can start. */
  loadFence(): void {
    const t = this.#t;
    const blocks = Math.ceil(t.records / BLOCK_RECORDS);
    const at = blocks * t.sealedBlock + t.objectsLength + t.packsLength;
    const bytes = readSection(this.#file(), this.#codec, this.name, 'fences', at, t.fencesLength);
    if (bytes.length !== blocks * 8) throw new HvError('ERR_CORRUPT', `${this.#what}: fence of ${bytes.length} bytes for ${blocks} blocks`, { target: this.#what });
    const fence = new Fence(blocks);
    for (let b = 0; b < blocks; b++) fence.setFromBytes(b, bytes, b * 8);
    this.#fence = fence;
  }

  /** Block `b`'s records (its plain bytes, the CRC checked; read into `sealed`) and how many it holds. */
  #block(b: number, sealed: Buffer): { words: Uint32Array; count: number } {
    readAllSync(this.#file(), sealed, this.#t.sealedBlock, b * this.#t.sealedBlock, 'index table');
    let plain: Buffer;
    try {
      plain = this.#codec.open('tables', blockName(this.name, b), sealed);
      if (plain.length !== PLAIN_BLOCK) throw new Error(`${plain.length} bytes`);
      checkCrc(plain, `block ${b}`);
    } catch (err) {
      throw new HvError('ERR_CORRUPT', `${this.#what}: block ${b} is damaged (${(err as Error).message}); the table only repeats index/, so removing it loses nothing (the next jobs read index/ instead)`, { target: this.#what, cause: err });
    }
    return { words: new Uint32Array(plain.buffer, plain.byteOffset, (BLOCK_RECORDS * RECORD) / 4), count: Math.min(BLOCK_RECORDS, this.count - b * BLOCK_RECORDS) };
  }

  /** The record of the id in `key` (its 8 words), copied to `out` (12 words); false when the table does not hold it. */
  find(key: Uint32Array, out: Uint32Array): boolean {
    if (this.count === 0) return false;
    const { first, last } = this.#fence.blocksFor(key, this.count);
    for (let b = first; b <= last; b++) {
      const { words, count } = this.#block(b, this.#sealed);
      if (findInBlock(words, count, key, out)) return true;
    }
    return false;
  }

  /** Every record in id order, a block at a time (a buffer of its own: lookups may come between). */
  *batches(): Generator<{ words: Uint32Array; count: number }> {
    const blocks = Math.ceil(this.count / BLOCK_RECORDS);
    const sealed = Buffer.allocUnsafe(this.#t.sealedBlock);
    for (let b = 0; b < blocks; b++) yield this.#block(b, sealed);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#fd !== undefined) closeQuietly(this.#fd);
  }
}

function openLocal(file: string, h: Handle): number {
  try {
    return openSync(file, 'r');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new HvError(code === 'ENOENT' ? 'ERR_NOT_FOUND' : 'ERR_IO', `open <${h.type}/${h.name}> (${file}): ${(err as Error).message}`, { target: `<${h.type}/${h.name}>`, cause: err });
  }
}

/** A backend without local files (object storage): the table is copied to a scratch file, read in place from there. */
async function copyToScratch(backend: Backend, h: Handle, signal?: AbortSignal): Promise<number> {
  const { size } = await backend.stat(signal, h);
  const fd = openScratch('index-table');
  try {
    for (let at = 0; at < size; at += COPY_BYTES) {
      const part = await backend.load(signal, h, { offset: at, length: Math.min(COPY_BYTES, size - at) });
      writeAllSync(fd, part, at, 'index table');
    }
  } catch (err) {
    closeQuietly(fd);
    throw err;
  }
  return fd;
}

/** Section `section` of table `name` ([at, at + length) of its file): opened, its CRC checked. */
function readSection(fd: number, codec: ObjectCodec, name: string, section: string, at: number, length: number): Buffer {
  const sealed = Buffer.allocUnsafe(length);
  readAllSync(fd, sealed, length, at, 'index table');
  return openSection(sealed, codec, name, section);
}

/** A section's stored bytes opened, its CRC checked; ERR_CORRUPT naming the table and section. */
function openSection(sealed: Buffer, codec: ObjectCodec, name: string, section: string): Buffer {
  const what = `<tables/${name}> ${section}`;
  try {
    return checkCrc(codec.open('tables', `${name}.${section}`, sealed), what);
  } catch (err) {
    if (err instanceof HvError && err.code === 'ERR_CORRUPT') throw err;
    throw new HvError('ERR_CORRUPT', `${what}: ${(err as Error).message}`, { target: `<tables/${name}>`, cause: err });
  }
}

/**
 * Located records a job's load must have found outside any table before it writes one: a
 * table pays when a load spills (sorted-run.ts's memory budget, 512 Ki records by default,
 * ~128 GiB of unique data), and a new one when the index objects it does not cover hold a
 * quarter as many records again. HVB_INDEX_TABLE_RECORDS sets it per process (tests lower it).
 */
let tableRecords = recordsSetting(process.env.HVB_INDEX_TABLE_RECORDS);

export function indexTableRecords(): number {
  return tableRecords;
}

/** HVB_INDEX_TABLES=0: jobs neither use nor store index tables (benchmarks; a way round a table suspected of trouble). */
export function indexTablesOn(): boolean {
  return process.env.HVB_INDEX_TABLES !== '0';
}

/** Tests: the records a load must find outside tables before it writes one (undefined: the default). */
export function setIndexTableRecords(n: number | undefined): void {
  tableRecords = n === undefined ? recordsSetting(process.env.HVB_INDEX_TABLE_RECORDS) : Math.max(1, Math.floor(n));
}
