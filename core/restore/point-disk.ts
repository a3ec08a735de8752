// A restore point's disk as a read-only Disk (core/disk/disk.ts): any byte range, its chunks
// read from the repository when a read first needs them. This is the random-access reader
// the roadmap's instant recovery (a point served as a live disk) and file-level restore (file
// systems read through a Disk) stand on; `hvbackup dump` streams a disk through it. A whole
// disk restore does not go through it: restoreDisk (disk-restore.ts) streams the chunk list in
// order into its writer, with the same parts underneath (loadWindow, ranged readChunks).
//
// Memory stays bounded whatever the disk size: at most WINDOWS_KEPT windows of the chunk list
// (a segment each), and decoded chunks up to `cacheBytes`, least recently used out first. A
// chunk that a read is copying from is pinned until that read is done, so reads side by side
// (a client's queue of requests) never see its memory go back to the pool under them.

import { HvError, isHvError, throwIfAborted, wrapError } from '../errors.ts';
import { Disk, type DiskExtent, type DiskGeometry } from '../disk/disk.ts';
import { PackReaders, type Repository } from '../repo/index.ts';
import { diskSliceCount, diskWindows, loadWindow, windowSlices, type SliceWindow } from '../repo/manifest-chunks.ts';
import { pointDisk } from '../repo/manifest.ts';
import type { DiskManifest, RestorePointManifest, SliceRef, SplitSlice } from '../repo/manifest-types.ts';
import { isSplit, PIECE_SIZE, sliceChunkIds } from '../repo/manifest-segments.ts';

/**
 * Decoded chunk bytes a PointDisk keeps for later reads, by default. A whole 2 GiB disk read in
 * order took as long with 16 MiB as with 64 (2.7–2.8 s), and the process's peak RSS was
 * 214 MiB against 297: a caller that reads at random (a file system's metadata) may ask for more.
 */
export const POINT_DISK_CACHE_BYTES = 16 * 1024 * 1024;
/** Bytes a sequential reader is read ahead of, by default: several ranged reads in flight, as restore has. */
export const POINT_DISK_READ_AHEAD = 8 * 1024 * 1024;
/**
 * Bytes of the disk one read handles at a time (its chunks pinned together): a read of a
 * gigabyte pins a group's chunks at a time, not the gigabyte's.
 */
const GROUP_BYTES = 8 * 1024 * 1024;
/** Windows (segments of the chunk list) kept decoded: the one being read and its neighbour. */
const WINDOWS_KEPT = 2;

export interface PointDiskOptions {
  /** Decoded chunk bytes kept (default POINT_DISK_CACHE_BYTES); reads in progress may pin more. */
  cacheBytes?: number;
  /** Bytes fetched ahead of a read that continues the one before it (default POINT_DISK_READ_AHEAD; 0: none). */
  readAheadBytes?: number;
}

interface Cached {
  buf: Buffer;
  /** Reads copying from it now: it is not evicted (its memory not recycled) while any is. */
  pins: number;
}

interface Loading {
  promise: Promise<Cached>;
  resolve: (c: Cached) => void;
  reject: (err: unknown) => void;
  /** Reads waiting for it: the entry comes to them pinned once per read. */
  claims: number;
}

export class PointDisk extends Disk {
  readonly #repo: Repository;
  readonly #d: DiskManifest;
  readonly #pointId: string;
  readonly #geometry: DiskGeometry;
  readonly #cacheMax: number;
  readonly #readAhead: number;
  /** Stops fetches (read-ahead included) at close. */
  readonly #abort = new AbortController();
  readonly #windows = new Map<number, Promise<SliceWindow>>();
  /** Decoded chunks by id, least recently used first (a hit moves its entry to the end). */
  readonly #cache = new Map<string, Cached>();
  #cachedBytes = 0;
  readonly #loading = new Map<string, Loading>();
  readonly #fetches = new Set<Promise<void>>();
  /**
   * Packs stay open from one fetch to the next: each fetch is a few MiB, and opening and
   * closing its packs every time took a sixth of a whole-disk read's main-thread time.
   */
  readonly #readers: PackReaders;
  /** Where the last read ended: a read starting there is sequential and reads ahead. */
  #nextOffset = 0;
  #readingAhead = false;

