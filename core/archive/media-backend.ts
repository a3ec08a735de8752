// A read-only Backend over archive media files, so the ordinary Repository (config,
// keys, decryption, chunk verification) and the restore engine work on media alone when
// the repository is lost. Objects split across media are joined from their parts by
// positional reads; nothing is copied to disk first.

import { promises as fsp } from 'node:fs';
import { HvError } from '../errors.ts';
import type { Backend, FileType, Handle, LoadOptions, ObjectInfo } from '../repo/backend.ts';
import { handleString } from '../repo/backend.ts';
import type { ObjectPart } from './catalog.ts';

export class MediaBackend implements Backend {
  readonly location: string;
  readonly #index: Map<string, ObjectPart[]>;
  readonly #paths: Map<string, string>;
  #preferred = new Map<string, ObjectPart[]>();
  /** Media ids in the order their data was first read (what a tape operator would be asked for). */
  readonly mediaRead: string[] = [];

  /** `paths`: medium id → media file. `index`: object key ("chunks/<id>", "config") → parts. */
  constructor(location: string, index: Map<string, ObjectPart[]>, paths: Map<string, string>) {
    this.location = location;
    this.#index = index;
    this.#paths = paths;
  }

  #key(h: Handle): string {
    return h.type === 'config' ? 'config' : `${h.type}/${h.name}`;
  }

  partsOf(h: Handle): ObjectPart[] | undefined {
    return this.#preferred.get(this.#key(h)) ?? this.#index.get(this.#key(h));
  }

  /** Read these copies where an object has several (e.g. the pool as of one point's export). */
  prefer(index: Map<string, ObjectPart[]>): void {
    this.#preferred = index;
  }

  async load(signal: AbortSignal | undefined, h: Handle, opts: LoadOptions = {}): Promise<Buffer> {
    signal?.throwIfAborted();
    const parts = this.partsOf(h);
    if (!parts) throw notFound(h, this.location);
    const total = parts.reduce((s, p) => s + p.length, 0);
    const start = opts.offset ?? 0;
    const end = opts.length === undefined ? total : start + opts.length;
    if (start < 0 || end > total || start > end) throw new HvError('ERR_INVALID_ARGUMENT', `load ${handleString(h)}: range ${start}..${end} is outside its ${total} bytes`, { target: handleString(h) });
    const out = Buffer.allocUnsafe(end - start);
    let base = 0;
    for (const p of parts) {
      const from = Math.max(start, base);
      const to = Math.min(end, base + p.length);
      if (from < to) await this.#read(p, from - base, out, from - start, to - from);
      base += p.length;
    }
    return out;
  }

  async #read(p: ObjectPart, at: number, out: Buffer, outOff: number, length: number): Promise<void> {
    const path = this.#paths.get(p.medium);
    if (!path) throw new HvError('ERR_NOT_FOUND', `${p.name} is on medium ${p.medium}, which was not given; insert medium ${p.medium}`, { target: p.medium, data: { medium: p.medium } });
    if (!this.mediaRead.includes(p.medium)) this.mediaRead.push(p.medium);
    const fh = await fsp.open(path, 'r');
    try {
      const { bytesRead } = await fh.read(out, outOff, length, p.offset + at);
      if (bytesRead !== length) throw new HvError('ERR_CORRUPT', `medium ${path}: ${p.name} is cut short (${bytesRead} of ${length} bytes)`, { target: path });
    } finally {
      await fh.close();
    }
  }

  async stat(_signal: AbortSignal | undefined, h: Handle): Promise<ObjectInfo> {
    const parts = this.partsOf(h);
    if (!parts) throw notFound(h, this.location);
    return { name: h.name, size: parts.reduce((s, p) => s + p.length, 0) };
  }

  async *list(_signal: AbortSignal | undefined, type: FileType): AsyncIterable<ObjectInfo> {
    for (const [key, parts] of this.#index) {
      const slash = key.indexOf('/');
      const t = slash < 0 ? key : key.slice(0, slash);
      if (t === type) yield { name: slash < 0 ? key : key.slice(slash + 1), size: parts.reduce((s, p) => s + p.length, 0) };
    }
  }

  async *listNames(signal: AbortSignal | undefined, type: FileType): AsyncIterable<string> {
    for await (const o of this.list(signal, type)) yield o.name;
  }

  async save(_signal: AbortSignal | undefined, h: Handle): Promise<void> {
    throw new HvError('ERR_UNSUPPORTED', `archive media are read-only (cannot save ${handleString(h)})`, { target: this.location });
  }

  async remove(_signal: AbortSignal | undefined, h: Handle): Promise<void> {
    throw new HvError('ERR_UNSUPPORTED', `archive media are read-only (cannot remove ${handleString(h)})`, { target: this.location });
  }

  isNotFound(err: unknown): boolean {
    return err instanceof HvError && err.code === 'ERR_NOT_FOUND' && err.data.missingObject === true;
  }

  isPermanent(err: unknown): boolean {
    return err instanceof HvError && err.code !== 'ERR_IO';
  }

  /** Media take no writes at all. */
  isReadOnly(): boolean {
    return true;
  }

  async close(): Promise<void> {}
}

function notFound(h: Handle, location: string): HvError {
  return new HvError('ERR_NOT_FOUND', `${handleString(h)} is not on any of the given media (${location})`, { target: handleString(h), data: { missingObject: true } });
}
