// One interface for every kind of virtual disk (raw image, fixed/dynamic/differencing
// VHDX), after balena's file-disk: public methods check bounds and state, subclasses
// implement the protected primitives. Every later feature (backup, restore, instant
// recovery, file-level restore) takes a Disk and does not care what is underneath.

import { HvError, wrapError } from '../errors.ts';

export interface ByteRange {
  offset: number;
  length: number;
}

/**
 * A run of the virtual disk. `zero` ranges are known to read as zeros without reading
 * (unallocated/ZERO blocks); `data` ranges may hold data. Extents are sorted, adjacent,
 * and cover [0, size) exactly.
 */
export interface DiskExtent extends ByteRange {
  kind: 'data' | 'zero';
}

export type WriteListener = (offset: number, length: number) => void;

export interface DiskGeometry {
  /** Virtual size in bytes. */
  size: number;
  logicalSectorSize: number;
  physicalSectorSize: number;
}

export abstract class Disk {
  readonly path: string;
  readonly readOnly: boolean;
  #closed = false;
  #listeners: WriteListener[] = [];

  protected constructor(path: string, readOnly: boolean) {
    this.path = path;
    this.readOnly = readOnly;
  }

  abstract get geometry(): DiskGeometry;

  get size(): number {
    return this.geometry.size;
  }

  /** Fill `buffer` with the virtual bytes starting at `offset`. */
  async read(buffer: Buffer, offset: number): Promise<void> {
    this.#checkRange('read', offset, buffer.length);
    if (buffer.length === 0) return;
    await this._read(buffer, offset).catch((err: unknown) => this.#io(err, `read ${buffer.length} bytes at ${offset}`));
  }

  async write(buffer: Buffer, offset: number): Promise<void> {
    await this.#written(buffer, offset, () => this._write(buffer, offset));
  }

  /**
   * write() for a caller that keeps several writes in flight, to disjoint ranges where the disk
   * is already allocated (restore, after VhdxDisk.preallocate): a disk that can runs them side
   * by side (VhdxDisk: payload only; a range over an unallocated block is refused, nothing
   * written); others run them as write() does. Not ordered with each other: overlapping ones
   * land in either order.
   */
  async writeAllocated(buffer: Buffer, offset: number): Promise<void> {
    await this.#written(buffer, offset, () => this._writeAllocated(buffer, offset));
  }

  async #written(buffer: Buffer, offset: number, run: () => Promise<void>): Promise<void> {
    this.#checkWritable('write');
    this.#checkRange('write', offset, buffer.length);
    if (buffer.length === 0) return;
    await run().catch((err: unknown) => this.#io(err, `write ${buffer.length} bytes at ${offset}`));
    for (const l of this.#listeners) l(offset, buffer.length);
  }

  /** Make a range read as zeros (may deallocate whole blocks). */
  async zero(offset: number, length: number): Promise<void> {
    this.#checkWritable('zero');
    this.#checkRange('zero', offset, length);
    if (length === 0) return;
    await this._zero(offset, length).catch((err: unknown) => this.#io(err, `zero ${length} bytes at ${offset}`));
    for (const l of this.#listeners) l(offset, length);
  }

  async flush(): Promise<void> {
    this.#checkOpen('flush');
    if (!this.readOnly) await this._flush().catch((err: unknown) => this.#io(err, 'flush'));
  }

  /**
   * A failure of the file underneath (ENOSPC on a full volume, EIO) as an error naming this
   * disk and what was being done; the layers' own errors (HvError: corrupt metadata, …) already
   * name the file and pass as they are.
   */
  #io(err: unknown, what: string): never {
    if (err instanceof HvError) throw err;
    throw wrapError(err, `${what} of ${this.path}`, this.path);
  }

  /** Which ranges may hold data and which are known zeros, from allocation metadata alone. */
  async extents(): Promise<DiskExtent[]> {
    this.#checkOpen('extents');
    return this._extents();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    try {
      if (!this.readOnly) await this._flush();
    } finally {
      this.#closed = true;
      await this._close();
    }
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Called after every completed write/zero; change tracking hangs off this. */
  addWriteListener(listener: WriteListener): void {
    this.#listeners.push(listener);
  }

  protected abstract _read(buffer: Buffer, offset: number): Promise<void>;
  protected abstract _write(buffer: Buffer, offset: number): Promise<void>;
  protected _writeAllocated(buffer: Buffer, offset: number): Promise<void> {
    return this._write(buffer, offset);
  }
  protected abstract _zero(offset: number, length: number): Promise<void>;
  protected abstract _flush(): Promise<void>;
  protected abstract _close(): Promise<void>;
  protected abstract _extents(): Promise<DiskExtent[]>;

  #checkOpen(op: string): void {
    if (this.#closed) throw new HvError('ERR_INVALID_ARGUMENT', `${op} on closed disk ${this.path}`, { target: this.path });
  }

  #checkWritable(op: string): void {
    this.#checkOpen(op);
    if (this.readOnly) throw new HvError('ERR_INVALID_ARGUMENT', `${op}: ${this.path} is open read-only`, { target: this.path });
  }

  #checkRange(op: string, offset: number, length: number): void {
    this.#checkOpen(op);
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > this.size) {
      throw new HvError('ERR_INVALID_ARGUMENT', `${op} of ${length} bytes at ${offset} is outside ${this.path} (virtual size ${this.size})`, { target: this.path });
    }
  }
}

/** Open, run, and always close (file-disk's withOpenFile). */
export async function withDisk<D extends Disk, T>(open: Promise<D>, fn: (disk: D) => Promise<T>): Promise<T> {
  const disk = await open;
  try {
    return await fn(disk);
  } finally {
    await disk.close();
  }
}
