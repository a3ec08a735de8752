// Reading a disk image's virtual bytes in tests: one place for every test area.
import { openDisk } from '../../core/vhdx/index.ts';
import type { OpenOptions } from '../../core/vhdx/index.ts';

/** `length` virtual bytes of the disk image at `path` from `offset` (the disk opened with `opts` and closed for it). */
export async function readAt(path: string, offset: number, length: number, opts: OpenOptions = {}): Promise<Buffer> {
  const d = await openDisk(path, opts);
  try {
    const b = Buffer.alloc(length);
    await d.read(b, offset);
    return b;
  } finally {
    await d.close();
  }
}

/** Every virtual byte of the disk image at `path` (through its parents, for a differencing disk). */
export async function readWhole(path: string, opts: OpenOptions = {}): Promise<Buffer> {
  const d = await openDisk(path, opts);
  try {
    const b = Buffer.alloc(d.size);
    await d.read(b, 0);
    return b;
  } finally {
    await d.close();
  }
}
