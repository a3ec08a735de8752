// Maps virtual byte ranges onto a VHDX's blocks: which bytes come from this file,
// the parent, or are zeros (reads), and which ranges a differencing layer holds.
import { payloadEntryIndex, readBatEntry, sectorBitmapEntryIndex, type BatGeometry } from '../format/bat.ts';
import {
  PAYLOAD_BLOCK_FULLY_PRESENT, PAYLOAD_BLOCK_NOT_PRESENT, PAYLOAD_BLOCK_PARTIALLY_PRESENT, SECTORS_PER_CHUNK, SB_BLOCK_PRESENT,
} from '../format/constants.ts';

export type Source = 'file' | 'parent' | 'zero';

export interface Segment {
  vOff: number;
  len: number;
  src: Source;
  /** File offset for 'file' segments. */
  fOff: number;
}

export type BitmapLookup = (chunk: number) => Buffer | undefined;

export function pushSegment(out: Segment[], s: Segment): void {
  const last = out[out.length - 1];
  if (last && last.src === s.src && last.vOff + last.len === s.vOff && (s.src !== 'file' || last.fOff + last.len === s.fOff)) {
    last.len += s.len;
  } else {
    out.push({ ...s });
  }
}

export function sectorBit(bitmaps: BitmapLookup, sector: number): boolean {
  const bm = bitmaps(Math.floor(sector / SECTORS_PER_CHUNK));
  if (!bm) return false;
  const bit = sector % SECTORS_PER_CHUNK;
  return (bm[bit >>> 3] & (1 << (bit & 7))) !== 0;
}

/** Segments of [offset, offset+length) by BAT state and, for partial blocks, sector bitmap. */
export function planRead(bat: Buffer, g: BatGeometry, hasParentDisk: boolean, bitmaps: BitmapLookup, offset: number, length: number): Segment[] {
  const out: Segment[] = [];
  const end = offset + length;
  const lss = g.logicalSectorSize;
  for (let b = Math.floor(offset / g.blockSize); b * g.blockSize < end; b++) {
    const bStart = b * g.blockSize;
    const s = Math.max(offset, bStart), e = Math.min(end, bStart + g.blockSize);
    const entry = readBatEntry(bat, payloadEntryIndex(g, b));
    if (entry.state === PAYLOAD_BLOCK_FULLY_PRESENT || (entry.state === PAYLOAD_BLOCK_PARTIALLY_PRESENT && !g.hasParent)) {
      pushSegment(out, { vOff: s, len: e - s, src: 'file', fOff: entry.fileOffset + (s - bStart) });
    } else if (entry.state === PAYLOAD_BLOCK_PARTIALLY_PRESENT) {
      for (let x = s; x < e;) {
        const sector = Math.floor(x / lss);
        const next = Math.min(e, (sector + 1) * lss);
        const src: Source = sectorBit(bitmaps, sector) ? 'file' : hasParentDisk ? 'parent' : 'zero';
        pushSegment(out, { vOff: x, len: next - x, src, fOff: entry.fileOffset + (x - bStart) });
        x = next;
      }
    } else if (entry.state === PAYLOAD_BLOCK_NOT_PRESENT && hasParentDisk) {
      pushSegment(out, { vOff: s, len: e - s, src: 'parent', fOff: 0 });
    } else {
      // NOT_PRESENT without a parent, ZERO, UNDEFINED and UNMAPPED (3, or 5 as qemu writes) read as zeros.
      pushSegment(out, { vOff: s, len: e - s, src: 'zero', fOff: 0 });
    }
  }
  return out;
}

/** Sector-bitmap entry file offset of `chunk`, or undefined when not present. */
export function bitmapFileOffset(bat: Buffer, g: BatGeometry, chunk: number): number | undefined {
  const e = readBatEntry(bat, sectorBitmapEntryIndex(g, chunk));
  return e.state === SB_BLOCK_PRESENT ? e.fileOffset : undefined;
}

export interface LayerRange { offset: number; length: number; kind: 'data' | 'zero' }

function pushRange(out: LayerRange[], r: LayerRange): void {
  const last = out[out.length - 1];
  if (last && last.kind === r.kind && last.offset + last.length === r.offset) last.length += r.length;
  else out.push({ ...r });
}

/**
 * What this file itself defines: 'data' (present blocks/sectors) and 'zero' (ZERO,
 * UNDEFINED, UNMAPPED); NOT_PRESENT ranges are left out (they come from below).
 */
export function layerRanges(bat: Buffer, g: BatGeometry, bitmaps: BitmapLookup, firstBlock = 0, endBlock = g.payloadBlocks, out: LayerRange[] = []): LayerRange[] {
  for (let b = firstBlock; b < Math.min(endBlock, g.payloadBlocks); b++) {
    const bStart = b * g.blockSize;
    const bEnd = Math.min(g.virtualSize, bStart + g.blockSize);
    const entry = readBatEntry(bat, payloadEntryIndex(g, b));
    if (entry.state === PAYLOAD_BLOCK_NOT_PRESENT) continue;
    if (entry.state === PAYLOAD_BLOCK_FULLY_PRESENT || (entry.state === PAYLOAD_BLOCK_PARTIALLY_PRESENT && !g.hasParent)) {
      pushRange(out, { offset: bStart, length: bEnd - bStart, kind: 'data' });
    } else if (entry.state === PAYLOAD_BLOCK_PARTIALLY_PRESENT) {
      const lss = g.logicalSectorSize;
      for (let x = bStart; x < bEnd; x += lss) {
        if (sectorBit(bitmaps, x / lss)) pushRange(out, { offset: x, length: Math.min(lss, bEnd - x), kind: 'data' });
      }
    } else {
      pushRange(out, { offset: bStart, length: bEnd - bStart, kind: 'zero' });
    }
  }
  return out;
}
