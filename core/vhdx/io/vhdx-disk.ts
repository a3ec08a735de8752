// A fixed, dynamic or differencing VHDX as a Disk. Reads coalesce contiguous runs into
// large preads; writes allocate whole blocks at the end of the file and commit all BAT
// and sector-bitmap changes of one call in one log transaction.
import type { ByteRange, DiskExtent, DiskGeometry } from '../../disk/disk.ts';
import { Disk } from '../../disk/disk.ts';
import { HvError } from '../../errors.ts';
import { payloadEntryIndex, readBatEntry, sectorBitmapEntryIndex, writeBatEntry, type BatEntry } from '../format/bat.ts';
import {
  LOG_SECTOR_SIZE, MiB, PAYLOAD_BLOCK_FULLY_PRESENT, PAYLOAD_BLOCK_NOT_PRESENT, PAYLOAD_BLOCK_PARTIALLY_PRESENT,
  PAYLOAD_BLOCK_ZERO, SB_BLOCK_PRESENT, SECTOR_BITMAP_BLOCK_SIZE, SECTORS_PER_CHUNK,
} from '../format/constants.ts';
import { bracedGuid } from '../format/guid.ts';
import type { VhdxInfo } from '../index.ts';
import { bitmapFileOffset, layerRanges, planRead, type LayerRange } from './layout.ts';
import type { VhdxFile } from './vhdx-file.ts';

/** Writes larger than this are split so one log entry always fits the 1 MiB log. */
const MAX_WRITE = 256 * MiB;
const ZERO_CHUNK = 4 * MiB;
/** Read-only children keep at most this many 1 MiB sector bitmaps cached. */
const MAX_CACHED_BITMAPS = 64;

interface PlannedWrite { fOff: number; bufOff: number; len: number }

export class VhdxDisk extends Disk {
  readonly file: VhdxFile;
  readonly parent: Disk | undefined;
  readonly parentInfo: VhdxInfo['parent'];
  #bitmaps = new Map<number, Buffer>();
  #allocEnd: number;
  /** Writes and zeroes run one at a time: allocation and the log are not re-entrant. */
  #writeChain: Promise<unknown> = Promise.resolve();
  /**
   * writeAllocated() calls in flight. They change no metadata, so they run beside each other;
   * every serialised operation, flush and close wait for those started before them.
   */
  #inPlace = new Set<Promise<void>>();

  constructor(file: VhdxFile, parent: Disk | undefined, parentInfo: VhdxInfo['parent']) {
    super(file.path, !file.writable);
    this.file = file;
    this.parent = parent;
    this.parentInfo = parentInfo;
    this.#allocEnd = Math.ceil(file.fileSize / MiB) * MiB;
  }

  /**
   * Load the sector bitmaps (1 MiB per 2^23 sectors) of chunks [first, last] on demand.
   * A read-only disk keeps the most recently used few; a writable one keeps every
   * bitmap it loaded, since its in-memory copies are what the next transaction logs.
   */
  async #ensureBitmaps(first: number, last: number): Promise<void> {
    const g = this.file.geometry;
    if (!g.hasParent) return;
    for (let c = first; c <= Math.min(last, g.sectorBitmapBlocks - 1); c++) {
      const cached = this.#bitmaps.get(c);
      if (cached) {
        this.#bitmaps.delete(c);
        this.#bitmaps.set(c, cached);
        continue;
      }
      const off = bitmapFileOffset(this.file.bat, g, c);
      if (off === undefined) continue;
      const bm = await this.file.readMeta(off, SECTOR_BITMAP_BLOCK_SIZE);
      if (this.#bitmaps.has(c)) continue;
      this.#bitmaps.set(c, bm);
      if (this.readOnly && this.#bitmaps.size > MAX_CACHED_BITMAPS) this.#bitmaps.delete(this.#bitmaps.keys().next().value!);
    }
  }

  #chunksOf(offset: number, length: number): [number, number] {
    const per = SECTORS_PER_CHUNK * this.file.geometry.logicalSectorSize;
    return [Math.floor(offset / per), Math.floor((offset + Math.max(length, 1) - 1) / per)];
  }

