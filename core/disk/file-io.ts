// Positioned I/O on a FileHandle that never returns short: reads past EOF are zeros
// (a VHDX block may end beyond a sparse file's end), writes loop until done. Large
// writes go as 2 MiB pieces. Shared by RawDisk and the VHDX file layer.
import { open, type FileHandle } from 'node:fs/promises';
import { HvError } from '../errors.ts';

/** Read `length` bytes at `position` into `buf` at `bufOffset`; bytes past EOF read as zeros. */
export async function preadFully(fh: FileHandle, buf: Buffer, bufOffset: number, length: number, position: number): Promise<void> {
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(buf, bufOffset + done, length - done, position + done);
    if (bytesRead === 0) {
      buf.fill(0, bufOffset + done, bufOffset + length);
      return;
    }
    done += bytesRead;
  }
}

export async function readAt(fh: FileHandle, position: number, length: number): Promise<Buffer> {
  const b = Buffer.allocUnsafe(length);
  await preadFully(fh, b, 0, length, position);
  return b;
}

export async function pwriteFully(fh: FileHandle, buf: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesWritten } = await fh.write(buf, done, buf.length - done, position + done);
    done += bytesWritten;
  }
}

/**
 * Large writes as a loop of 2 MiB pwrites: measured here, that is several times faster
 * than one huge pwrite (the copy stays in CPU cache) or parallel pwrites to one file
 * (they contend for the inode lock).
 */
const WRITE_PIECE = 2 * 1024 * 1024;

export async function pwriteLarge(fh: FileHandle, buf: Buffer, position: number): Promise<void> {
  for (let o = 0; o < buf.length; o += WRITE_PIECE) {
    await pwriteFully(fh, buf.subarray(o, Math.min(buf.length, o + WRITE_PIECE)), position + o);
  }
}

/** Reads showed no gain from splitting or parallelism; kept as one call for symmetry. */
export async function preadLarge(fh: FileHandle, buf: Buffer, bufOffset: number, length: number, position: number): Promise<void> {
  await preadFully(fh, buf, bufOffset, length, position);
}

/** Open a disk file for reading (or read-write), with an error that names it. */
export async function openDiskFile(path: string, writable: boolean): Promise<FileHandle> {
  try {
    return await open(path, writable ? 'r+' : 'r');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new HvError(e.code === 'ENOENT' ? 'ERR_NOT_FOUND' : 'ERR_IO', `cannot open ${path}: ${e.message}`, { target: path, cause: err });
  }
}
