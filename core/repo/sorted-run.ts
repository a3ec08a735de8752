// A chunk index's records sorted by id in a scratch file: where ChunkIndex moves what it holds
// once it passes its memory budget, so a repository of many TiB of unique data is looked up with
// ~2 bytes of memory per chunk instead of ~60. Made once, never changed; runs merge into a new
// one.
//
// A record is RECORD bytes, laid out as ChunkIndex keeps them in memory: the id's 32 raw bytes,
// then four u32 words in the platform's order (pack, offset, stored length, plain length).
// Records are in byte order of their ids, each id once. In memory per run: the first 8 bytes
// of every BLOCK-th id (the fence: which block a lookup reads) and a Bloom filter of 14 bits
// per id, which answers most lookups of an absent id without reading the file (a full backup
// asks for millions of those). The one run a large load sorts its records into keeps no filter
// (buildFirstRun): ~1.75 bytes a chunk saved, and an absent id costs a block read there, as in
// an index table. A lookup of a present id costs one 3 KiB read, from the page cache as a rule.
//
// The files are scratch: unlinked as soon as they are open (libuv opens with FILE_SHARE_DELETE
// on Windows, so this should work there too: docs/windows-test-plan.md step 13), so a killed
// process leaves nothing behind, wherever they are. They go to scratchDir() (the system's temporary folder unless HVB_SCRATCH_DIR says).