  get geometry(): DiskGeometry {
    const m = this.file.metadata;
    return { size: m.virtualDiskSize, logicalSectorSize: m.logicalSectorSize, physicalSectorSize: m.physicalSectorSize };
  }

  get info(): VhdxInfo {
    const f = this.file, m = f.metadata, g = f.geometry;
    let allocated = 0;
    for (let b = 0; b < g.payloadBlocks; b++) {
      const s = readBatEntry(f.bat, payloadEntryIndex(g, b)).state;
      if (s === PAYLOAD_BLOCK_FULLY_PRESENT || s === PAYLOAD_BLOCK_PARTIALLY_PRESENT) allocated += g.blockSize;
    }
    const type = m.fileParameters.hasParent ? 'differencing' : m.fileParameters.leaveBlockAllocated ? 'fixed' : 'dynamic';
    return {
      path: f.path, type, virtualSize: m.virtualDiskSize, blockSize: g.blockSize,
      logicalSectorSize: m.logicalSectorSize, physicalSectorSize: m.physicalSectorSize,
      dataWriteGuid: bracedGuid(f.header.dataWriteGuid), fileWriteGuid: bracedGuid(f.header.fileWriteGuid),
      page83Id: bracedGuid(m.page83), allocatedBytes: allocated, fileSize: f.fileSize, logPending: f.logPending,
      ...(this.parentInfo ? { parent: this.parentInfo } : {}),
    };
  }

  protected async _read(buffer: Buffer, offset: number): Promise<void> {
    const g = this.file.geometry;
    await this.#ensureBitmaps(...this.#chunksOf(offset, buffer.length));
    const segs = planRead(this.file.bat, g, this.parent !== undefined, (c) => this.#bitmaps.get(c), offset, buffer.length);
    for (const s of segs) {
      const bufOff = s.vOff - offset;
      if (s.src === 'file') await this.file.readPayload(buffer, bufOff, s.len, s.fOff);
      else if (s.src === 'parent') await this.parent!.read(buffer.subarray(bufOff, bufOff + s.len), s.vOff);
      else buffer.fill(0, bufOff, bufOff + s.len);
    }
  }

  #serialised<T>(fn: () => Promise<T>): Promise<T> {
    const drain = () => this.#drainInPlace();
    const run = this.#writeChain.then(drain, drain).then(fn);
    this.#writeChain = run.catch(() => {});
    return run;
  }

  async #drainInPlace(): Promise<void> {
    while (this.#inPlace.size > 0) await Promise.allSettled([...this.#inPlace]);
  }

  protected override _writeAllocated(buffer: Buffer, offset: number): Promise<void> {
    // A child's partial sectors and bitmaps need the serialised path.
    if (this.parent || this.file.geometry.hasParent) return this._write(buffer, offset);
    const p = this.#writeInPlace(buffer, offset);
    this.#inPlace.add(p);
    const done = () => { this.#inPlace.delete(p); };
    p.then(done, done);
    return p;
  }

  /**
   * Payload writes only, where every block the range touches is allocated (checked first). For
   * a disk without a parent, the read plan maps exactly those blocks to the file, joined where
   * the file runs on: the places such a write goes.
   */
  async #writeInPlace(buffer: Buffer, offset: number): Promise<void> {
    const f = this.file, g = f.geometry;
    const segs = planRead(f.bat, g, false, () => undefined, offset, buffer.length);
    const unallocated = segs.find((x) => x.src !== 'file');
    if (unallocated) {
      throw new HvError('ERR_INVALID_ARGUMENT', `write of ${buffer.length} bytes at ${offset} in place: block ${Math.floor(unallocated.vOff / g.blockSize)} of ${this.path} is not allocated`, { target: this.path });
    }
    await f.beginDataWrite();
    for (const x of segs) await f.writePayload(buffer.subarray(x.vOff - offset, x.vOff - offset + x.len), x.fOff);
  }

  protected _write(buffer: Buffer, offset: number): Promise<void> {
    return this.#serialised(() => this.#write(buffer, offset));
  }

