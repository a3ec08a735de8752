// `hvbackup vhdx ...`: inspect, check, convert, diff, merge and write virtual disks.
import { existsSync, realpathSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import type { Command } from 'commander';
import type { Disk } from '../../disk/disk.ts';
import { RawDisk } from '../../disk/raw.ts';
import { HvError } from '../../errors.ts';
import { attachChangeTracking } from '../../tracking/index.ts';
import {
  checkVhdx, copyDisk, createVhdx, differencingChangedRanges, mergeDifferencingVhdx, openDisk, readVhdxInfo, type VhdxInfo,
} from '../../vhdx/index.ts';

const MiB = 1024 * 1024;
const out = (s: string) => process.stdout.write(`${s}\n`);

function bad(msg: string): HvError {
  return new HvError('ERR_INVALID_ARGUMENT', msg);
}

function parseBytes(name: string, v: string): number {
  const n = /^0x[0-9a-f]+$/i.test(v) ? parseInt(v, 16) : Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw bad(`--${name} must be a non-negative integer, got "${v}"`);
  return n;
}

function formatInfo(i: VhdxInfo): string[] {
  const lines = [
    `file: ${i.path}`, `type: ${i.type}`, `virtual size: ${i.virtualSize} (${(i.virtualSize / MiB).toFixed(1)} MiB)`,
    `block size: ${i.blockSize} (${i.blockSize / MiB} MiB)`, `logical sector size: ${i.logicalSectorSize}`,
    `physical sector size: ${i.physicalSectorSize}`, `allocated: ${i.allocatedBytes}`, `file size: ${i.fileSize}`,
    `data write guid: ${i.dataWriteGuid}`, `file write guid: ${i.fileWriteGuid}`, `page 83 id: ${i.page83Id}`,
    `log pending: ${i.logPending ? 'yes' : 'no'}`,
  ];
  if (i.parent) {
    lines.push(`parent linkage: ${i.parent.linkage}`);
    if (i.parent.relativePath) lines.push(`parent relative path: ${i.parent.relativePath}`);
    if (i.parent.absoluteWin32Path) lines.push(`parent absolute path: ${i.parent.absoluteWin32Path}`);
  }
  return lines;
}

async function convert(src: string, dst: string, o: { to?: string; type?: string; blockSize?: string; signal?: AbortSignal }): Promise<void> {
  const to = o.to ?? (/\.a?vhdx$/i.test(dst) ? 'vhdx' : 'raw');
  if (to !== 'vhdx' && to !== 'raw') throw bad(`--to must be vhdx or raw, got "${to}"`);
  const type = o.type ?? 'dynamic';
  if (type !== 'dynamic' && type !== 'fixed') throw bad(`--type must be dynamic or fixed, got "${type}"`);
  if (existsSync(dst)) throw new HvError('ERR_ALREADY_EXISTS', `${dst} already exists; convert never overwrites`, { target: dst });
  const source = await openDisk(src);
  let target: Disk | undefined;
  try {
    const blockSize = o.blockSize === undefined ? 32 * MiB : parseBytes('block-size', o.blockSize) * MiB;
    target = to === 'raw' ? await RawDisk.create(dst, source.size)
      // Not durable per call: a failed convert deletes dst; close() flushes once at the end.
      : await createVhdx(dst, { size: source.size, type, blockSize, logicalSectorSize: source.geometry.logicalSectorSize === 4096 ? 4096 : 512, durable: false });
    // Raw targets: small chunks, several in flight (stays in CPU cache); VHDX targets:
    // whole blocks per call, since each call is one log transaction.
    const copy = to === 'raw' ? { granularity: MiB, chunkSize: 8 * MiB, parallel: 2 } : { granularity: blockSize, chunkSize: Math.max(blockSize, 32 * MiB), parallel: 2 };
    await copyDisk(source, target, { ...copy, signal: o.signal });
    await target.close();
  } catch (err) {
    await target?.close().catch(() => {});
    if (target) await rm(dst, { force: true });
    throw err;
  } finally {
    await source.close();
  }
}

async function write(path: string, o: { offset: string; pattern?: string; length?: string; from?: string }): Promise<void> {
  const offset = parseBytes('offset', o.offset);
  let data: Buffer;
  if (o.from !== undefined) {
    if (o.pattern !== undefined || o.length !== undefined) throw bad('use either --from FILE or --pattern with --length');
    data = await readFile(o.from);
  } else {
    if (o.pattern === undefined || o.length === undefined) throw bad('vhdx write needs --pattern 0xNN --length BYTES, or --from FILE');
    const p = parseBytes('pattern', o.pattern);
    if (p > 255) throw bad(`--pattern must be one byte (0x00-0xff), got "${o.pattern}"`);
    data = Buffer.alloc(parseBytes('length', o.length), p);
  }
  const disk = await openDisk(path, { writable: true });
  try {
    if (offset + data.length > disk.size) throw bad(`write of ${data.length} bytes at ${offset} is outside ${path} (virtual size ${disk.size})`);
    await attachChangeTracking(disk);
    await disk.write(data, offset);
  } finally {
    await disk.close();
  }
  out(`wrote ${data.length} bytes at offset ${offset} to ${path}`);
}

async function diff(parent: string, child: string): Promise<void> {
  const info = await readVhdxInfo(child);
  if (info.type !== 'differencing') throw bad(`${child} is not a differencing disk`);
  // Opening resolves and checks the chain; the named parent must be the resolved one.
  const disk = await openDisk(child);
  const resolved = (disk as unknown as { parentInfo?: { resolvedPath?: string } }).parentInfo?.resolvedPath;
  await disk.close();
  if (!existsSync(parent)) throw new HvError('ERR_NOT_FOUND', `${parent} does not exist`, { target: parent });
  if (!resolved || realpathSync(resolved) !== realpathSync(parent)) {
    throw new HvError('ERR_PARENT', `${child} is a child of ${resolved ?? 'an unresolved parent'}, not of ${parent}`, { target: child });
  }
  const ranges = await differencingChangedRanges(child);
  for (const r of ranges) out(`${r.offset}\t${r.length}`);
  out(`${ranges.length} ranges, ${ranges.reduce((s, r) => s + r.length, 0)} bytes differ from ${parent}`);
}

export function register(program: Command): void {
  const vhdx = program.command('vhdx').description('Inspect, check, convert and modify VHDX and raw disk images');
  vhdx.command('info <file>').description('Show a VHDX file\'s type, sizes, parent and GUIDs').option('--json', 'print JSON')
    .action(async (file: string, o: { json?: boolean }) => {
      const info = await readVhdxInfo(file);
      out(o.json ? JSON.stringify(info, null, 2) : formatInfo(info).join('\n'));
    });
  vhdx.command('check <file>').description('Check a VHDX file\'s structure (exit 0 only when valid)').option('--repair', 'replay a pending log and fix what is provably safe')
    .action(async (file: string, o: { repair?: boolean }) => {
      const r = await checkVhdx(file, { repair: o.repair });
      for (const line of r.repaired) out(`${file}: repaired: ${line}`);
      for (const p of r.problems) out(`${file}: ${p}`);
      if (r.problems.length) process.exitCode = 1;
      else out(`${file}: no problems found`);
    });
  vhdx.command('convert <src> <dst>').description('Convert between raw and VHDX (never overwrites dst)')
    .option('--to <format>', 'vhdx or raw (default from dst extension)').option('--type <type>', 'dynamic or fixed', 'dynamic')
    .option('--block-size <MiB>', 'VHDX block size in MiB (default 32)')
    .action(async (src: string, dst: string, _o: unknown, cmd: Command) => {
      await convert(src, dst, cmd.optsWithGlobals());
      out(`converted ${src} to ${dst}`);
    });
  vhdx.command('diff <parent> <child>').description('List the ranges a differencing child changes relative to its parent').action(diff);
  vhdx.command('merge <child>').description('Merge a differencing child into its parent and delete the child').option('--keep-child', 'keep the child file')
    .action(async (child: string, o: { keepChild?: boolean }) => {
      const r = await mergeDifferencingVhdx(child, { keepChild: o.keepChild });
      out(`merged ${child} into ${r.parentPath}: ${r.changed.length} ranges, ${r.changed.reduce((s, x) => s + x.length, 0)} bytes`);
    });
  vhdx.command('write <disk>').description('Write a byte pattern or a file into a disk (through the chain for a differencing disk)')
    .requiredOption('--offset <bytes>', 'virtual byte offset').option('--pattern <byte>', 'fill byte, e.g. 0xcd')
    .option('--length <bytes>', 'bytes to write with --pattern').option('--from <file>', 'write this file\'s contents')
    .action(async (disk: string, o: { offset: string; pattern?: string; length?: string; from?: string }) => write(disk, o));
}
