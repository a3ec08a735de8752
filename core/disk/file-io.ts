// Positioned I/O on a FileHandle that never returns short: reads past EOF are zeros
// (a VHDX block may end beyond a sparse file's end), writes loop until done.
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
