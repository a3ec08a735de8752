// One open VHDX file: headers, region table, metadata and the in-memory BAT, with
// crash-safe metadata updates through the log. Payload I/O lives in vhdx-disk.ts.
import type { FileHandle } from 'node:fs/promises';
import { HvError, wrapError } from '../../errors.ts';
import { batGeometry, type BatGeometry } from '../format/bat.ts';
import { batProblems } from './bat-check.ts';
import {
  HEADER_OFFSETS, HEADER_SIZE, KNOWN_METADATA, LOG_SECTOR_SIZE, METADATA_TABLE_SIZE, MiB,
  REGION_BAT, REGION_METADATA, REGION_TABLE_OFFSETS, REGION_TABLE_SIZE,
} from '../format/constants.ts';
import { newGuid, NULL_GUID } from '../format/guid.ts';
import { decodeHeader, encodeHeader, isVhdxSignature, selectHeader, type HeaderDecodeResult, type VhdxHeader } from '../format/header.ts';
import type { LogWrite } from '../format/log.ts';
import {
  decodeDiskMetadata, decodeMetadataTable, diskMetadataProblems, metadataEntryProblems, type DiskMetadata,
} from '../format/metadata.ts';
import { decodeRegionTable, regionEntryProblems, type RegionEntry } from '../format/region-table.ts';
import { DirectWriter, openDiskFile, preadLarge, pwriteFully, pwriteLarge, readAt } from '../../disk/file-io.ts';
import { findActiveSequence, logOverlay, LogWriter, replayEntries } from './log.ts';

export interface VhdxFileOpenOptions {
  writable?: boolean;
  replayLogInMemory?: boolean;
  /** Leave BAT problems to the caller (checkVhdx lists them one by one). */
  skipBatCheck?: boolean;
  /**
   * false: still one log transaction per write call, but no flushes until flush() or
   * close() — qemu-img convert's default (cache=unsafe). Only for files that are thrown
   * away if the process dies (a fresh convert or restore target). Default true.
   */
  durable?: boolean;
  /**
   * Payload writes bypass the page cache (DirectWriter) when their buffer is page-aligned
   * memory (alignedBuffer) at 4 KiB-aligned offsets; other writes, and all metadata, go
   * through the normal handle. For writers of large amounts of new data (restore).
   */
  directWrites?: boolean;
}

/** Test seams: simulate a crash at a chosen point of a metadata transaction. */
export const vhdxTestHooks: { crashAfterLogFlush?: boolean } = {};

export function corrupt(path: string, problem: string): HvError {
  return new HvError('ERR_CORRUPT', `${path}: ${problem}`, { target: path });
}

export class VhdxFile {
  readonly path: string;
  readonly fh: FileHandle;
  readonly writable: boolean;
  headers: [HeaderDecodeResult, HeaderDecodeResult];
  headerIndex: 0 | 1;
  header: VhdxHeader;
  batRegion!: RegionEntry;
  metadataRegion!: RegionEntry;
  metadata!: DiskMetadata;
  geometry!: BatGeometry;
  bat!: Buffer;
  fileSize = 0;
  /** Log pages applied in memory for a read-only open of a file with a pending log. */
  overlay: Map<number, Buffer> | undefined;
  #log: LogWriter | undefined;
  /** The first change's header update (beginDataWrite), once per writable session. */
  #dataGuidChange: Promise<void> | undefined;
  #crashed = false;
  #durable = true;
  #direct: DirectWriter | undefined;

  private constructor(path: string, fh: FileHandle, writable: boolean, headers: [HeaderDecodeResult, HeaderDecodeResult], index: 0 | 1, header: VhdxHeader) {
    this.path = path;
    this.fh = fh;
    this.writable = writable;
    this.headers = headers;
    this.headerIndex = index;
    this.header = header;
  }

