// A restore point's disk, or a byte range of it, as raw bytes into a sink (`hvbackup dump`): a
// pipe into dd, ssh, qemu-img or sha256sum with no VHDX written first. The bytes come through
// PointDisk in order, so its read-ahead keeps the chunk reads ahead of the sink, and the next
// piece is read while the sink takes the one before.

import { open, unlink, type FileHandle } from 'node:fs/promises';
import { HvError, throwIfAborted, wrapError } from '../errors.ts';
import { isAllZero } from '../repo/object-format.ts';
import { progress, type OperationContext } from '../progress.ts';
import type { Repository } from '../repo/index.ts';
import type { RestorePointManifest } from '../repo/manifest-types.ts';
import { pointDisk } from '../repo/manifest.ts';
import type { DiskManifest } from '../repo/manifest-types.ts';
import { PointDisk } from './point-disk.ts';

/** Bytes per read and per write to the sink; two such buffers take turns. */
export const DUMP_PIECE_BYTES = 4 * 1024 * 1024;

export interface DumpOptions {
  repo: Repository;
  manifest: RestorePointManifest;
  /** Key or file name; may be left out for a one-disk point. */
  disk?: string;
  /** First byte (default 0). */
  offset?: number;
  /** Bytes (default: to the end of the disk). */
  length?: number;
  /** Takes one piece; the buffer is not reused until the promise settles. */
  write(buf: Buffer): Promise<void>;
}

export interface DumpResult {
  pointId: string;
  vmName: string;
  disk: string;
  offset: number;
  bytes: number;
}

/** The disk and the byte range a dump of point `m` writes (offset default 0, length default to the disk's end), checked. */
export function dumpRange(m: RestorePointManifest, disk: string | undefined, offset = 0, length?: number): { d: DiskManifest; offset: number; length: number } {
  const d = pointDisk(m, disk);
  const len = length ?? Math.max(0, d.virtualSize - offset);
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(len) || offset < 0 || len < 0 || offset + len > d.virtualSize) {
    throw new HvError('ERR_INVALID_ARGUMENT', `bytes ${offset}..${offset + len} are not within disk ${d.key} of restore point ${m.id.slice(0, 12)}, which has ${d.virtualSize}`, { target: d.key });
  }
  return { d, offset, length: len };
}

export async function dumpDisk(ctx: OperationContext, opts: DumpOptions): Promise<DumpResult> {
  const m = opts.manifest;
  const { d, offset, length } = dumpRange(m, opts.disk, opts.offset, opts.length);
  // A shared lock, as restore takes: garbage collection must not delete a pack half-way through.
  const lock = await opts.repo.lock({ exclusive: false, operation: `dump ${m.vm.name} ${d.key}`, signal: ctx.signal, reader: true });
  try {
    const disk = await PointDisk.open(opts.repo, m, d.key);
    try {
      const bufs = [Buffer.allocUnsafe(Math.min(DUMP_PIECE_BYTES, length)), Buffer.allocUnsafe(Math.min(DUMP_PIECE_BYTES, length))];
      const writing: (Promise<void> | undefined)[] = [undefined, undefined];
      let done = 0;
      try {
        for (let at = offset, k = 0; at < offset + length; k ^= 1) {
          throwIfAborted(ctx.signal);
          await writing[k];
          const n = Math.min(DUMP_PIECE_BYTES, offset + length - at);
          const b = bufs[k]!.subarray(0, n);
          await disk.read(b, at);
          at += n;
          writing[k] = opts.write(b).then(() => {
            done += n;
            progress(ctx, { activity: 'dump', target: m.vm.name, status: `reading ${d.fileName}`, done, total: length });
          });
          writing[k]!.catch(() => {}); // awaited when its buffer comes round again, or below
        }
        await Promise.all(writing);
      } catch (err) {
        // The sink is not left writing from a buffer after we return (the first failure is the one reported).
        await Promise.allSettled(writing);
        throw err;
      }
      progress(ctx, { activity: 'dump', target: m.vm.name, status: 'done', done, total: length, completed: true });
      return { pointId: m.id, vmName: m.vm.name, disk: d.key, offset, bytes: done };
    } finally {
      await disk.close();
    }
  } finally {
    await lock.release();
  }
}

/** Granularity at which a file sink leaves zeros unwritten (holes in the new file). */
export const SPARSE_BYTES = 64 * 1024;

export interface FileSink {
  write(buf: Buffer): Promise<void>;
  /** Flush the file to the device and close it. */
  finish(): Promise<void>;
  /** Close and delete the file (the dump failed): nothing half-written stays under its name. */
  abort(): Promise<void>;
}

/**
 * A new raw image file of `length` bytes for dumpDisk to write into, in order: created only if
 * it does not exist (never over a file), extended to its length first, so the 64 KiB runs of
 * zeros left unwritten read as zeros and stay holes where the file system has them. For
 * `dump --to`: PowerShell 5.1 turns a native command's stdout into text, so a redirect there
 * would not give the disk's bytes.
 */
export async function fileSink(path: string, length: number): Promise<FileSink> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'wx');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EEXIST') throw new HvError('ERR_ALREADY_EXISTS', `${path} already exists; dump never writes over a file`, { target: path, cause: err });
    throw wrapError(err, `create ${path}`, path);
  }
  let at = 0;
  const fail = (err: unknown, what: string) => wrapError(err, `${what} ${path}`, path);
  try {
    await fh.truncate(length);
  } catch (err) {
    await fh.close().catch(() => {});
    await unlink(path).catch(() => {});
    throw fail(err, 'extend');
  }
  return {
    write: async (buf) => {
      // Taken before the first await: dumpDisk has the next piece's write under way before this one ends.
      const base = at;
      at += buf.length;
      try {
        for (let off = 0; off < buf.length;) {
          // A run of blocks that are not all zeros, written at once.
          while (off < buf.length && isAllZero(buf.subarray(off, off + SPARSE_BYTES))) off += SPARSE_BYTES;
          let end = off;
          while (end < buf.length && !isAllZero(buf.subarray(end, end + SPARSE_BYTES))) end += SPARSE_BYTES;
          end = Math.min(end, buf.length);
          for (let done = off; done < end;) done += (await fh.write(buf, done, end - done, base + done)).bytesWritten;
          off = end;
        }
      } catch (err) {
        throw fail(err, 'write');
      }
    },
    finish: async () => {
      try {
        await fh.sync();
      } catch (err) {
        throw fail(err, 'flush');
      } finally {
        await fh.close();
      }
    },
    abort: async () => {
      await fh.close().catch(() => {});
      await unlink(path).catch(() => {});
    },
  };
}
