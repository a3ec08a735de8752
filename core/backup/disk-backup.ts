// One frozen disk → one DiskManifest: choose the method (full / changed-blocks / scan),
// then plan, read and store the slices one segment (window of SEGMENT_SLICES) at a time,
// so memory does not grow with the disk.

import type { Disk } from '../disk/disk.ts';
import type { BackupMethod } from '../api/types.ts';
import type { BackupCheckpoint, FrozenDisk, Host } from '../hosts/host.ts';
import { PackReaders, type Repository } from '../repo/index.ts';
import type { ChunkWriter } from '../repo/index.ts';
import type { DiskManifest } from '../repo/manifest-types.ts';
import { readVhdxInfo } from '../vhdx/index.ts';
import type { VhdxInfo } from '../vhdx/index.ts';
import { changedSliceBytes, planWindow, RangeSet, readRuns, sliceCount, type SlicePlan } from './plan.ts';
import { throwIfAborted } from '../errors.ts';
import { SegmentedStore } from './read-pipeline.ts';
import { loadWindowSource, windowCount, windowSlices } from '../repo/manifest-chunks.ts';
import { PIECE_SIZE, piecesPerSlice, SAME_AS_BEFORE, segmentCount, segmentRange, SegmentView, SEGMENT_SLICES, SliceList, type SliceSource } from '../repo/manifest-segments.ts';
import type { ChunkRef, PieceRef, SliceRef } from '../repo/manifest-types.ts';
import { SPLIT_VERSION } from '../repo/config.ts';
import { basename } from 'node:path';

/**
 * Bytes per read call: several chunk slices at once, one run for the chunk writer. 2 MiB, so
 * that the writer's 8 MiB in flight is four runs, two per worker on a 2-core host: each worker
 * then has a run to hash while the main thread dedupes its last one. With 4 MiB runs (one per
 * worker) the CLI's full backup of the bench disk took longer in-engine: 2.70 s against 2.55 s
 * over 10 alternations, 2.57 against 2.49 over 6 (random and duplicate data make runs quick,
 * so the round trips count); through the bridge the two were within the noise. Peak RSS +7 MB.
 * The writer at 16 MiB with 4 MiB runs was ~2 % faster again, for 26 MB more.
 */
export const READ_RUN_BYTES = 2 * 1024 * 1024;

export interface DiskChoice {
  method: BackupMethod;
  reason?: string;
  changed?: { offset: number; length: number }[];
}

/** Which method a disk gets, and why when it is not the obvious one. */
export async function chooseDiskMethod(host: Host, cp: BackupCheckpoint, fd: FrozenDisk, virtualSize: number, chunkSize: number, previous: DiskManifest | undefined, full: boolean, rescan?: string): Promise<DiskChoice> {
  if (full) return { method: 'full' };
  if (!previous) return { method: 'scan', reason: `disk ${fd.key} is not in the previous restore point` };
  if (rescan) return { method: 'scan', reason: rescan };
  if (previous.chunkSize !== chunkSize) return { method: 'scan', reason: `chunk size changed (${previous.chunkSize} → ${chunkSize})` };
  if (previous.virtualSize !== virtualSize) return { method: 'scan', reason: `disk ${fd.key} was resized (${previous.virtualSize} → ${virtualSize} bytes)` };
  const ch = await host.getChangedRanges(cp, fd, previous.reference);
  if (!ch.available) return { method: 'scan', reason: ch.reason };
  return { method: 'changed-blocks', changed: ch.ranges };
}

async function geometryOf(fd: FrozenDisk, disk: Disk): Promise<Pick<DiskManifest, 'blockSize' | 'logicalSectorSize' | 'physicalSectorSize'>> {
  if (fd.format === 'vhdx') {
    // The open VHDX knows its own geometry; read the file again only for other Disk kinds.
    const info = (disk as { info?: VhdxInfo }).info ?? (await readVhdxInfo(fd.path));
    return { blockSize: info.blockSize, logicalSectorSize: info.logicalSectorSize, physicalSectorSize: info.physicalSectorSize };
  }
  return { blockSize: 32 * 1024 * 1024, logicalSectorSize: disk.geometry.logicalSectorSize, physicalSectorSize: disk.geometry.physicalSectorSize };
}