  static async open(path: string, opts: VhdxFileOpenOptions = {}): Promise<VhdxFile> {
    const fh = await openDiskFile(path, !!opts.writable);
    try {
      const f = await VhdxFile.#parseHeaders(path, fh, !!opts.writable);
      f.#durable = opts.durable ?? true;
      await f.#loadLog(opts);
      await f.#loadStructure(!!opts.skipBatCheck);
      if (opts.writable && opts.directWrites) f.#direct = await DirectWriter.open(path);
      return f;
    } catch (err) {
      await fh.close().catch(() => {});
      // The format's own errors name the file; a failing read (EIO on a dying disk or a
      // dropped share) must too, not surface as a bare errno.
      throw err instanceof HvError ? err : wrapError(err, `open ${path}`, path);
    }
  }

  static async #parseHeaders(path: string, fh: FileHandle, writable: boolean): Promise<VhdxFile> {
    const size = (await fh.stat()).size;
    const first = await readAt(fh, 0, 8);
    if (!isVhdxSignature(first)) throw corrupt(path, 'not a VHDX file (no "vhdxfile" signature at offset 0)');
    if (size < MiB) throw corrupt(path, `file is truncated (${size} bytes, a VHDX is at least 1 MiB before any region)`);
    const h1 = decodeHeader(await readAt(fh, HEADER_OFFSETS[0], HEADER_SIZE));
    const h2 = decodeHeader(await readAt(fh, HEADER_OFFSETS[1], HEADER_SIZE));
    const sel = selectHeader(h1, h2);
    if ('problem' in sel) throw corrupt(path, sel.problem);
    if (sel.header.logVersion !== 0) throw new HvError('ERR_UNSUPPORTED', `${path}: log version ${sel.header.logVersion} is not supported`, { target: path });
    const f = new VhdxFile(path, fh, writable, [h1, h2], sel.index, sel.header);
    f.fileSize = size;
    return f;
  }

  get logPending(): boolean {
    return this.header.logGuid !== NULL_GUID;
  }

  async #loadLog(opts: VhdxFileOpenOptions): Promise<void> {
    if (!this.logPending) return;
    const h = this.header;
    if (h.logOffset < MiB || h.logOffset % MiB || h.logLength % MiB || h.logLength === 0 || h.logOffset + h.logLength > this.fileSize) {
      throw corrupt(this.path, `log region (offset ${h.logOffset}, length ${h.logLength}) is invalid or beyond the end of the file`);
    }
    const entries = await findActiveSequence(this.fh, h);
    if (this.writable) {
      if (entries.length) {
        try { await replayEntries(this.fh, entries, this.path); } catch (err) { throw corrupt(this.path, (err as Error).message); }
        await this.fh.sync();
      }
      await this.writeHeader({ logGuid: NULL_GUID });
      await this.fh.sync();
      this.fileSize = (await this.fh.stat()).size;
    } else if (opts.replayLogInMemory) {
      this.overlay = logOverlay(entries);
    } else if (entries.length > 0) {
      // (With no valid entry of its own the LogGuid is a kill before the first entry was
      // flushed: nothing was written in place yet, so a read-only open goes on, as qemu's does.)
      throw new HvError('ERR_LOG_REPLAY_NEEDED',
        `${this.path} has a log that must be replayed before it can be read; run: hvbackup vhdx check --repair ${this.path}`,
        { target: this.path, data: { entries: entries.length } });
    }
  }

  /** Read file bytes with the in-memory log overlay applied. */
  async readMeta(position: number, length: number): Promise<Buffer> {
    const b = await readAt(this.fh, position, length);
    this.applyOverlay(b, position);
    return b;
  }

  applyOverlay(b: Buffer, position: number): void {
    if (!this.overlay) return;
    for (const [off, page] of this.overlay) {
      const s = Math.max(off, position), e = Math.min(off + page.length, position + b.length);
      if (s < e) page.copy(b, s - position, s - off, e - off);
    }
  }

  async #loadStructure(skipBatCheck: boolean): Promise<void> {
    const rt = await this.#regionTable();
    for (const e of rt) {
      if (e.guid !== REGION_BAT && e.guid !== REGION_METADATA && e.required) {
        throw new HvError('ERR_UNSUPPORTED', `${this.path}: unknown required region ${e.guid}`, { target: this.path });
      }
    }
    const bat = rt.find((e) => e.guid === REGION_BAT), meta = rt.find((e) => e.guid === REGION_METADATA);
    if (!bat || !meta) throw corrupt(this.path, `region table lacks the ${bat ? 'metadata' : 'BAT'} region`);
    for (const r of [bat, meta]) {
      const p = regionEntryProblems(r);
      if (p.length) throw corrupt(this.path, p.join('; '));
      if (r.fileOffset + r.length > this.fileSize) throw corrupt(this.path, `file is truncated: region ${r.guid} ends at ${r.fileOffset + r.length}, file is ${this.fileSize} bytes`);
    }
    this.batRegion = bat;
    this.metadataRegion = meta;
    this.metadata = await this.#readMetadata();
    const m = this.metadata;
    this.geometry = batGeometry(m.virtualDiskSize, m.fileParameters.blockSize, m.logicalSectorSize, m.fileParameters.hasParent);
    if (this.geometry.totalEntries * 8 > bat.length) {
      throw corrupt(this.path, `BAT region (${bat.length} bytes) is too small for ${this.geometry.totalEntries} entries`);
    }
    const len = Math.ceil((this.geometry.totalEntries * 8) / LOG_SECTOR_SIZE) * LOG_SECTOR_SIZE;
    this.bat = await this.readMeta(bat.fileOffset, len);
    if (skipBatCheck) return;
    const bad = batProblems(this.bat, this.geometry, this.fileSize);
    if (bad.length) throw corrupt(this.path, bad[0] + (bad.length > 1 ? ` (and ${bad.length - 1} more BAT problems)` : ''));
  }

  async #regionTable(): Promise<RegionEntry[]> {
    const r1 = decodeRegionTable(await this.readMeta(REGION_TABLE_OFFSETS[0], REGION_TABLE_SIZE));
    if (r1.ok) return r1.entries;
    const r2 = decodeRegionTable(await this.readMeta(REGION_TABLE_OFFSETS[1], REGION_TABLE_SIZE));
    if (r2.ok) return r2.entries;
    throw corrupt(this.path, `no valid region table (1: ${r1.problem}; 2: ${r2.problem})`);
  }

  async #readMetadata(): Promise<DiskMetadata> {
    const r = this.metadataRegion;
    const table = decodeMetadataTable(await this.readMeta(r.fileOffset, METADATA_TABLE_SIZE));
    if (!table.ok) throw corrupt(this.path, table.problem);
    const items = new Map<string, Buffer>();
    for (const e of table.entries) {
      const p = metadataEntryProblems(e, r.length);
      if (p.length) throw corrupt(this.path, p.join('; '));
      if (!KNOWN_METADATA.has(e.itemId) && e.isRequired) {
        throw new HvError('ERR_UNSUPPORTED', `${this.path}: unknown required metadata item ${e.itemId}`, { target: this.path });
      }
      if (!e.isUser) items.set(e.itemId, await this.readMeta(r.fileOffset + e.offset, e.length));
    }
    let m: DiskMetadata;
    try { m = decodeDiskMetadata(items); } catch (err) { throw corrupt(this.path, (err as Error).message); }
    const problems = diskMetadataProblems(m);
    if (problems.length) throw corrupt(this.path, problems.join('; '));
    return m;
  }

  /** Write the non-current header slot with the next sequence number (not flushed). */
  async writeHeader(changes: Partial<VhdxHeader>): Promise<void> {
    const next: VhdxHeader = { ...this.header, ...changes, sequenceNumber: this.header.sequenceNumber + 1n };
    const slot = this.headerIndex === 0 ? 1 : 0;
    await pwriteFully(this.fh, encodeHeader(next), HEADER_OFFSETS[slot]);
    this.header = next;
    this.headerIndex = slot;
    this.headers[slot] = { ok: true, header: next };
  }

  /**
   * Before the first change of a writable session: new FileWriteGuid and DataWriteGuid
   * written to both headers, each flushed (MS-VHDX 2.2.2.1; change tracking relies on it).
   * Every caller waits for that same update, so writes that run side by side
   * (VhdxDisk.writeAllocated) all start after it; if it failed, each of them fails with it.
   */
  beginDataWrite(): Promise<void> {
    return (this.#dataGuidChange ??= (async () => {
      const changes = { fileWriteGuid: newGuid(), dataWriteGuid: newGuid() };
      await this.writeHeader(changes);
      await this.#barrier();
      await this.writeHeader(changes);
      await this.#barrier();
    })());
  }

  /**
   * Make `pages` (4 KiB-aligned file offset → 4 KiB content) durable through the log,
   * with two flushes: [payload data, header with LogGuid, log entry] flush, then
   * [pages in place, header clearing LogGuid] flush. A crash before the first flush
   * loses only this unacknowledged write (new blocks lie past the old end of file);
   * after it, replay re-applies the entry, which is idempotent.
   */
  async commitPages(pages: Map<number, Buffer>): Promise<void> {
    if (pages.size === 0) return;
    this.#log ??= new LogWriter(newGuid(), this.header.logOffset, this.header.logLength);
    const all = [...pages].sort((a, b) => a[0] - b[0]);
    for (let i = 0; i < all.length; i += this.#log.capacityPages) {
      await this.#commitBatch(all.slice(i, i + this.#log.capacityPages));
    }
  }

  async #commitBatch(pages: [number, Buffer][]): Promise<void> {
    const log = this.#log!;
    await this.writeHeader({ logGuid: log.logGuid });
    const writes: LogWrite[] = pages.map(([fileOffset, data]) => ({ fileOffset, data }));
    await log.append(this.fh, writes, this.fileSize);
    await this.#barrier();
    if (vhdxTestHooks.crashAfterLogFlush) {
      this.#crashed = true;
      await this.fh.close();
      throw new HvError('ERR_INTERNAL', `${this.path}: simulated crash after the log entry was flushed`, { target: this.path });
    }
    for (const [off, data] of pages) await pwriteFully(this.fh, data, off);
    await this.writeHeader({ logGuid: NULL_GUID });
    await this.#barrier();
  }

  /** Ordering point of the write protocol: a datasync, unless the file is not durable. */
  async #barrier(): Promise<void> {
    if (this.#durable) await this.fh.datasync();
  }

  /** Extend the file (sparse) so that every allocated block lies inside it. */
  async ensureSize(size: number): Promise<void> {
    if (size > this.fileSize) {
      await this.fh.truncate(size);
      this.fileSize = size;
    }
  }

  async flush(): Promise<void> {
    if (this.writable && !this.#crashed) await this.fh.sync();
  }

  async close(): Promise<void> {
    try {
      await this.#direct?.close();
    } finally {
      if (!this.#crashed) {
        try {
          await this.flush();
        } finally {
          await this.fh.close();
        }
      }
    }
  }

  /** Payload bytes at a file offset, directly when the file was opened with directWrites and the write qualifies. */
  async writePayload(buf: Buffer, position: number): Promise<void> {
    if (this.#direct) await this.#direct.write(this.fh, buf, position);
    else await pwriteLarge(this.fh, buf, position);
  }

  async readPayload(buf: Buffer, bufOffset: number, length: number, position: number): Promise<void> {
    await preadLarge(this.fh, buf, bufOffset, length, position);
    if (this.overlay) this.applyOverlay(buf.subarray(bufOffset, bufOffset + length), position);
  }
}
