// checkVhdx: every structural problem as its own sentence, and the repairs that are
// provably safe (rewrite a damaged header or region table from its valid twin,
// replay a pending log).
import { open, type FileHandle } from 'node:fs/promises';
import { HvError, isHvError } from '../../errors.ts';
import { payloadEntryIndex, readBatEntry, batEntryReservedBits, sectorBitmapEntryIndex } from '../format/bat.ts';
import {
  HEADER_OFFSETS, HEADER_SIZE, MiB, PAYLOAD_BLOCK_PARTIALLY_PRESENT, REGION_BAT, REGION_METADATA,
  REGION_TABLE_OFFSETS, REGION_TABLE_SIZE, SB_BLOCK_NOT_PRESENT, SB_BLOCK_PRESENT,
} from '../format/constants.ts';
import { NULL_GUID } from '../format/guid.ts';
import { decodeHeader, encodeHeader, isVhdxSignature, selectHeader, type HeaderDecodeResult } from '../format/header.ts';
import { decodeRegionTable, regionEntryProblems } from '../format/region-table.ts';
import type { CheckResult } from '../index.ts';
import { batProblems } from './bat-check.ts';
import { pwriteFully, readAt } from '../../disk/file-io.ts';
import { findActiveSequence } from './log.ts';
import { openParent } from './open.ts';
import { parentInfoFromLocator } from './parent.ts';
import { VhdxFile } from './vhdx-file.ts';

const VALID_PAYLOAD_STATES = new Set([0, 1, 2, 3, 5, 6, 7]);

async function openForCheck(path: string, writable: boolean): Promise<FileHandle> {
  try {
    return await open(path, writable ? 'r+' : 'r');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new HvError(e.code === 'ENOENT' ? 'ERR_NOT_FOUND' : 'ERR_IO', `cannot open ${path}: ${e.message}`, { target: path, cause: err });
  }
}

/** Strip the "<path>: " prefix our errors carry; the CLI prints the path once per line. */
function problemText(path: string, err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return msg.startsWith(`${path}: `) ? msg.slice(path.length + 2) : msg;
}

/** Header problems; returns false when no header is usable (nothing further can be read). */
async function headerProblems(fh: FileHandle, size: number, problems: string[]): Promise<boolean> {
  const hs: HeaderDecodeResult[] = [decodeHeader(await readAt(fh, HEADER_OFFSETS[0], HEADER_SIZE)), decodeHeader(await readAt(fh, HEADER_OFFSETS[1], HEADER_SIZE))];
  hs.forEach((h, i) => { if (!h.ok) problems.push(`header ${i + 1} (offset ${HEADER_OFFSETS[i]}) is invalid: ${h.problem}`); });
  const sel = selectHeader(hs[0], hs[1]);
  if ('problem' in sel) {
    if (hs[0].ok && hs[1].ok) problems.push(sel.problem);
    return false;
  }
  const h = sel.header;
  if (h.logOffset < MiB || h.logOffset % MiB || h.logLength % MiB || h.logLength === 0) problems.push(`log region (offset ${h.logOffset}, length ${h.logLength}) is not 1 MiB aligned`);
  else if (h.logOffset + h.logLength > size) problems.push(`log region ends at ${h.logOffset + h.logLength}, past the end of the file (${size} bytes)`);
  else if (h.logGuid !== NULL_GUID) {
    // A LogGuid with no valid entry of its own is a log whose first entry never reached the
    // disk: nothing was written in place yet, so nothing needs replaying (qemu agrees).
    const n = (await findActiveSequence(fh, h)).length;
    if (n > 0) problems.push(`log has ${n} pending entr${n === 1 ? 'y' : 'ies'} that must be replayed (run: hvbackup vhdx check --repair)`);
  }
  return true;
}

/** Region table problems; returns false when neither table is usable. */
async function regionProblems(fh: FileHandle, size: number, problems: string[]): Promise<boolean> {
  const rts = [decodeRegionTable(await readAt(fh, REGION_TABLE_OFFSETS[0], REGION_TABLE_SIZE)), decodeRegionTable(await readAt(fh, REGION_TABLE_OFFSETS[1], REGION_TABLE_SIZE))];
  rts.forEach((r, i) => { if (!r.ok) problems.push(`region table ${i + 1} (offset ${REGION_TABLE_OFFSETS[i]}) is invalid: ${r.problem}`); });
  const good = rts.find((r) => r.ok);
  if (!good || !good.ok) return false;
  if (rts[0].ok && rts[1].ok && JSON.stringify(rts[0].entries) !== JSON.stringify(rts[1].entries)) problems.push('region tables 1 and 2 differ');
  for (const e of good.entries) {
    if (e.guid !== REGION_BAT && e.guid !== REGION_METADATA && e.required) problems.push(`unknown required region ${e.guid}`);
    problems.push(...regionEntryProblems(e));
    if (e.fileOffset + e.length > size) problems.push(`region ${e.guid} ends at ${e.fileOffset + e.length}, past the end of the file (${size} bytes)`);
  }
  return true;
}

