// Positioned I/O on a FileHandle that never returns short: reads past EOF are zeros
// (a VHDX block may end beyond a sparse file's end), writes loop until done. Large
// transfers go as parallel 4 MiB pieces. Shared by RawDisk and the VHDX file layer.
import type { FileHandle } from 'node:fs/promises';

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

const PIECE = 4 * 1024 * 1024;
const PARALLEL = 4;

/** Run `fn` over [0,length) in 4 MiB pieces, four at a time (libuv's pool has four threads). */
async function inPieces(length: number, fn: (off: number, len: number) => Promise<void>): Promise<void> {
  if (length <= PIECE) return fn(0, length);
  let next = 0;
  const worker = async () => {
    while (next < length) {
      const off = next;
      next += PIECE;
      await fn(off, Math.min(PIECE, length - off));
    }
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL, Math.ceil(length / PIECE)) }, worker));
}

/** Large reads as parallel 4 MiB preads: overlaps copies out of the page cache on several cores. */
export async function preadParallel(fh: FileHandle, buf: Buffer, bufOffset: number, length: number, position: number): Promise<void> {
  await inPieces(length, (o, l) => preadFully(fh, buf, bufOffset + o, l, position + o));
}

export async function pwriteParallel(fh: FileHandle, buf: Buffer, position: number): Promise<void> {
  await inPieces(buf.length, (o, l) => pwriteFully(fh, buf.subarray(o, o + l), position + o));
}