  /**
   * Allocate, in one transaction, every not yet allocated block that `ranges` touch, so
   * that later writes there go in place with no log transaction each. What the disk reads
   * does not change: a new block lies in the sparse extension of the file and reads as
   * zeros, like the ZERO/NOT_PRESENT block it replaces. A writer that knows beforehand
   * where its data goes (restore, from the manifest) pays for one BAT update instead of
   * one per write call. Not for a child, whose unallocated blocks read from the parent.
   */
  preallocate(ranges: ByteRange[]): Promise<void> {
    if (this.readOnly || this.closed) throw new HvError('ERR_INVALID_ARGUMENT', `preallocate: ${this.path} is ${this.closed ? 'closed' : 'open read-only'}`, { target: this.path });
    if (this.parent || this.file.geometry.hasParent) throw new HvError('ERR_UNSUPPORTED', `preallocate: ${this.path} is a differencing disk (its unallocated blocks read from the parent)`, { target: this.path });
    return this.#serialised(() => this.#preallocate(ranges));
  }

  async #preallocate(ranges: ByteRange[]): Promise<void> {
    const f = this.file, g = f.geometry;
    const changes = new Map<number, BatEntry>();
    for (const r of ranges) {
      if (r.length <= 0) continue;
      for (let b = Math.floor(r.offset / g.blockSize); b * g.blockSize < r.offset + r.length && b < g.payloadBlocks; b++) {
        const idx = payloadEntryIndex(g, b);
        const state = readBatEntry(f.bat, idx).state;
        if (changes.has(idx) || state === PAYLOAD_BLOCK_FULLY_PRESENT || state === PAYLOAD_BLOCK_PARTIALLY_PRESENT) continue;
        changes.set(idx, { state: PAYLOAD_BLOCK_FULLY_PRESENT, fileOffset: this.#allocate(g.blockSize) });
      }
    }
    if (changes.size === 0) return;
    await f.beginDataWrite();
    await f.ensureSize(this.#allocEnd);
    const pages = new Map<number, Buffer>();
    this.#applyBat(changes, pages);
    await f.commitPages(pages);
  }

  protected _zero(offset: number, length: number): Promise<void> {
    return this.#serialised(() => this.#zero(offset, length));
  }

  async #write(buffer: Buffer, offset: number): Promise<void> {
    const lss = this.file.metadata.logicalSectorSize;
    if (this.parent && (offset % lss || buffer.length % lss)) {
      // Sector bitmaps are per sector, so a child writes whole sectors: fill the edges from below.
      const a = Math.floor(offset / lss) * lss, e = Math.min(this.size, Math.ceil((offset + buffer.length) / lss) * lss);
      const whole = Buffer.alloc(e - a);
      await this._read(whole, a);
      buffer.copy(whole, offset - a);
      buffer = whole;
      offset = a;
    }
    await this.file.beginDataWrite();
    for (let done = 0; done < buffer.length; done += MAX_WRITE) {
      await this.#writePiece(buffer.subarray(done, Math.min(buffer.length, done + MAX_WRITE)), offset + done);
    }
  }

  async #writePiece(buffer: Buffer, offset: number): Promise<void> {
    const f = this.file, g = f.geometry;
    await this.#ensureBitmaps(...this.#chunksOf(offset, buffer.length));
    const writes: PlannedWrite[] = [];
    const batChanges = new Map<number, BatEntry>();
    const sbRanges: ByteRange[] = [];
    const end = offset + buffer.length;
    for (let b = Math.floor(offset / g.blockSize); b * g.blockSize < end; b++) {
      const bStart = b * g.blockSize, bEnd = Math.min(g.virtualSize, bStart + g.blockSize);
      const s = Math.max(offset, bStart), e = Math.min(end, bEnd);
      const full = s === bStart && e === bEnd;
      const idx = payloadEntryIndex(g, b);
      const entry = readBatEntry(f.bat, idx);
      let fileOffset = entry.fileOffset;
      if (entry.state === PAYLOAD_BLOCK_FULLY_PRESENT || (entry.state === PAYLOAD_BLOCK_PARTIALLY_PRESENT && !g.hasParent)) {
        // written in place
      } else if (entry.state === PAYLOAD_BLOCK_PARTIALLY_PRESENT) {
        if (full) batChanges.set(idx, { state: PAYLOAD_BLOCK_FULLY_PRESENT, fileOffset });
        else sbRanges.push({ offset: s, length: e - s });
      } else {
        fileOffset = this.#allocate(g.blockSize);
        // Only a child over NOT_PRESENT keeps the rest of the block in the parent; a new
        // block is zero-filled, which is what ZERO/UNDEFINED/UNMAPPED and no parent read as.
        const partialOverParent = g.hasParent && !full && entry.state === PAYLOAD_BLOCK_NOT_PRESENT;
        batChanges.set(idx, { state: partialOverParent ? PAYLOAD_BLOCK_PARTIALLY_PRESENT : PAYLOAD_BLOCK_FULLY_PRESENT, fileOffset });
        if (partialOverParent) sbRanges.push({ offset: s, length: e - s });
      }
      const w = { fOff: fileOffset + (s - bStart), bufOff: s - offset, len: e - s };
      const last = writes[writes.length - 1];
      if (last && last.fOff + last.len === w.fOff && last.bufOff + last.len === w.bufOff) last.len += w.len;
      else writes.push(w);
    }
    const pages = new Map<number, Buffer>();
    const sbPages = this.#planBitmaps(sbRanges, batChanges);
    await f.ensureSize(this.#allocEnd);
    for (const w of writes) await f.writePayload(buffer.subarray(w.bufOff, w.bufOff + w.len), w.fOff);
    this.#applyBat(batChanges, pages);
    for (const [off, page] of sbPages) pages.set(off, page);
    await f.commitPages(pages);
  }

  #allocate(length: number): number {
    const off = this.#allocEnd;
    this.#allocEnd += Math.ceil(length / MiB) * MiB;
    return off;
  }

