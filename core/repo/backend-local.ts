// Backend over a local folder or a share path (a UNC path is just a path).
// Layout: <repo>/config, <repo>/<type>/<name>, chunks and packs fanned out as <type>/<2 hex>/<name>,
// temporary files only in <repo>/tmp/. Writes are durable and atomic:
//   create-only: temp file, fsync, link() into place (EEXIST is the atomic "already there"),
//                unlink temp, fsync the folder;
//   overwrite:   temp file, fsync, rename() over the old one, fsync the folder.

import { randomBytes } from 'node:crypto';
import { constants as fsc, promises as fsp, type Dirent } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { HvError, throwIfAborted, wrapError } from '../errors.ts';
import type { Backend, FileType, Handle, LoadOptions, ObjectInfo, ObjectReader, ObjectWriter, SaveData, SaveOptions } from './backend.ts';
import { handleString } from './backend.ts';
import { checkHandle, rangeOf } from './backend-util.ts';
import { DIRECT_ALIGN, DirectWriter, isPageAligned, pwriteLarge } from '../disk/file-io.ts';

const TEMP_MAX_AGE_MS = 60 * 60 * 1000;
/** Pack buffers from this size are written with direct I/O where the file system has it. */
const DIRECT_MIN = 1024 * 1024;

export class LocalBackend implements Backend {
  readonly location: string;
  readonly #madeDirs = new Set<string>();
  #noDirect = false;

  constructor(path: string) {
    this.location = path;
  }

  /** The file an object lives in. */
  pathOf(h: Handle): string {
    checkHandle(h);
    if (h.type === 'config') return join(this.location, 'config');
    if (h.type === 'chunks' || h.type === 'packs') return join(this.location, h.type, h.name.slice(0, 2), h.name);
    return join(this.location, h.type, h.name);
  }

  async save(signal: AbortSignal | undefined, h: Handle, data: SaveData, opts: SaveOptions = {}): Promise<void> {
    throwIfAborted(signal);
    const target = this.pathOf(h);
    const durable = opts.durable !== false;
    const tmp = await this.#writeTemp(h, data, durable);
    try {
      await this.#place(h, tmp, target, opts.overwrite === true);
    } catch (err) {
      await fsp.rm(tmp, { force: true });
      throw isHvErr(err) ? err : wrapError(err, `save ${handleString(h)}`, handleString(h));
    }
    if (durable) await syncDir(dirname(target));
  }