export interface DiskBackupResult {
  manifest: DiskManifest;
  /**
   * Settles once the disk's last segments are durable: they are submitted to the segment writer
   * but stored at its next flush. The disk's data chunks too are durable only after the data
   * writer's next flush. The caller flushes both (and then awaits this) before the manifest.
   */
  durable: Promise<void>;
  choice: DiskChoice;
  readBytes: number;
}

type PreviousWindow = Awaited<ReturnType<typeof loadWindowSource>>;

/**
 * The previous restore point's slices for a window, read one segment at a time (the next one
 * loaded ahead), with the segment's id when the window is exactly one of its segments (so an
 * unchanged window can keep it). Such a window's slices come as the segment itself
 * (SegmentView), decoded only where the plan needs them: the slices that changed.
 */
class PreviousSlices {
  readonly #repo: Repository;
  readonly #pointId: string;
  readonly #disk: DiskManifest;
  readonly #signal: AbortSignal | undefined;
  readonly #loaded = new Map<number, Promise<PreviousWindow>>();

  constructor(repo: Repository, pointId: string, disk: DiskManifest, signal?: AbortSignal) {
    this.#repo = repo;
    this.#pointId = pointId;
    this.#disk = disk;
    this.#signal = signal;
  }

  #load(k: number): Promise<PreviousWindow> {
    let p = this.#loaded.get(k);
    if (!p) {
      p = loadWindowSource(this.#repo, this.#pointId, this.#disk, k, this.#signal);
      p.catch(() => {}); // awaited when asked for, or dropped
      this.#loaded.set(k, p);
    }
    return p;
  }