  private constructor(repo: Repository, m: RestorePointManifest, d: DiskManifest, opts: PointDiskOptions) {
    super(`restore point ${m.id.slice(0, 12)} disk ${d.fileName}`, true);
    this.#repo = repo;
    this.#readers = new PackReaders(repo.backend);
    this.#d = d;
    this.#pointId = m.id;
    this.#geometry = { size: d.virtualSize, logicalSectorSize: d.logicalSectorSize, physicalSectorSize: d.physicalSectorSize };
    this.#cacheMax = opts.cacheBytes ?? POINT_DISK_CACHE_BYTES;
    this.#readAhead = Math.max(0, Math.min(opts.readAheadBytes ?? POINT_DISK_READ_AHEAD, this.#cacheMax / 2));
    if (!(this.#cacheMax >= 0)) throw new HvError('ERR_INVALID_ARGUMENT', `cacheBytes must be 0 or more, not ${opts.cacheBytes}`);
  }

  /**
   * Disk `disk` (key or file name; may be left out for a one-disk point) of restore point `m`.
   * The repository must stay open until the disk is closed.
   */
  static async open(repo: Repository, m: RestorePointManifest, disk?: string, opts: PointDiskOptions = {}): Promise<PointDisk> {
    const d = pointDisk(m, disk);
    return new PointDisk(repo, m, d, opts);
  }

  get geometry(): DiskGeometry {
    return this.#geometry;
  }

  /** The disk's entry in its manifest. */
  get manifest(): DiskManifest {
    return this.#d;
  }

  /** Decoded chunk bytes held now (cached, or pinned by reads in progress). */
  get cachedBytes(): number {
    return this.#cachedBytes;
  }

  protected async _read(buffer: Buffer, offset: number): Promise<void> {
    const sequential = offset === this.#nextOffset;
    this.#nextOffset = offset + buffer.length;
    const cs = this.#d.chunkSize;
    const group = Math.max(cs, Math.floor(Math.min(GROUP_BYTES, Math.max(cs, this.#cacheMax / 2)) / cs) * cs);
    try {
      for (let at = offset; at < offset + buffer.length;) {
        // Whole slices per group, the first and last cut to the read.
        const end = Math.min(offset + buffer.length, (Math.floor(at / cs) * cs) + group);
        await this.#readGroup(buffer.subarray(at - offset, end - offset), at);
        at = end;
      }
    } catch (err) {
      if (isHvError(err, 'ERR_CANCELLED')) throw err;
      throw wrapError(err, `read ${buffer.length} bytes at ${offset} of ${this.path}`, this.path);
    }
    if (sequential && this.#readAhead > 0) this.#startReadAhead(offset + buffer.length);
  }

  /** Fill `out` with the bytes at `offset`, a range within one group of slices. */
  async #readGroup(out: Buffer, offset: number): Promise<void> {
    const cs = this.#d.chunkSize;
    const first = Math.floor(offset / cs);
    const last = Math.floor((offset + out.length - 1) / cs);
    const refs = await this.#slices(first, last);
    const ids: string[] = [];
    const seen = new Set<string>();
    for (const r of refs) for (const id of sliceChunkIds(r)) if (!seen.has(id)) { seen.add(id); ids.push(id); }
    const chunks = await this.#acquire(ids);
    try {
      for (let i = first; i <= last; i++) {
        const start = i * cs;
        const len = Math.min(cs, this.#d.virtualSize - start);
        const a = Math.max(offset, start);
        const b = Math.min(offset + out.length, start + len);
        const r = refs[i - first]!;
        if (r === null) out.fill(0, a - offset, b - offset);
        else if (typeof r === 'string') {
          const data = chunks.get(r)!.buf;
          if (data.length !== len) throw new HvError('ERR_CORRUPT', `chunk ${r} has ${data.length} bytes, slice ${i} needs ${len}`, { target: `<chunks/${r}>` });
          data.copy(out, a - offset, a - start, b - start);
        } else {
          copySplit(r, chunks, out, offset, start, len, a, b, i);
        }
      }
    } finally {
      for (const c of chunks.values()) this.#unpin(c);
    }
  }

  /** Slice refs first..last, loading their windows (at most WINDOWS_KEPT kept). */
  async #slices(first: number, last: number): Promise<SliceRef[]> {
    const per = windowSlices(this.#d);
    const out: SliceRef[] = [];
    for (let k = Math.floor(first / per); k <= Math.floor(last / per); k++) {
      const w = await this.#window(k);
      const from = Math.max(first, w.first);
      const to = Math.min(last, w.first + w.refs.length - 1);
      for (let i = from; i <= to; i++) out.push(w.refs[i - w.first]!);
    }
    if (out.length !== last - first + 1) throw new HvError('ERR_CORRUPT', `restore point ${this.#pointId.slice(0, 12)} disk ${this.#d.key}: its chunk list covers fewer slices than its size`, { target: this.#pointId });
    return out;
  }

  #window(k: number): Promise<SliceWindow> {
    let w = this.#windows.get(k);
    if (w) {
      this.#windows.delete(k);
      this.#windows.set(k, w);
      return w;
    }
    w = loadWindow(this.#repo, this.#pointId, this.#d, k, this.#abort.signal);
    // A window that did not load is asked for again by the next read (and fails with it, or loads).
    w.catch(() => { if (this.#windows.get(k) === w) this.#windows.delete(k); });
    this.#windows.set(k, w);
    if (this.#windows.size > WINDOWS_KEPT) this.#windows.delete(this.#windows.keys().next().value!);
    return w;
  }

  /** The chunks `ids`, each pinned once for the caller (who unpins them). */
  async #acquire(ids: string[]): Promise<Map<string, Cached>> {
    const got = new Map<string, Cached>();
    const waits: Promise<void>[] = [];
    const missing: string[] = [];
    for (const id of ids) {
      const c = this.#cache.get(id);
      if (c) {
        c.pins++;
        this.#cache.delete(id);
        this.#cache.set(id, c);
        got.set(id, c);
        continue;
      }
      let l = this.#loading.get(id);
      if (!l) {
        l = this.#newLoading(id);
        missing.push(id);
      }
      l.claims++;
      waits.push(l.promise.then((e) => { got.set(id, e); }));
    }
    if (missing.length > 0) this.#fetch(missing);
    const settled = await Promise.allSettled(waits);
    const failed = settled.find((s) => s.status === 'rejected');
    if (failed) {
      for (const c of got.values()) this.#unpin(c);
      throw failed.reason;
    }
    throwIfAborted(this.#abort.signal);
    return got;
  }

  #newLoading(id: string): Loading {
    let resolve!: (c: Cached) => void;
    let reject!: (err: unknown) => void;
    const promise = new Promise<Cached>((res, rej) => { resolve = res; reject = rej; });
    promise.catch(() => {}); // a read-ahead's load nobody waits for may fail
    const l: Loading = { promise, resolve, reject, claims: 0 };
    this.#loading.set(id, l);
    return l;
  }

  /** Read `ids` (each now in #loading) in one ranged pass, caching each as it comes. */
  #fetch(ids: string[]): void {
    const run = (async () => {
      let n = 0;
      try {
        for await (const { id, data } of this.#repo.readChunks(ids, { signal: this.#abort.signal, readers: this.#readers })) {
          const l = this.#loading.get(id)!;
          this.#loading.delete(id);
          n++;
          // A raw chunk may be a view of a whole ranged read: cached alone, not with its range.
          const c: Cached = { buf: this.#repo.pool.own(data), pins: l.claims };
          if (this.closed) {
            this.#repo.pool.release(c.buf);
            l.reject(new HvError('ERR_CANCELLED', `${this.path} is closed`));
            continue;
          }
          this.#cache.set(id, c);
          this.#cachedBytes += c.buf.length;
          this.#trim();
          l.resolve(c);
        }
      } catch (err) {
        for (const id of ids.slice(n)) {
          const l = this.#loading.get(id);
          this.#loading.delete(id);
          l?.reject(err);
        }
      }
    })();
    this.#fetches.add(run);
    void run.finally(() => this.#fetches.delete(run));
  }

  #unpin(c: Cached): void {
    c.pins--;
    if (this.closed && c.pins === 0) {
      this.#cachedBytes -= c.buf.length;
      this.#repo.pool.release(c.buf);
      return;
    }
    if (this.#cachedBytes > this.#cacheMax) this.#trim();
  }

  /** Evict least recently used chunks nobody is reading until the cache fits again. */
  #trim(): void {
    for (const [id, c] of this.#cache) {
      if (this.#cachedBytes <= this.#cacheMax) return;
      if (c.pins > 0) continue;
      this.#cache.delete(id);
      this.#cachedBytes -= c.buf.length;
      this.#repo.pool.release(c.buf);
    }
  }

  /** Fetch the chunks of the readAhead bytes from `offset` not cached or coming yet; one read-ahead at a time. */
  #startReadAhead(offset: number): void {
    if (this.#readingAhead || offset >= this.#d.virtualSize) return;
    this.#readingAhead = true;
    const cs = this.#d.chunkSize;
    const first = Math.floor(offset / cs);
    const last = Math.min(diskSliceCount(this.#d) - 1, Math.floor((offset + this.#readAhead - 1) / cs));
    void this.#slices(first, last).then((refs) => {
      if (this.closed) return;
      const ids: string[] = [];
      for (const r of refs) for (const id of sliceChunkIds(r)) if (!this.#cache.has(id) && !this.#loading.has(id)) { this.#newLoading(id); ids.push(id); }
      if (ids.length > 0) this.#fetch(ids);
    }, () => {}).finally(() => { this.#readingAhead = false; });
  }

  protected async _extents(): Promise<DiskExtent[]> {
    const out: DiskExtent[] = [];
    const add = (offset: number, length: number, kind: 'data' | 'zero') => {
      const prev = out[out.length - 1];
      if (prev && prev.kind === kind) prev.length += length;
      else out.push({ offset, length, kind });
    };
    const cs = this.#d.chunkSize;
    for await (const w of diskWindows(this.#repo, this.#pointId, this.#d, this.#abort.signal)) {
      w.refs.forEach((r, j) => {
        const start = (w.first + j) * cs;
        const len = Math.min(cs, this.#d.virtualSize - start);
        if (!isSplit(r)) return add(start, len, r === null ? 'zero' : 'data');
        for (let q = 0; q * PIECE_SIZE < len; q++) add(start + q * PIECE_SIZE, Math.min(PIECE_SIZE, len - q * PIECE_SIZE), r.pieces[q] ? 'data' : 'zero');
      });
    }
    return out;
  }

  protected async _write(): Promise<void> {
    throw new HvError('ERR_UNSUPPORTED', `${this.path} is a restore point: it cannot be written`, { target: this.path });
  }

  protected async _zero(): Promise<void> {
    return this._write();
  }

  protected async _flush(): Promise<void> {}

  protected async _close(): Promise<void> {
    this.#abort.abort();
    await Promise.allSettled([...this.#fetches]);
    await this.#readers.close();
    for (const [id, c] of this.#cache) {
      if (c.pins > 0) continue; // released by its read's unpin
      this.#cache.delete(id);
      this.#cachedBytes -= c.buf.length;
      this.#repo.pool.release(c.buf);
    }
    this.#windows.clear();
  }
}

/**
 * Copy bytes [a, b) of split slice `r` (slice `i`, at `start`, `len` bytes) into `out` (which
 * holds the disk from `offset`): zero pieces as zeros, the others from their chunks. A piece
 * reaching past its chunk's end is ERR_CORRUPT, as restore's assembleSlice has it.
 */
function copySplit(r: SplitSlice, chunks: Map<string, Cached>, out: Buffer, offset: number, start: number, len: number, a: number, b: number, i: number): void {
  for (let q = Math.floor((a - start) / PIECE_SIZE); q * PIECE_SIZE < b - start; q++) {
    const pStart = start + q * PIECE_SIZE;
    const pLen = Math.min(PIECE_SIZE, len - q * PIECE_SIZE);
    const from = Math.max(a, pStart);
    const to = Math.min(b, pStart + pLen);
    const p = q < r.pieces.length ? r.pieces[q] : null;
    if (!p) {
      out.fill(0, from - offset, to - offset);
      continue;
    }
    const data = chunks.get(p.id)!.buf;
    if (p.offset + pLen > data.length) throw new HvError('ERR_CORRUPT', `slice ${i}: piece ${q} takes bytes ${p.offset}..${p.offset + pLen} of chunk ${p.id}, which has ${data.length}`, { target: `<chunks/${p.id}>` });
    data.copy(out, from - offset, p.offset + (from - pStart), p.offset + (to - pStart));
  }
}
