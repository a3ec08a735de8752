// Structural checks of a BAT against the file: allocated blocks inside the file,
// no two blocks sharing space, no block over the headers/log/regions.
import { payloadEntryIndex, readBatEntry, sectorBitmapEntryIndex, type BatGeometry } from '../format/bat.ts';
import {
  MiB, PAYLOAD_BLOCK_FULLY_PRESENT, PAYLOAD_BLOCK_PARTIALLY_PRESENT, SB_BLOCK_PRESENT, SECTOR_BITMAP_BLOCK_SIZE,
} from '../format/constants.ts';

interface Allocation { what: string; start: number; end: number }

function allocations(bat: Buffer, g: BatGeometry): Allocation[] {
  const out: Allocation[] = [];
  for (let b = 0; b < g.payloadBlocks; b++) {
    const e = readBatEntry(bat, payloadEntryIndex(g, b));
    if (e.state === PAYLOAD_BLOCK_FULLY_PRESENT || e.state === PAYLOAD_BLOCK_PARTIALLY_PRESENT) {
      out.push({ what: `payload block ${b}`, start: e.fileOffset, end: e.fileOffset + g.blockSize });
    }
  }
  if (g.hasParent) {
    for (let c = 0; c < g.sectorBitmapBlocks; c++) {
      const e = readBatEntry(bat, sectorBitmapEntryIndex(g, c));
      if (e.state === SB_BLOCK_PRESENT) out.push({ what: `sector bitmap block ${c}`, start: e.fileOffset, end: e.fileOffset + SECTOR_BITMAP_BLOCK_SIZE });
    }
  }
  return out;
}

/** Each problem as one sentence; `reserved` lists fixed regions (headers, log, BAT, metadata). */
export function batProblems(bat: Buffer, g: BatGeometry, fileSize: number, reserved: Allocation[] = []): string[] {
  const p: string[] = [];
  const all = allocations(bat, g);
  for (const a of all) {
    if (a.start < MiB) p.push(`BAT entry for ${a.what} points into the file header area (offset ${a.start})`);
    else if (a.end > fileSize) p.push(`BAT entry for ${a.what} points past the end of the file (offset ${a.start}, file ${fileSize} bytes)`);
  }
  const sorted = [...all, ...reserved].sort((a, b) => a.start - b.start);
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i].start < sorted[i - 1].end && sorted[i].start >= MiB) p.push(`${sorted[i].what} overlaps ${sorted[i - 1].what} at file offset ${sorted[i].start}`);
  }
  return p;
}