import { closeSync, openSync, readSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { HvError } from '../errors.ts';

/** Bytes of a record: id and four u32 words (ChunkIndex's STRIDE of 12 words). */
export const RECORD = 48;
/** Records per fence entry: a lookup reads one block, 3 KiB. */
const BLOCK = 64;
/**
 * The Bloom filter is blocked: an id's probes all fall in one 512-bit block (one cache line),
 * chosen by its word 1; the 9 probes are 9-bit fields of words 2..6. Ids are SHA-256 or HMAC
 * outputs, uniform, so their own bits serve as the hashes. 14 bits per id: 0.19 % false hits
 * (measured; 10 bits gave 0.97 %, and a false hit costs a read: loading a 4 M-chunk index
 * made 130,000 of them, seconds of reads, at 10 bits).
 */
const BLOOM_BITS_PER_ID = 14;
const BLOOM_PROBES = 9;
const BLOOM_BLOCK_WORDS = 16;

/** The Bloom block (its first word) of an id whose words are `key` at `o`, of `blocks`. */
function bloomBlock(key: Uint32Array, o: number, blocks: number): number {
  return Math.floor((key[o + 1]! / 4294967296) * blocks) * BLOOM_BLOCK_WORDS;
}

/** Probe k's bit within its block. */
function bloomBit(key: Uint32Array, o: number, k: number): number {
  return (key[o + 2 + (k >>> 1)]! >>> ((k & 1) << 4)) & 511;
}
/** Records read or written at a time when streaming a run (3 MiB). */
const STREAM_RECORDS = 64 * 1024;

let scratchRoot: string | undefined = process.env.HVB_SCRATCH_DIR || undefined;

/**
 * Records a chunk index (ids a ChunkIdSet) keeps in memory before it moves them to a sorted
 * run in a scratch file: ~56 bytes each (~40), so 512 Ki (128 GiB of unique data at 256 KiB chunks) is
 * ~28 MiB. HVB_INDEX_MEMORY_RECORDS sets it for a process (a host with memory to spare may
 * raise it and skip the scratch files; tests lower it).
 */
let memoryRecords = recordsSetting(process.env.HVB_INDEX_MEMORY_RECORDS);

/** A count of records from an environment variable: a whole number from 1, else 512 Ki. */
export function recordsSetting(v: string | undefined): number {
  const n = v === undefined || v === '' ? NaN : Number(v);
  return Number.isSafeInteger(n) && n >= 1 ? n : 512 * 1024;
}

/** Records a chunk index (or ids a ChunkIdSet) holds in memory before spilling them to a sorted run. */
export function indexMemoryRecords(): number {
  return memoryRecords;
}

/** Records a chunk index holds in memory before it spills them to a sorted run (tests; undefined: the default). */
export function setIndexMemoryRecords(n: number | undefined): void {
  memoryRecords = n === undefined ? recordsSetting(process.env.HVB_INDEX_MEMORY_RECORDS) : Math.max(1, Math.floor(n));
}

/** Where scratch files go (the system's temporary folder unless HVB_SCRATCH_DIR or setScratchDir said). */
export function scratchDir(): string {
  return scratchRoot ?? tmpdir();
}

/** Scratch files go to `dir` from now on (undefined: back to the default). */
export function setScratchDir(dir: string | undefined): void {
  scratchRoot = dir;
}

/** A new scratch file open for reading and writing, its name already gone. */
export function openScratch(what: string): number {
  const path = join(scratchDir(), `hvbackup-${what}-${process.pid}-${randomBytes(6).toString('hex')}`);
  let fd: number;
  try {
    fd = openSync(path, 'wx+');
  } catch (err) {
    throw new HvError('ERR_IO', `cannot make a scratch file for the ${what} in ${scratchDir()} (set HVB_SCRATCH_DIR to a folder with room): ${(err as Error).message}`, { target: path, cause: err });
  }
  try {
    unlinkSync(path);
  } catch {
    // Still usable; the name stays until someone removes it. Rare enough not to fail the job for.
  }
  return fd;
}

/** Every byte of `buf` to `fd` at `pos`, or an HvError naming the scratch file's purpose. */
export function writeAllSync(fd: number, buf: Uint8Array, pos: number, what: string): void {
  let done = 0;
  try {
    while (done < buf.length) done += writeSync(fd, buf, done, buf.length - done, pos + done);
  } catch (err) {
    throw new HvError('ERR_IO', `write the ${what} scratch file in ${scratchDir()} (set HVB_SCRATCH_DIR to a folder with room): ${(err as Error).message}`, { cause: err });
  }
}

/** `length` bytes at `pos` of `fd` into `buf` at 0. */
export function readAllSync(fd: number, buf: Uint8Array, length: number, pos: number, what: string): void {
  let done = 0;
  while (done < length) {
    const n = readSync(fd, buf, done, length - done, pos + done);
    if (n === 0) throw new HvError('ERR_INTERNAL', `the ${what} scratch file ended at ${pos + done} bytes, before ${pos + length}`);
    done += n;
  }
}

/** A u32 word as read big-endian: ids sort by their bytes, records hold their words in the platform's (little-endian) order. */
function be(v: number): number {
  return (((v & 0xff) << 24) | ((v & 0xff00) << 8) | ((v >>> 8) & 0xff00) | (v >>> 24)) >>> 0;
}

/** Byte order of two ids: `a`'s at word `ao` against `b`'s at word `bo`. */
export function compareIds(a: Uint32Array, ao: number, b: Uint32Array, bo: number): number {
  for (let k = 0; k < 8; k++) {
    const x = a[ao + k]!;
    const y = b[bo + k]!;
    if (x !== y) return be(x) < be(y) ? -1 : 1;
  }
  return 0;
}

/**
 * Arrays sortById works in, kept for the next call: a large load sorts 256 partitions of tens
 * of thousands of records, and fresh arrays for each (~0.5 MiB a partition) piled up as ~60 MiB
 * of garbage outside the heap before a collection came.
 */
export class SortScratch {
  key = new Uint32Array(0);
  bucket = new Uint32Array(0);
  order = new Uint32Array(0);
  orderKey = new Uint32Array(0);
  readonly counts = new Uint32Array((1 << 16) + 1);
  readonly next = new Uint32Array(1 << 16);

  /** Room for `n` records. */
  fit(n: number): void {
    if (this.key.length >= n) return;
    this.key = new Uint32Array(n);
    this.bucket = new Uint32Array(n);
    this.order = new Uint32Array(n);
    this.orderKey = new Uint32Array(n);
  }
}

/**
 * Record numbers `list` ordered by id, in place, records of equal ids in the order they were
 * (stable); `words(r)` and `at(r)` give record r's words and where they start. `skip`: leading
 * bits every id in `list` shares (a partition's). Ids are uniform, so a counting pass on the
 * next few bits leaves buckets of a few records each, put in order by their first word (then
 * the whole id). `scratch`: arrays to reuse across calls.
 */
export function sortById(list: Uint32Array, words: (r: number) => Uint32Array, at: (r: number) => number, skip = 0, scratch = new SortScratch()): void {
  const n = list.length;
  let bits = 1;
  while (bits < 16 && 1 << bits < n) bits++;
  bits = Math.min(bits, 32 - skip);
  scratch.fit(n);
  const counts = scratch.counts.subarray(0, (1 << bits) + 1).fill(0);
  const { key, bucket, order, orderKey } = scratch;
  for (let i = 0; i < n; i++) {
    const w0 = be(words(list[i]!)[at(list[i]!)]!);
    key[i] = w0;
    const b = ((w0 << skip) >>> 0) >>> (32 - bits);
    bucket[i] = b;
    counts[b + 1]!++;
  }
  for (let t = 0; t < 1 << bits; t++) counts[t + 1]! += counts[t]!;
  const next = scratch.next;
  next.set(counts.subarray(0, 1 << bits));
  for (let i = 0; i < n; i++) {
    const to = next[bucket[i]!]!++;
    order[to] = list[i]!;
    orderKey[to] = key[i]!;
  }
  for (let t = 0; t < 1 << bits; t++) {
    const lo = counts[t]!;
    const hi = counts[t + 1]!;
    for (let i = lo + 1; i < hi; i++) {
      const r = order[i]!;
      const k = orderKey[i]!;
      let j = i - 1;
      while (j >= lo) {
        const kj = orderKey[j]!;
        if (kj < k) break;
        if (kj === k && compareIds(words(order[j]!), at(order[j]!), words(r), at(r)) <= 0) break;
        order[j + 1] = order[j]!;
        orderKey[j + 1] = kj;
        j--;
      }
      order[j + 1] = r;
      orderKey[j + 1] = k;
    }
  }
  list.set(order.subarray(0, n));
}

const WORDS = RECORD / 4;

/** Records a partition keeps before writing them out (256 partitions: 3 MiB in all; a write costs a system call, ~6 µs here). */
const PART_BUFFER = 256;

/** Calls `each` with every record to sort (its words from `o`, the id first), in one order each time it is called. */
export type RecordFeed = (each: (w: Uint32Array, o: number) => void) => void;

/**
 * The records `feed` gives, `out` in id order, records of one id in the order fed (the sort is
 * stable). Gathering records in id order from a large table read them at random, a cache and
 * TLB miss each (~0.5 µs here); instead they are dealt, in feed order, into 256 partitions by
 * their first byte, written to a scratch file through 3 MiB of buffers, and each partition (a
 * 256th: ~100 KiB at the default budget, 3 MiB for a load of 16 M records) is read back, sorted
 * in cache and handed out. `feed` is called twice (counting, then dealing); `begin` learns how
 * many records will come before the first does; `stride`: words a fed record has (those past
 * RECORD's are not kept, missing ones are zero).
 */
function sortThroughPartitions(feed: RecordFeed, stride: number, begin: (total: number) => void, out: (w: Uint32Array, o: number) => void): void {
  const sizes = new Uint32Array(256);
  let total = 0;
  feed((w, o) => {
    sizes[w[o]! & 0xff]!++;
    total++;
  });
  begin(total);
  // Partition p's first record: its place in the partition file.
  const start = new Float64Array(257);
  for (let p = 0; p < 256; p++) start[p + 1] = start[p]! + sizes[p]!;
  const fd = openScratch('chunk-index');
  try {
    const filled = new Float64Array(256);
    const pending = new Uint16Array(256);
    const bufs = Buffer.allocUnsafeSlow(256 * PART_BUFFER * RECORD);
    const bw = new Uint32Array(bufs.buffer, bufs.byteOffset, 256 * PART_BUFFER * WORDS);
    const flush = (p: number) => {
      const n = pending[p]!;
      if (n === 0) return;
      const from = p * PART_BUFFER * RECORD;
      writeAllSync(fd, bufs.subarray(from, from + n * RECORD), (start[p]! + filled[p]!) * RECORD, 'chunk index');
      filled[p]! += n;
      pending[p] = 0;
    };
    const copy = Math.min(stride, WORDS);
    feed((w, o) => {
      const p = w[o]! & 0xff;
      const to = (p * PART_BUFFER + pending[p]!) * WORDS;
      for (let k = 0; k < copy; k++) bw[to + k] = w[o + k]!;
      for (let k = copy; k < WORDS; k++) bw[to + k] = 0;
      if (++pending[p]! === PART_BUFFER) flush(p);
    });
    for (let p = 0; p < 256; p++) flush(p);
    let most = 0;
    for (let p = 0; p < 256; p++) most = Math.max(most, sizes[p]!);
    const part = Buffer.allocUnsafeSlow(Math.max(1, most) * RECORD);
    const pw = new Uint32Array(part.buffer, part.byteOffset, Math.max(1, most) * WORDS);
    const order = new Uint32Array(most);
    const scratch = new SortScratch();
    for (let p = 0; p < 256; p++) {
      const n = sizes[p]!;
      if (n === 0) continue;
      readAllSync(fd, part, n * RECORD, start[p]! * RECORD, 'chunk index');
      const list = order.subarray(0, n);
      for (let i = 0; i < n; i++) list[i] = i;
      sortById(list, () => pw, (i) => i * WORDS, 8, scratch);
      for (let i = 0; i < n; i++) out(pw, list[i]! * WORDS);
    }
  } finally {
    closeQuietly(fd);
  }
}

/**
 * A new run of the records `r` in [0, count) that `include` takes, each `stride` words of
 * `words(r)` from `at(r)` (the id first; words past the stride are zero). Their ids are
 * distinct.
 */
export function buildRun(count: number, stride: number, words: (r: number) => Uint32Array, at: (r: number) => number, include: (w: Uint32Array, o: number) => boolean): SortedRun {
  let writer: RunWriter | undefined;
  try {
    sortThroughPartitions((each) => {
      for (let r = 0; r < count; r++) {
        const w = words(r);
        const o = at(r);
        if (include(w, o)) each(w, o);
      }
    }, stride, (total) => { writer = new RunWriter(total); }, (w, o) => writer!.add(w, o));
    return writer!.finish();
  } catch (err) {
    writer?.abandon();
    throw err;
  }
}

/**
 * A run, without a Bloom filter, of the first record of each id among records [0, count) of
 * scratch file `fd` (RECORD bytes each; first: nearest the start), less the ids `older` holds;
 * `mark` may change a record as it goes in. For a large index load, which appends its records
 * unsorted and finds each chunk's first record here, in one pass, instead of looking every
 * record up in the runs made so far as it comes (runs that each keep a Bloom filter, ~1.75
 * bytes a chunk, while they exist). `older` (sorted, an index table) is read through once
 * beside the partitions, as they come out in id order.
 */
export function buildFirstRun(fd: number, count: number, older: SortedSource | undefined, mark: (w: Uint32Array, o: number) => void): SortedRun {
  const buf = Buffer.allocUnsafeSlow(STREAM_RECORDS * RECORD);
  const words = new Uint32Array(buf.buffer, buf.byteOffset, STREAM_RECORDS * WORDS);
  const feed: RecordFeed = (each) => {
    for (let at = 0; at < count; at += STREAM_RECORDS) {
      const n = Math.min(STREAM_RECORDS, count - at);
      readAllSync(fd, buf, n * RECORD, at * RECORD, 'chunk index');
      for (let i = 0; i < n; i++) each(words, i * WORDS);
    }
  };
  const writer = new RunWriter(count, { bloom: false });
  try {
    const olderHas = older ? sortedCursor(older) : () => false;
    const last = new Uint32Array(8);
    let any = false;
    sortThroughPartitions(feed, WORDS, () => undefined, (w, o) => {
      if (any && compareIds(last, 0, w, o) === 0) return;
      for (let k = 0; k < 8; k++) last[k] = w[o + k]!;
      any = true;
      if (olderHas(w, o)) return;
      mark(w, o);
      writer.add(w, o);
    });
    return writer.finish();
  } catch (err) {
    writer.abandon();
    throw err;
  }
}

/** Whether `source` holds the id at word `o` of `w`, asked for ids in ascending order: one pass through the source. */
function sortedCursor(source: SortedSource): (w: Uint32Array, o: number) => boolean {
  const it = source.batches();
  let head = it.next();
  let pos = 0;
  return (w, o) => {
    while (!head.done) {
      const c = compareIds(head.value.words, pos * WORDS, w, o);
      if (c >= 0) return c === 0;
      if (++pos === head.value.count) {
        head = it.next();
        pos = 0;
      }
    }
    return false;
  };
}

/**
 * Which block of a sorted file may hold an id: the first 8 bytes of every BLOCK-th id, as two
 * big-endian words (a run's in memory, an index table's read from its fence section).
 */
export class Fence {
  readonly #hi: Uint32Array;
  readonly #lo: Uint32Array;

  /** Room for `blocks` blocks. */
  constructor(blocks: number) {
    this.#hi = new Uint32Array(blocks);
    this.#lo = new Uint32Array(blocks);
  }

  get memoryBytes(): number {
    return this.#hi.byteLength * 2;
  }

  /** Block `b` starts with the id at word `o` of `w` (ids as records hold them). */
  setFromWords(b: number, w: Uint32Array, o: number): void {
    this.#hi[b] = be(w[o]!);
    this.#lo[b] = be(w[o + 1]!);
  }

  /** Block `b` starts with an id whose first 8 bytes are at `at` of `buf`. */
  setFromBytes(b: number, buf: Buffer, at: number): void {
    this.#hi[b] = buf.readUInt32BE(at);
    this.#lo[b] = buf.readUInt32BE(at + 4);
  }

  /**
   * The blocks of `count` records that may hold the id in `key`, first to last: the last block
   * whose first id's prefix is below the key's, and the blocks after it that start with the
   * same prefix.
   */
  blocksFor(key: Uint32Array, count: number): { first: number; last: number } {
    const hi = be(key[0]!);
    const lo = be(key[1]!);
    const blocks = Math.ceil(count / BLOCK);
    let a = 0;
    let b = blocks - 1;
    let first = 0;
    while (a <= b) {
      const m = (a + b) >>> 1;
      const fh = this.#hi[m]!;
      if (fh < hi || (fh === hi && this.#lo[m]! < lo)) {
        first = m;
        a = m + 1;
      } else b = m - 1;
    }
    let last = first;
    while (last + 1 < blocks && this.#hi[last + 1] === hi && this.#lo[last + 1] === lo) last++;
    return { first, last };
  }
}

/** Records per block of a sorted file (a run's or an index table's): what one lookup reads. */
export const BLOCK_RECORDS = BLOCK;

/**
 * The record among `n` sorted ones (RECORD bytes each, as words `w` from 0) whose id is the one
 * in `key`, copied to `out`; false when none is.
 */
export function findInBlock(w: Uint32Array, n: number, key: Uint32Array, out: Uint32Array): boolean {
  let x = 0;
  let y = n - 1;
  while (x <= y) {
    const m = (x + y) >>> 1;
    const c = compareIds(w, m * WORDS, key, 0);
    if (c === 0) {
      for (let k = 0; k < WORDS; k++) out[k] = w[m * WORDS + k]!;
      return true;
    }
    if (c < 0) x = m + 1;
    else y = m - 1;
  }
  return false;
}

/** What a run keeps in memory to find an id: the fence and the Bloom filter. Filled by RunWriter, asked by SortedRun. */
class RunKeys {
  readonly fence: Fence;
  readonly #bloom: Uint32Array;
  readonly #blocks: number;

  /** Room for `max` ids; `bloom` false: no filter (every lookup reads a block). */
  constructor(max: number, bloom: boolean) {
    this.fence = new Fence(Math.ceil(max / BLOCK));
    this.#blocks = bloom ? Math.max(1, Math.ceil((max * BLOOM_BITS_PER_ID) / 512)) : 0;
    this.#bloom = new Uint32Array(this.#blocks * BLOOM_BLOCK_WORDS);
  }

  get memoryBytes(): number {
    return this.fence.memoryBytes + this.#bloom.byteLength;
  }

  /** The id at word `o` of `w` is the run's record number `n`. */
  add(w: Uint32Array, o: number, n: number): void {
    if (n % BLOCK === 0) this.fence.setFromWords(n / BLOCK, w, o);
    if (this.#blocks === 0) return;
    const block = bloomBlock(w, o, this.#blocks);
    for (let k = 0; k < BLOOM_PROBES; k++) {
      const bit = bloomBit(w, o, k);
      this.#bloom[block + (bit >>> 5)]! |= 1 << (bit & 31);
    }
  }

  /** False when the filter says the id in `key` is not in the run (true: it may be). */
  mayHold(key: Uint32Array): boolean {
    if (this.#blocks === 0) return true;
    const block = bloomBlock(key, 0, this.#blocks);
    for (let k = 0; k < BLOOM_PROBES; k++) {
      const bit = bloomBit(key, 0, k);
      if ((this.#bloom[block + (bit >>> 5)]! & (1 << (bit & 31))) === 0) return false;
    }
    return true;
  }
}

/** Close `fd`, ignoring that it may be closed already. */
export function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // closed already
  }
}

/** Sorted records going to a new run: its file, fence and Bloom filter made as they come. */
export class RunWriter {
  readonly #fd: number;
  readonly #keys: RunKeys;
  readonly #buf = Buffer.allocUnsafeSlow(STREAM_RECORDS * RECORD);
  readonly #words = new Uint32Array(this.#buf.buffer, this.#buf.byteOffset, STREAM_RECORDS * WORDS);
  readonly #last = new Uint32Array(8);
  #inBuf = 0;
  #count = 0;
  readonly #max: number;

  /** At most `max` records will come; `bloom` false: the run keeps no Bloom filter (only one run, or few lookups of absent ids, expected). */
  constructor(max: number, opts: { bloom?: boolean } = {}) {
    this.#max = max;
    this.#fd = openScratch('chunk-index');
    this.#keys = new RunKeys(max, opts.bloom ?? true);
  }

  /** The record at word `o` of `w`; its id sorts after the last one added. */
  add(w: Uint32Array, o: number): void {
    if (this.#count >= this.#max) throw new HvError('ERR_INTERNAL', `sorted run: more than the ${this.#max} records announced`);
    if (this.#count > 0 && compareIds(this.#last, 0, w, o) >= 0) throw new HvError('ERR_INTERNAL', 'sorted run: ids out of order');
    const at = this.#inBuf * WORDS;
    const out = this.#words;
    for (let k = 0; k < WORDS; k++) out[at + k] = w[o + k]!;
    for (let k = 0; k < 8; k++) this.#last[k] = w[o + k]!;
    this.#keys.add(w, o, this.#count);
    this.#count++;
    if (++this.#inBuf === STREAM_RECORDS) this.#flush();
  }

  #flush(): void {
    if (this.#inBuf === 0) return;
    const bytes = this.#inBuf * RECORD;
    writeAllSync(this.#fd, this.#buf.subarray(0, bytes), (this.#count - this.#inBuf) * RECORD, 'chunk index');
    this.#inBuf = 0;
  }

  finish(): SortedRun {
    this.#flush();
    return new SortedRun(this.#fd, this.#count, this.#keys);
  }

  /** Give up: the file closes (and, unlinked already, is gone). */
  abandon(): void {
    closeQuietly(this.#fd);
  }
}

export class SortedRun implements SortedSource {
  readonly count: number;
  readonly #fd: number;
  readonly #keys: RunKeys;
  readonly #block = Buffer.allocUnsafeSlow(BLOCK * RECORD);
  readonly #blockWords = new Uint32Array(this.#block.buffer, this.#block.byteOffset, BLOCK * WORDS);
  #closed = false;

  constructor(fd: number, count: number, keys: RunKeys) {
    this.#fd = fd;
    this.count = count;
    this.#keys = keys;
  }

  /** Memory this run holds (fence, filter, block buffer), for tests and reports. */
  get memoryBytes(): number {
    return this.#keys.memoryBytes + this.#block.length;
  }

  /**
   * The record of the id in `key` (its 8 words), copied to `out` (12 words); false when the
   * run does not hold it.
   */
  find(key: Uint32Array, out: Uint32Array): boolean {
    if (this.#closed) throw new HvError('ERR_INTERNAL', 'sorted run: looked up after close');
    if (!this.#keys.mayHold(key)) return false;
    const { first, last } = this.#keys.fence.blocksFor(key, this.count);
    for (let blk = first; blk <= last; blk++) {
      const n = Math.min(BLOCK, this.count - blk * BLOCK);
      readAllSync(this.#fd, this.#block, n * RECORD, blk * BLOCK * RECORD, 'chunk index');
      if (findInBlock(this.#blockWords, n, key, out)) return true;
    }
    return false;
  }

  /** Every record in id order, in batches of many (each batch's memory reused once the next is asked for). */
  *batches(): Generator<{ buf: Buffer; words: Uint32Array; count: number }> {
    const buf = Buffer.allocUnsafeSlow(STREAM_RECORDS * RECORD);
    const words = new Uint32Array(buf.buffer, buf.byteOffset, STREAM_RECORDS * WORDS);
    for (let at = 0; at < this.count; at += STREAM_RECORDS) {
      const count = Math.min(STREAM_RECORDS, this.count - at);
      readAllSync(this.#fd, buf, count * RECORD, at * RECORD, 'chunk index');
      yield { buf, words, count };
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    closeQuietly(this.#fd);
  }
}

/** Sorted records in batches (a run, an index table): each batch's memory reused once the next is asked for. */
export interface SortedSource {
  batches(): Generator<{ words: Uint32Array; count: number }>;
}

/**
 * Every record of `sources`, in id order, those `drop` refuses left out, in batches of up to
 * STREAM_RECORDS (each reused once the next is asked for). An id two sources hold (never two
 * visible copies: one was dropped) keeps the earlier source's record, as the first place a
 * chunk was found stays where it is read from.
 */
export function* mergeSorted<S extends SortedSource>(sources: readonly S[], drop: (words: Uint32Array, o: number, from: S) => boolean): Generator<{ words: Uint32Array; count: number }> {
  const outBuf = Buffer.allocUnsafeSlow(STREAM_RECORDS * RECORD);
  const outWords = new Uint32Array(outBuf.buffer, outBuf.byteOffset, STREAM_RECORDS * WORDS);
  let inOut = 0;
  const put = (w: Uint32Array, o: number) => {
    const at = inOut * WORDS;
    for (let k = 0; k < WORDS; k++) outWords[at + k] = w[o + k]!;
    inOut++;
  };
  const its = sources.map((r) => r.batches());
  const heads = its.map((it) => it.next());
  const pos = sources.map(() => 0);
  for (;;) {
    // The smallest head, the earliest source on a tie (sources are few: a scan, not a heap).
    let min = -1;
    for (let i = 0; i < sources.length; i++) {
      const h = heads[i]!;
      if (h.done) continue;
      if (min < 0) { min = i; continue; }
      const m = heads[min]!.value!;
      if (compareIds(h.value.words, pos[i]! * WORDS, m.words, pos[min]! * WORDS) < 0) min = i;
    }
    if (min < 0) break;
    const v = heads[min]!.value!;
    const o = pos[min]! * WORDS;
    let kept = false;
    if (!drop(v.words, o, sources[min]!)) {
      put(v.words, o);
      kept = true;
    }
    // The same id in a later source: its record goes too (dropped, or a second copy).
    for (let i = min + 1; i < sources.length; i++) {
      const h = heads[i]!;
      if (h.done || compareIds(h.value.words, pos[i]! * WORDS, v.words, o) !== 0) continue;
      if (!drop(h.value.words, pos[i]! * WORDS, sources[i]!) && !kept) {
        put(h.value.words, pos[i]! * WORDS);
        kept = true;
      }
      if (++pos[i]! === h.value.count) { heads[i] = its[i]!.next(); pos[i] = 0; }
    }
    if (++pos[min]! === v.count) { heads[min] = its[min]!.next(); pos[min] = 0; }
    if (inOut === STREAM_RECORDS) {
      yield { words: outWords, count: inOut };
      inOut = 0;
    }
  }
  if (inOut > 0) yield { words: outWords, count: inOut };
}

/** One run of every record of `runs`, in id order, those `drop` refuses left out (mergeSorted). */
export function mergeRuns(runs: readonly SortedRun[], drop: (words: Uint32Array, o: number, from: SortedRun) => boolean): SortedRun {
  const out = new RunWriter(runs.reduce((a, r) => a + r.count, 0));
  try {
    for (const { words, count } of mergeSorted(runs, drop)) {
      for (let i = 0; i < count; i++) out.add(words, i * WORDS);
    }
    return out.finish();
  } catch (err) {
    out.abandon();
    throw err;
  }
}

/** Runs a lookup may have to ask (a Bloom filter each, ~10 ns a probe) before they merge into one. */
const MAX_RUNS = 16;

/**
 * The runs of one index or id set, oldest first: past MAX_RUNS they all merge into one (each
 * record rewritten once per MAX_RUNS spills, a lookup of an absent id asking at most MAX_RUNS
 * filters). Closed with its owner, or by a FinalizationRegistry holding it, not the owner.
 */
export class RunList {
  runs: SortedRun[] = [];

  /**
   * `run` joins the list; records `drop` refuses are left out of a merge. An empty run (a
   * chunk index's spill whose records all duplicate ones located earlier) holds nothing to ask:
   * it is closed instead, so it neither costs lookups a filter nor counts toward a merge.
   */
  add(run: SortedRun, drop: (w: Uint32Array, o: number, from: SortedRun) => boolean = () => false): void {
    if (run.count === 0) {
      run.close();
      return;
    }
    this.runs.push(run);
    if (this.runs.length <= MAX_RUNS) return;
    const merged = mergeRuns(this.runs, drop);
    for (const old of this.runs) old.close();
    this.runs = [merged];
  }

  /** Every run's files close; lookups that need them fail from now on. */
  close(): void {
    for (const run of this.runs) run.close();
  }
}
