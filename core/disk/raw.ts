// A raw image file as a Disk: virtual offset = file offset. extents() reports holes
// (SEEK_DATA is not reachable from Node, so the whole file is one data extent).
import { open, type FileHandle } from 'node:fs/promises';
import { HvError } from '../errors.ts';
import { Disk, type DiskExtent, type DiskGeometry } from './disk.ts';
import { openDiskFile, preadLarge, pwriteLarge } from './file-io.ts';

export class RawDisk extends Disk {
  readonly #fh: FileHandle;
  readonly #geometry: DiskGeometry;

  private constructor(path: string, fh: FileHandle, size: number, readOnly: boolean, sectorSize: number) {
    super(path, readOnly);
    this.#fh = fh;
    this.#geometry = { size, logicalSectorSize: sectorSize, physicalSectorSize: sectorSize };
  }

  static async open(path: string, opts: { writable?: boolean; sectorSize?: number } = {}): Promise<RawDisk> {
    const fh = await openDiskFile(path, !!opts.writable);
    const size = (await fh.stat()).size;
    return new RawDisk(path, fh, size, !opts.writable, opts.sectorSize ?? 512);
  }

  /** Create (refusing to overwrite) a sparse raw image of `size` bytes, opened for writing. */
  static async create(path: string, size: number): Promise<RawDisk> {
    let fh: FileHandle;
    try {
      fh = await open(path, 'wx+');
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw new HvError(e.code === 'EEXIST' ? 'ERR_ALREADY_EXISTS' : 'ERR_IO', `cannot create ${path}: ${e.code === 'EEXIST' ? 'the file already exists' : e.message}`, { target: path, cause: err });
    }
    await fh.truncate(size);
    return new RawDisk(path, fh, size, false, 512);
  }

  get geometry(): DiskGeometry {
    return this.#geometry;
  }

  protected async _read(buffer: Buffer, offset: number): Promise<void> {
    // The size is fixed at open, so a read inside it never meets EOF unless someone truncated the file.
    await preadLarge(this.#fh, buffer, 0, buffer.length, offset);
  }

  protected async _write(buffer: Buffer, offset: number): Promise<void> {
    await pwriteLarge(this.#fh, buffer, offset);
  }

  protected async _zero(offset: number, length: number): Promise<void> {
    const chunk = Buffer.alloc(Math.min(length, 4 * 1024 * 1024));
    for (let o = 0; o < length; o += chunk.length) await this._write(chunk.subarray(0, Math.min(chunk.length, length - o)), offset + o);
  }

  protected async _flush(): Promise<void> {
    await this.#fh.sync();
  }

  protected async _close(): Promise<void> {
    await this.#fh.close();
  }

  protected async _extents(): Promise<DiskExtent[]> {
    return this.size === 0 ? [] : [{ offset: 0, length: this.size, kind: 'data' }];
  }
}