  async window(first: number, count: number): Promise<{ source: SliceSource; segment?: ChunkRef }> {
    const per = windowSlices(this.#disk);
    const a = Math.floor(first / per), b = Math.floor((first + count - 1) / per);
    for (const k of this.#loaded.keys()) if (k < a) this.#loaded.delete(k);
    if (b + 1 < windowCount(this.#disk)) this.#load(b + 1);
    const parts: PreviousWindow[] = [];
    for (let k = a; k <= b; k++) parts.push(await this.#load(k));
    if (parts.length === 1 && parts[0]!.first === first && parts[0]!.source.length === count) return parts[0]!;
    // The previous point's segments are of another size: the window's slices, decoded.
    const refs: SliceRef[] = [];
    for (const w of parts) for (let j = 0; j < w.source.length; j++) if (w.first + j >= first && w.first + j < first + count) refs.push(w.source.ref(j));
    return { source: new SliceList(refs) };
  }
}

/** Every slice of the plan is the previous point's (a window nothing changed in). */
function unchanged(plan: readonly SlicePlan[], before: SliceSource): boolean {
  for (let j = 0; j < plan.length; j++) {
    const p = plan[j]!;
    if (p === SAME_AS_BEFORE) continue;
    if (p === null ? !before.isNull(j) : p !== before.ref(j)) return false;
  }
  return true;
}

/**
 * Bytes the plan will read: data slices, and in a changed-blocks backup only the changed
 * ones; with `pieces` (splitting), only the changed data pieces of a slice not all of whose pieces changed.
 */
function plannedBytes(slices: number, chunkSize: number, virtualSize: number, data: RangeSet, changed: RangeSet | undefined, pieces: number): number {
  let bytes = 0;
  for (let first = 0; first < slices; first += SEGMENT_SLICES) {
    const count = Math.min(SEGMENT_SLICES, slices - first);
    if (!data.any(first, count, chunkSize)) continue;
    const d = data.touched(first, count, chunkSize);
    const c = changed?.touched(first, count, chunkSize);
    for (let j = 0; j < count; j++) {
      if (!d[j] || (c && !c[j])) continue;
      const i = first + j;
      bytes += changed && pieces ? changedSliceBytes(i, { chunkSize, data, changed, pieces, virtualSize }) : Math.min(chunkSize, virtualSize - i * chunkSize);
    }
  }
  return bytes;
}

/**
 * For a scan: where the previous point holds the bytes of each piece of the slices `prevs`, by
 * the chunk id those bytes would have as a piece of their own. A split slice's pieces: a piece
 * whose chunk is a piece already (offset 0, one piece long) needs nothing here, its id is the
 * id of its bytes, which the index knows; every other one is a piece of a larger chunk (the
 * whole slice an earlier point stored). A whole slice (a chunk id): every piece of its chunk.
 * Such chunks are read, verified and hashed piece by piece. A chunk that does not load is
 * passed over: its pieces are stored anew, and the new point does not depend on it. Asked for
 * per read batch (a few slices), so memory stays a batch's worth whatever the chunk size: a
 * segment of 64 MiB slices split into 1,024 pieces each would have made 4 M entries.
 */
export async function pieceAliases(repo: Repository, prevs: readonly SliceRef[], opts: { signal?: AbortSignal; readers?: PackReaders } = {}): Promise<Map<string, PieceRef>> {
  const aliases = new Map<string, PieceRef>();
  const index = await repo.chunkIndex({ signal: opts.signal });
  /** Per chunk: the offsets of the pieces wanted, or 'all' of them. */
  const wanted = new Map<string, Set<number> | 'all'>();
  for (const prev of prevs) {
    if (typeof prev === 'string') {
      wanted.set(prev, 'all');
      continue;
    }
    if (prev === null) continue;
    for (const p of prev.pieces) {
      if (!p) continue;
      const plain = index.locate(p.id)?.plainLength;
      if (p.offset === 0 && plain !== undefined && plain <= PIECE_SIZE) continue;
      let offsets = wanted.get(p.id);
      if (offsets === 'all') continue;
      if (!offsets) wanted.set(p.id, (offsets = new Set()));
      offsets.add(p.offset);
    }
  }
  if (wanted.size === 0) return aliases;
  for await (const c of repo.readChunksSettled([...wanted.keys()], { signal: opts.signal, readers: opts.readers })) {
    if (!c.data) continue;
    try {
      const want = wanted.get(c.id)!;
      const offsets = want === 'all' ? Array.from({ length: Math.ceil(c.data.length / PIECE_SIZE) }, (_, q) => q * PIECE_SIZE) : want;
      for (const offset of offsets) {
        if (offset >= c.data.length) continue;
        aliases.set(repo.chunkId(c.data.subarray(offset, Math.min(offset + PIECE_SIZE, c.data.length))), { id: c.id, offset });
      }
    } finally {
      repo.pool.release(c.data);
    }
  }
  return aliases;
}

export async function backupDisk(opts: {
  repo: Repository; host: Host; cp: BackupCheckpoint; fd: FrozenDisk; disk: Disk; fileName?: string;
  previous: DiskManifest | undefined; previousPoint?: string; full: boolean; writer: ChunkWriter;
  /** Set: scan, for this reason, whatever change tracking says (the previous point names chunks a repair removed). */
  rescan?: string;
  /** Where the disk's segments go (default `writer`); they are durable at its next flush, which the caller does. */
  segmentWriter?: ChunkWriter; signal?: AbortSignal;
  onPlanned?: (bytes: number) => void; onRead?: (bytes: number) => void;
}): Promise<DiskBackupResult> {
  const { repo, disk, fd } = opts;
  const chunkSize = repo.chunkSize;
  const choice = await chooseDiskMethod(opts.host, opts.cp, fd, disk.size, chunkSize, opts.previous, opts.full, opts.rescan);
  const slices = sliceCount(disk.size, chunkSize);
  const data = new RangeSet((await disk.extents()).filter((e) => e.kind === 'data'));
  const changed = choice.method === 'changed-blocks' ? new RangeSet(choice.changed!) : undefined;
  // Split slices only into a repository whose format says so (an older HVBackup refuses it rather than misread them).
  const canSplit = repo.config.version >= SPLIT_VERSION && piecesPerSlice(chunkSize) > 0;
  // A scan of a disk the previous point holds at the same size and chunk size (change tracking
  // was lost, or the disk was written outside it) reads the slices that point holds split as
  // pieces, and keeps the pieces whose bytes it finds there (pieceAliases). Not when the scan is
  // asked for because a repair found chunks of that point damaged: nothing of it is trusted.
  const keepSplits = choice.method === 'scan' && canSplit && !opts.rescan && opts.previous !== undefined
    && opts.previous.chunkSize === chunkSize && opts.previous.virtualSize === disk.size;
  // A changed-blocks backup takes slices from the previous point (of the same size and chunk
  // size, or it would be a scan); a scan only the pieces of its split slices.
  const previous = (changed || keepSplits) && opts.previous ? new PreviousSlices(repo, opts.previousPoint ?? '(previous)', opts.previous, opts.signal) : undefined;
  const pieces = previous && canSplit ? piecesPerSlice(chunkSize) : 0;
  const readBytes = plannedBytes(slices, chunkSize, disk.size, data, changed, pieces);
  opts.onPlanned?.(readBytes);
  // A scan's split slices: their previous chunks are read through packs kept open for the whole disk.
  const readers = keepSplits ? new PackReaders(repo.backend) : undefined;
  const store = new SegmentedStore(disk, opts.writer, (plain) => repo.chunkId(plain), {
    chunkSize, signal: opts.signal, onRead: opts.onRead, batchBytes: READ_RUN_BYTES, segmentWriter: opts.segmentWriter,
    aliasesFor: readers && ((prevs) => pieceAliases(repo, prevs, { signal: opts.signal, readers })),
  });
  try {
    return await storeDisk();
  } finally {
    await readers?.close();
  }

  async function storeDisk(): Promise<DiskBackupResult> {
    const n = segmentCount(slices, SEGMENT_SLICES);
    for (let k = 0; k < n; k++) {
      throwIfAborted(opts.signal);
      const { first, count } = segmentRange(k, slices, SEGMENT_SLICES);
      if (!data.any(first, count, chunkSize)) {
        // No data in the window: every slice is null whatever the previous point had.
        store.reuse(k, null, 0);
        continue;
      }
      const before = await previous?.window(first, count);
      const plan = planWindow({ first, count, chunkSize, data, changed, previous: before?.source, pieces, virtualSize: disk.size, splitLikePrevious: keepSplits });
      const runs = readRuns(plan, chunkSize, disk.size, READ_RUN_BYTES, first);
      if (runs.length === 0 && before?.segment !== undefined && unchanged(plan, before.source)) {
        // Nothing in this window changed: the previous point's segment, untouched.
        let dataSlices = 0;
        for (let j = 0; j < plan.length; j++) if (!before.source.isNull(j)) dataSlices++;
        store.reuse(k, before.segment, dataSlices);
        continue;
      }
      await store.add({ k, first, plan, runs, from: changed && before?.source instanceof SegmentView ? before.source : undefined, splitFrom: keepSplits ? before?.source : undefined });
    }
    const { segments, dataSlices, durable } = await store.finish();
    return {
      choice,
      readBytes,
      durable,
      manifest: {
        key: fd.key,
        fileName: opts.fileName ?? basename(fd.path),
        format: fd.format,
        virtualSize: disk.size,
        ...(await geometryOf(fd, disk)),
        chunkSize,
        segmentSlices: SEGMENT_SLICES,
        segments,
        dataSlices,
      },
    };
  }
}