  /** A temp file in tmp/ written in order, linked into place (create-only) by commit() as save() does. */
  async openWriter(signal: AbortSignal | undefined, h: Handle): Promise<ObjectWriter> {
    throwIfAborted(signal);
    const target = this.pathOf(h);
    const tmpDir = join(this.location, 'tmp');
    await this.#ensureDir(tmpDir);
    const tmp = join(tmpDir, `${h.type}-${randomBytes(8).toString('hex')}`);
    const fh = await fsp.open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o600).catch((err: unknown) => {
      throw wrapError(err, `save ${handleString(h)}: writing temporary file`, tmp);
    });
    let pos = 0;
    let open = true;
    const close = async () => {
      if (!open) return;
      open = false;
      await fh.close().catch(() => {});
    };
    return {
      write: async (data) => {
        throwIfAborted(signal);
        await pwriteLarge(fh, data, pos).catch((err: unknown) => { throw wrapError(err, `save ${handleString(h)}: writing temporary file`, tmp); });
        pos += data.length;
      },
      commit: async () => {
        try {
          await fh.sync();
        } catch (err) {
          throw wrapError(err, `save ${handleString(h)}: writing temporary file`, tmp);
        } finally {
          await close();
        }
        try {
          await this.#place(h, tmp, target, false);
        } catch (err) {
          await fsp.rm(tmp, { force: true });
          throw isHvErr(err) ? err : wrapError(err, `save ${handleString(h)}`, handleString(h));
        }
        await syncDir(dirname(target));
      },
      abort: async () => {
        await close();
        await fsp.rm(tmp, { force: true });
      },
    };
  }

  localFile(h: Handle): string {
    return this.pathOf(h);
  }

  async #place(h: Handle, tmp: string, target: string, overwrite: boolean): Promise<void> {
    const dir = dirname(target);
    await this.#ensureDir(dir);
    try {
      if (overwrite) await fsp.rename(tmp, target);
      else await this.#linkExclusive(h, tmp, target);
    } catch (err) {
      // The folder was removed behind our back (someone tidied empty chunk folders): make it again.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || !this.#madeDirs.delete(dir)) throw err;
      await this.#ensureDir(dir);
      if (overwrite) await fsp.rename(tmp, target);
      else await this.#linkExclusive(h, tmp, target);
    }
  }

  async #linkExclusive(h: Handle, tmp: string, target: string): Promise<void> {
    try {
      await fsp.link(tmp, target);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') {
        throw new HvError('ERR_ALREADY_EXISTS', `save ${handleString(h)}: object already exists (${target})`, { target: handleString(h), cause: err });
      }
      // Some shares refuse hard links. Fall back to an existence check and rename:
      // not atomic against a concurrent writer of the same name, but objects of one
      // name have the same content (content-addressed or random names).
      if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'ENOSYS' && code !== 'EXDEV') throw err;
      if (await exists(target)) throw new HvError('ERR_ALREADY_EXISTS', `save ${handleString(h)}: object already exists (${target})`, { target: handleString(h) });
      await fsp.rename(tmp, target);
      return;
    }
    await fsp.unlink(tmp);
  }

  async #writeTemp(h: Handle, data: SaveData, durable: boolean): Promise<string> {
    const tmpDir = join(this.location, 'tmp');
    await this.#ensureDir(tmpDir);
    const tmp = join(tmpDir, `${h.type}-${randomBytes(8).toString('hex')}`);
    let fh: FileHandle | undefined;
    try {
      fh = await fsp.open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o600);
      const parts = Buffer.isBuffer(data) ? [data] : data;
      if (!(await this.#writeDirect(fh, tmp, parts))) await writeAll(fh, parts);
      if (durable) await fh.sync();
    } catch (err) {
      await fh?.close().catch(() => {});
      fh = undefined;
      await fsp.rm(tmp, { force: true });
      throw wrapError(err, `save ${handleString(h)}: writing temporary file`, tmp);
    } finally {
      await fh?.close();
    }
    return tmp;
  }

  /**
   * Write a large object past the page cache when its first part is page-aligned memory (a
   * pack buffer, pack-writer.ts): that part's whole pages go out with O_DIRECT as they are, the
   * rest buffered. Buffered, the kernel's copy into the page cache (copy_folio_from_iter) was
   * 11 % of the bench backup's CPU. False (the caller writes buffered) for other data, or when
   * this file system or platform has no direct I/O; fsync follows as for every write.
   */
  async #writeDirect(fh: FileHandle, tmp: string, parts: readonly Buffer[]): Promise<boolean> {
    const first = parts[0];
    if (!first || first.length < DIRECT_MIN || !isPageAligned(first) || this.#noDirect || (fsc as Record<string, number | undefined>).O_DIRECT === undefined) return false;
    const bulk = first.length - (first.length % DIRECT_ALIGN);
    const dw = await DirectWriter.open(tmp);
    try {
      if (!dw.active) {
        this.#noDirect = true;
        return false;
      }
      await dw.write(fh, first.subarray(0, bulk), 0);
      let pos = bulk;
      for (const t of [first.subarray(bulk), ...parts.slice(1)]) {
        await pwriteLarge(fh, t, pos);
        pos += t.length;
      }
      return true;
    } finally {
      await dw.close();
    }
  }

  async #ensureDir(dir: string): Promise<void> {
    if (this.#madeDirs.has(dir)) return;
    await fsp.mkdir(dir, { recursive: true }).catch((err) => { throw wrapError(err, `create folder ${dir}`, dir); });
    this.#madeDirs.add(dir);
  }

  async load(signal: AbortSignal | undefined, h: Handle, opts: LoadOptions = {}): Promise<Buffer> {
    const r = await this.openReader(signal, h);
    try {
      const [start, end] = rangeOf(r.size, h, opts);
      const into = opts.into && opts.into.length >= end - start ? opts.into.subarray(0, end - start) : undefined;
      return await r.read(start, end - start, into);
    } finally {
      await r.close();
    }
  }

  async openReader(signal: AbortSignal | undefined, h: Handle): Promise<ObjectReader> {
    throwIfAborted(signal);
    const file = this.pathOf(h);
    let fh: FileHandle;
    try {
      fh = await fsp.open(file, 'r');
    } catch (err) {
      throw this.#ioError(err, 'load', h, file);
    }
    let size: number;
    try {
      size = (await fh.stat()).size;
    } catch (err) {
      await fh.close();
      throw this.#ioError(err, 'load', h, file);
    }
    return {
      size,
      read: async (offset, length, into) => {
        const [start, end] = rangeOf(size, h, { offset, length });
        // A buffer of its own (or the caller's), so it can be transferred to a worker without a copy.
        const buf = into?.length === end - start ? into : Buffer.allocUnsafeSlow(end - start);
        let done = 0;
        while (done < buf.length) {
          const { bytesRead } = await fh.read(buf, done, buf.length - done, start + done).catch((err: unknown) => { throw this.#ioError(err, 'load', h, file); });
          if (bytesRead === 0) throw new HvError('ERR_CORRUPT', `load ${handleString(h)}: file ${file} shrank while reading`, { target: handleString(h) });
          done += bytesRead;
        }
        return buf;
      },
      close: () => fh.close(),
    };
  }

  async stat(signal: AbortSignal | undefined, h: Handle): Promise<ObjectInfo> {
    throwIfAborted(signal);
    const file = this.pathOf(h);
    try {
      return { name: h.name, size: (await fsp.stat(file)).size };
    } catch (err) {
      throw this.#ioError(err, 'stat', h, file);
    }
  }

  async remove(signal: AbortSignal | undefined, h: Handle): Promise<void> {
    throwIfAborted(signal);
    const file = this.pathOf(h);
    try {
      await fsp.unlink(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw this.#ioError(err, 'remove', h, file);
    }
  }

  async *list(signal: AbortSignal | undefined, type: FileType): AsyncIterable<ObjectInfo> {
    if (type === 'config') {
      try {
        yield { name: 'config', size: (await fsp.stat(join(this.location, 'config'))).size };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw wrapError(err, 'list config', this.location);
      }
      return;
    }
    const dir = join(this.location, type);
    const dirs = type === 'chunks' || type === 'packs' ? (await readdirOrEmpty(dir)).filter((d) => /^[0-9a-z]{2}$/.test(d)).map((d) => join(dir, d)) : [dir];
    for (const d of dirs) {
      const names = await readdirOrEmpty(d);
      // Stat in batches: one at a time leaves the thread pool idle on a big chunks/ folder.
      for (let i = 0; i < names.length; i += LIST_STAT_BATCH) {
        throwIfAborted(signal);
        const batch = await Promise.all(names.slice(i, i + LIST_STAT_BATCH).map((name) => statFile(d, name, type)));
        for (const o of batch) if (o) yield o;
      }
    }
  }

  async *listNames(signal: AbortSignal | undefined, type: FileType): AsyncIterable<string> {
    if (type === 'config') {
      for await (const o of this.list(signal, type)) yield o.name;
      return;
    }
    const dir = join(this.location, type);
    const dirs = type === 'chunks' || type === 'packs' ? (await readdirOrEmpty(dir)).filter((d) => /^[0-9a-z]{2}$/.test(d)).map((d) => join(dir, d)) : [dir];
    for (const d of dirs) {
      throwIfAborted(signal);
      for (const e of await direntsOrEmpty(d)) {
        // The entry's type comes with the directory read (Node stats only where the file
        // system does not say); a link is followed, as list()'s stat does.
        if (e.isFile() || (e.isSymbolicLink() && (await statFile(d, e.name, type)))) yield e.name;
      }
    }
  }

  /** Remove temporary files a killed writer left behind (older than an hour, so live writers keep theirs). */
  async cleanStaleTemp(now = Date.now()): Promise<number> {
    const dir = join(this.location, 'tmp');
    let removed = 0;
    for (const name of await readdirOrEmpty(dir)) {
      const file = join(dir, name);
      const st = await fsp.stat(file).catch(() => undefined);
      if (st?.isFile() && now - st.mtimeMs > TEMP_MAX_AGE_MS) {
        await fsp.rm(file, { force: true });
        removed++;
      }
    }
    return removed;
  }

  isNotFound(err: unknown): boolean {
    return (err instanceof HvError && err.code === 'ERR_NOT_FOUND') || (err as NodeJS.ErrnoException)?.code === 'ENOENT';
  }

  /** EROFS from the file system, as thrown or beneath the errors that name the object. */
  isReadOnly(err: unknown): boolean {
    for (let e = err as { code?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 4; e = e.cause as typeof e, depth++) {
      if (e.code === 'EROFS') return true;
    }
    return false;
  }

  isPermanent(err: unknown): boolean {
    if (err instanceof HvError) return err.code !== 'ERR_IO';
    const code = (err as NodeJS.ErrnoException)?.code;
    return code === 'ENOENT' || code === 'EACCES' || code === 'EPERM' || code === 'EINVAL' || code === 'ENAMETOOLONG';
  }

  async close(): Promise<void> {}

  #ioError(err: unknown, op: string, h: Handle, file: string): HvError {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      return new HvError('ERR_NOT_FOUND', `${op} ${handleString(h)}: ${file} does not exist`, { target: handleString(h), cause: err });
    }
    return wrapError(err, `${op} ${handleString(h)} (${file})`, handleString(h));
  }
}

const LIST_STAT_BATCH = 32;

/** Write parts back to back from offset 0 with gathered writes (no copy into one buffer). */
async function writeAll(fh: FileHandle, parts: readonly Buffer[]): Promise<void> {
  let pos = 0;
  let i = 0;
  let skip = 0;
  while (i < parts.length && parts[i]!.length === 0) i++;
  while (i < parts.length) {
    const batch = parts.slice(i, i + 512);
    if (skip > 0) batch[0] = batch[0]!.subarray(skip);
    const { bytesWritten } = await fh.writev(batch, pos);
    if (bytesWritten === 0) throw new HvError('ERR_IO', 'gathered write made no progress');
    pos += bytesWritten;
    // Advance past what was written; a short write resumes inside a part.
    let left = bytesWritten;
    while (left > 0 && i < parts.length) {
      const rest = parts[i]!.length - skip;
      if (left >= rest) {
        left -= rest;
        i++;
        skip = 0;
      } else {
        skip += left;
        left = 0;
      }
    }
    while (i < parts.length && parts[i]!.length === 0) i++;
  }
}

async function statFile(dir: string, name: string, type: FileType): Promise<ObjectInfo | undefined> {
  try {
    const st = await fsp.stat(join(dir, name));
    return st.isFile() ? { name, size: st.size } : undefined;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw wrapError(err, `list ${type}`, join(dir, name));
  }
}

function isHvErr(err: unknown): err is HvError {
  return err instanceof HvError;
}

async function exists(path: string): Promise<boolean> {
  return fsp.stat(path).then(() => true, () => false);
}

async function readdirOrEmpty(dir: string): Promise<string[]> {
  try {
    return await fsp.readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw wrapError(err, `list ${dir}`, dir);
  }
}

async function direntsOrEmpty(dir: string): Promise<Dirent[]> {
  try {
    return await fsp.readdir(dir, { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw wrapError(err, `list ${dir}`, dir);
  }
}

/** Make a rename/link in `dir` durable. Windows cannot open folders for fsync; NTFS journals the entry. */
async function syncDir(dir: string): Promise<void> {
  if (process.platform === 'win32') return;
  const fh = await fsp.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