function batEntryProblems(f: VhdxFile): string[] {
  const g = f.geometry, p: string[] = [];
  for (let b = 0; b < g.payloadBlocks; b++) {
    const i = payloadEntryIndex(g, b), e = readBatEntry(f.bat, i);
    if (!VALID_PAYLOAD_STATES.has(e.state) || (e.state === PAYLOAD_BLOCK_PARTIALLY_PRESENT && !g.hasParent)) p.push(`BAT entry ${i} (payload block ${b}) has invalid state ${e.state}`);
    if (batEntryReservedBits(f.bat, i)) p.push(`BAT entry ${i} (payload block ${b}) has reserved bits set`);
  }
  const chunks = g.hasParent ? g.sectorBitmapBlocks : Math.floor((g.payloadBlocks - 1) / g.chunkRatio);
  for (let c = 0; c < chunks; c++) {
    const i = sectorBitmapEntryIndex(g, c), s = readBatEntry(f.bat, i).state;
    if (s !== SB_BLOCK_NOT_PRESENT && (s !== SB_BLOCK_PRESENT || !g.hasParent)) p.push(`BAT entry ${i} (sector bitmap ${c}) has invalid state ${s}`);
  }
  const h = f.header, reserved = [
    { what: 'the log', start: h.logOffset, end: h.logOffset + h.logLength },
    { what: 'the BAT region', start: f.batRegion.fileOffset, end: f.batRegion.fileOffset + f.batRegion.length },
    { what: 'the metadata region', start: f.metadataRegion.fileOffset, end: f.metadataRegion.fileOffset + f.metadataRegion.length },
  ];
  return [...p, ...batProblems(f.bat, g, f.fileSize, reserved)];
}

async function structureProblems(path: string, problems: string[]): Promise<void> {
  let f: VhdxFile;
  try {
    f = await VhdxFile.open(path, { replayLogInMemory: true, skipBatCheck: true });
  } catch (err) {
    const text = problemText(path, err);
    // Region problems found above already explain a failed open.
    if (!problems.some((p) => text.includes(p))) problems.push(text);
    return;
  }
  try {
    problems.push(...batEntryProblems(f));
    const loc = f.metadata.parentLocator;
    if (loc) {
      try {
        await (await openParent(path, parentInfoFromLocator(path, loc), { replayLogInMemory: true })).close();
      } catch (err) {
        problems.push(problemText(path, err));
      }
    }
  } finally {
    await f.close();
  }
}

async function findProblems(path: string): Promise<string[]> {
  const problems: string[] = [];
  const fh = await openForCheck(path, false);
  try {
    const size = (await fh.stat()).size;
    if (!isVhdxSignature(await readAt(fh, 0, 8))) return ['not a VHDX file (no "vhdxfile" signature at offset 0)'];
    if (size < MiB) return [`file is truncated (${size} bytes)`];
    const headersUsable = await headerProblems(fh, size, problems);
    const regionsUsable = await regionProblems(fh, size, problems);
    if (!headersUsable || !regionsUsable) return problems;
  } finally {
    await fh.close();
  }
  await structureProblems(path, problems);
  return [...new Set(problems)];
}

async function repairTwins(path: string, repaired: string[]): Promise<void> {
  const fh = await openForCheck(path, true);
  try {
    if ((await fh.stat()).size < MiB || !isVhdxSignature(await readAt(fh, 0, 8))) return;
    const hs = [decodeHeader(await readAt(fh, HEADER_OFFSETS[0], HEADER_SIZE)), decodeHeader(await readAt(fh, HEADER_OFFSETS[1], HEADER_SIZE))];
    for (const [bad, good] of [[0, 1], [1, 0]] as const) {
      const g = hs[good];
      if (!hs[bad].ok && g.ok) {
        await pwriteFully(fh, encodeHeader({ ...g.header, sequenceNumber: g.header.sequenceNumber + 1n }), HEADER_OFFSETS[bad]);
        repaired.push(`header ${bad + 1} rewritten from header ${good + 1}`);
      }
    }
    const rts = [await readAt(fh, REGION_TABLE_OFFSETS[0], REGION_TABLE_SIZE), await readAt(fh, REGION_TABLE_OFFSETS[1], REGION_TABLE_SIZE)];
    for (const [bad, good] of [[0, 1], [1, 0]] as const) {
      if (!decodeRegionTable(rts[bad]).ok && decodeRegionTable(rts[good]).ok) {
        await pwriteFully(fh, rts[good], REGION_TABLE_OFFSETS[bad]);
        repaired.push(`region table ${bad + 1} rewritten from region table ${good + 1}`);
      }
    }
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function repairLog(path: string, repaired: string[]): Promise<void> {
  const fh = await openForCheck(path, false);
  let pending: number;
  try {
    const hs = [decodeHeader(await readAt(fh, HEADER_OFFSETS[0], HEADER_SIZE)), decodeHeader(await readAt(fh, HEADER_OFFSETS[1], HEADER_SIZE))];
    const sel = selectHeader(hs[0], hs[1]);
    if ('problem' in sel || sel.header.logGuid === NULL_GUID) return;
    pending = (await findActiveSequence(fh, sel.header)).length;
  } finally {
    await fh.close();
  }
  try {
    // A writable open replays the log and clears LogGuid before anything else.
    await (await VhdxFile.open(path, { writable: true, skipBatCheck: true })).close();
    repaired.push(`log replayed (${pending} entr${pending === 1 ? 'y' : 'ies'}) and cleared`);
  } catch (err) {
    if (!isHvError(err)) throw err;
  }
}

export async function checkFile(path: string, opts: { repair?: boolean }): Promise<CheckResult> {
  const repaired: string[] = [];
  if (opts.repair) {
    await repairTwins(path, repaired);
    await repairLog(path, repaired);
  }
  return { path, problems: await findProblems(path), repaired };
}
