// Test helpers for the VHDX suites: scratch directories, qemu-img/qemu-io/7zz runners
// and fixture recipes from VHDX-NOTES (replay fixture, corrupted structures).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeHeader, encodeHeader, selectHeader } from '../../core/vhdx/format/header.ts';
import { decodeLogEntryHeader } from '../../core/vhdx/format/log.ts';
import { decodeRegionTable } from '../../core/vhdx/format/region-table.ts';
import { REGION_BAT, REGION_METADATA } from '../../core/vhdx/format/constants.ts';

export const MiB = 1024 * 1024;
export const ROOT = join(import.meta.dirname, '..', '..');

export function scratch(): { dir: string; path: (name: string) => string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'hvb-vhdx-'));
  return { dir, path: (n) => join(dir, n), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export function run(cmd: string, args: string[], okCodes = [0]): { stdout: string; stderr: string; status: number } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 * MiB });
  const status = r.status ?? -1;
  assert.ok(okCodes.includes(status), `${cmd} ${args.join(' ')} exited ${status}: ${r.stderr}${r.stdout}`);
  return { stdout: r.stdout, stderr: r.stderr, status };
}

/** `qemu-io -c "write -P 0xNN off len"` for each write. */
export function qemuWrite(file: string, writes: [number, number, number][], format = 'vhdx'): void {
  const args = ['-f', format];
  for (const [pattern, off, len] of writes) args.push('-c', `write -P 0x${pattern.toString(16)} ${off} ${len}`);
  run('qemu-io', [...args, file]);
}

export function qemuToRaw(file: string, raw: string): Buffer {
  run('qemu-img', ['convert', '-f', 'vhdx', '-O', 'raw', file, raw]);
  return readFileSync(raw);
}

export function qemuCheck(file: string): void {
  const r = run('qemu-img', ['check', '-f', 'vhdx', file], [0, 1, 2, 3]);
  assert.equal(r.status, 0, `qemu-img check ${file}: ${r.stdout}${r.stderr}`);
}

export function qemuCompare(raw: string, vhdx: string): void {
  const r = run('qemu-img', ['compare', '-f', 'raw', '-F', 'vhdx', raw, vhdx], [0, 1, 2]);
  assert.equal(r.status, 0, `qemu-img compare: ${r.stdout}${r.stderr}`);
}

export function hvbackup(args: string[]): { stdout: string; stderr: string; status: number } {
  const r = spawnSync(process.execPath, [join(ROOT, 'core', 'cli', 'main.ts'), ...args], { encoding: 'utf8' });
  return { stdout: r.stdout, stderr: r.stderr, status: r.status ?? -1 };
}

export function readAtSync(file: string, pos: number, len: number): Buffer {
  const fd = openSync(file, 'r');
  try {
    const b = Buffer.alloc(len);
    readSync(fd, b, 0, len, pos);
    return b;
  } finally {
    closeSync(fd);
  }
}

export function writeAtSync(file: string, pos: number, data: Buffer): void {
  const fd = openSync(file, 'r+');
  try {
    writeSync(fd, data, 0, data.length, pos);
  } finally {
    closeSync(fd);
  }
}

export function currentHeader(file: string) {
  const sel = selectHeader(decodeHeader(readAtSync(file, 64 * 1024, 4096)), decodeHeader(readAtSync(file, 128 * 1024, 4096)));
  if ('problem' in sel) throw new Error(sel.problem);
  return sel;
}

export function regions(file: string) {
  const rt = decodeRegionTable(readAtSync(file, 192 * 1024, 64 * 1024));
  if (!rt.ok) throw new Error(rt.problem);
  return { bat: rt.entries.find((e) => e.guid === REGION_BAT)!, metadata: rt.entries.find((e) => e.guid === REGION_METADATA)! };
}

/**
 * VHDX-NOTES §2 replay fixture: qemu-io writes and aborts (its stale log entry holds
 * the new BAT entry), then BAT[0] is zeroed and the entry's LogGuid set in the header.
 */
export function makeReplayFixture(file: string): void {
  run('qemu-img', ['create', '-q', '-f', 'vhdx', '-o', 'subformat=dynamic,block_size=1M', file, '16M']);
  run('qemu-io', ['-f', 'vhdx', '-c', 'write -P 0xcd 0 1M', '-c', 'abort', file], [134, -1]);
  const sel = currentHeader(file);
  const eh = decodeLogEntryHeader(readAtSync(file, sel.header.logOffset, 64));
  assert.ok(eh, 'qemu left a log entry');
  writeAtSync(file, regions(file).bat.fileOffset, Buffer.alloc(8));
  writeAtSync(file, sel.index === 0 ? 64 * 1024 : 128 * 1024, encodeHeader({ ...sel.header, logGuid: eh.logGuid }));
}

/** `7zz t` must pass; `7zz x -tvhdx` extracts the flat image, returned as a buffer. */
export function sevenZipFlat(file: string, outDir: string): Buffer {
  run('7zz', ['t', file]);
  run('7zz', ['x', '-y', `-o${outDir}`, '-tvhdx', file]);
  const img = readdirSync(outDir).filter((n) => n.endsWith('.img'));
  assert.equal(img.length, 1, `7zz produced ${readdirSync(outDir).join(', ')}`);
  return readFileSync(join(outDir, img[0]));
}