  /** Set bitmap bits for the written sectors; returns the changed 4 KiB bitmap pages. */
  #planBitmaps(ranges: ByteRange[], batChanges: Map<number, BatEntry>): Map<number, Buffer> {
    const f = this.file, g = f.geometry, lss = g.logicalSectorSize;
    const pages = new Map<number, Buffer>();
    for (const r of ranges) {
      for (let sector = r.offset / lss; sector < (r.offset + r.length) / lss; sector++) {
        const chunk = Math.floor(sector / SECTORS_PER_CHUNK);
        let bm = this.#bitmaps.get(chunk);
        const sbIdx = sectorBitmapEntryIndex(g, chunk);
        let sbOff = bitmapFileOffset(f.bat, g, chunk) ?? batChanges.get(sbIdx)?.fileOffset;
        if (sbOff === undefined) {
          sbOff = this.#allocate(SECTOR_BITMAP_BLOCK_SIZE);
          batChanges.set(sbIdx, { state: SB_BLOCK_PRESENT, fileOffset: sbOff });
        }
        if (!bm) this.#bitmaps.set(chunk, (bm = Buffer.alloc(SECTOR_BITMAP_BLOCK_SIZE)));
        const bit = sector % SECTORS_PER_CHUNK;
        bm[bit >>> 3] |= 1 << (bit & 7);
        const pageStart = Math.floor((bit >>> 3) / LOG_SECTOR_SIZE) * LOG_SECTOR_SIZE;
        pages.set(sbOff + pageStart, bm.subarray(pageStart, pageStart + LOG_SECTOR_SIZE));
      }
    }
    return pages;
  }

  #applyBat(changes: Map<number, BatEntry>, pages: Map<number, Buffer>): void {
    const f = this.file;
    for (const [idx, e] of changes) {
      writeBatEntry(f.bat, idx, e);
      const pageStart = Math.floor((idx * 8) / LOG_SECTOR_SIZE) * LOG_SECTOR_SIZE;
      pages.set(f.batRegion.fileOffset + pageStart, Buffer.from(f.bat.subarray(pageStart, pageStart + LOG_SECTOR_SIZE)));
    }
  }

  async #zero(offset: number, length: number): Promise<void> {
    const f = this.file, g = f.geometry;
    await f.beginDataWrite();
    const changes = new Map<number, BatEntry>();
    const partial: ByteRange[] = [];
    const end = offset + length;
    for (let b = Math.floor(offset / g.blockSize); b * g.blockSize < end; b++) {
      const bStart = b * g.blockSize, bEnd = Math.min(g.virtualSize, bStart + g.blockSize);
      const s = Math.max(offset, bStart), e = Math.min(end, bEnd);
      const state = readBatEntry(f.bat, payloadEntryIndex(g, b)).state;
      const present = state === PAYLOAD_BLOCK_FULLY_PRESENT || state === PAYLOAD_BLOCK_PARTIALLY_PRESENT;
      const keepAllocated = f.metadata.fileParameters.leaveBlockAllocated && !g.hasParent && present;
      if (s === bStart && e === bEnd && !keepAllocated) {
        if (state !== PAYLOAD_BLOCK_ZERO) changes.set(payloadEntryIndex(g, b), { state: PAYLOAD_BLOCK_ZERO, fileOffset: 0 });
      } else if (present || (this.parent && state === PAYLOAD_BLOCK_NOT_PRESENT)) {
        partial.push({ offset: s, length: e - s });
      }
    }
    const pages = new Map<number, Buffer>();
    this.#applyBat(changes, pages);
    await f.commitPages(pages);
    for (const r of partial) {
      for (let o = r.offset; o < r.offset + r.length; o += ZERO_CHUNK) {
        await this.#write(Buffer.alloc(Math.min(ZERO_CHUNK, r.offset + r.length - o)), o);
      }
    }
  }

  protected async _flush(): Promise<void> {
    await this.#drainInPlace();
    await this.file.flush();
  }

  protected async _close(): Promise<void> {
    try {
      await this.file.close();
    } finally {
      await this.parent?.close();
    }
  }

  /** Ranges this file defines itself (for a child: what a merge would write into the parent). */
  async ownRanges(): Promise<LayerRange[]> {
    const g = this.file.geometry;
    if (!g.hasParent) return layerRanges(this.file.bat, g, () => undefined);
    const out: LayerRange[] = [];
    for (let c = 0; c < g.sectorBitmapBlocks; c++) {
      await this.#ensureBitmaps(c, c);
      layerRanges(this.file.bat, g, (k) => this.#bitmaps.get(k), c * g.chunkRatio, (c + 1) * g.chunkRatio, out);
    }
    return out;
  }

  protected async _extents(): Promise<DiskExtent[]> {
    const own = await this.ownRanges();
    const below: DiskExtent[] = this.parent ? await this.parent.extents() : [{ offset: 0, length: this.size, kind: 'zero' }];
    return overlayExtents(own, below, this.size);
  }
}

/** `own` ranges on top; the gaps filled from `below` (sorted extents covering [0,size)). */
export function overlayExtents(own: LayerRange[], below: DiskExtent[], size: number): DiskExtent[] {
  const out: DiskExtent[] = [];
  const push = (offset: number, length: number, kind: 'data' | 'zero') => {
    if (length <= 0) return;
    const last = out[out.length - 1];
    if (last && last.kind === kind && last.offset + last.length === offset) last.length += length;
    else out.push({ offset, length, kind });
  };
  let bi = 0;
  const fill = (from: number, to: number) => {
    while (bi < below.length && below[bi].offset + below[bi].length <= from) bi++;
    for (let i = bi; i < below.length && below[i].offset < to; i++) {
      const s = Math.max(from, below[i].offset), e = Math.min(to, below[i].offset + below[i].length);
      push(s, e - s, below[i].kind);
    }
  };
  let pos = 0;
  for (const r of own) {
    fill(pos, r.offset);
    push(r.offset, r.length, r.kind);
    pos = r.offset + r.length;
  }
  fill(pos, size);
  return out;
}
