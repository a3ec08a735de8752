// A Backend held in memory, for tests and for dry runs that must see their own writes.
// Same contract as every other backend (test/repo/backend-suite.ts proves it).

import { HvError, throwIfAborted } from '../errors.ts';
import type { Backend, FileType, Handle, LoadOptions, ObjectInfo, ObjectWriter, SaveData, SaveOptions } from './backend.ts';
import { handleString } from './backend.ts';
import { checkHandle, joinData, sliceRange } from './backend-util.ts';

export class MemoryBackend implements Backend {
  readonly location: string;
  readonly #objects = new Map<string, Buffer>();

  constructor(location = 'memory:') {
    this.location = location;
  }

  async save(signal: AbortSignal | undefined, h: Handle, data: SaveData, opts: SaveOptions = {}): Promise<void> {
    throwIfAborted(signal);
    checkHandle(h);
    const key = keyOf(h);
    if (!opts.overwrite && this.#objects.has(key)) {
      throw new HvError('ERR_ALREADY_EXISTS', `save ${handleString(h)}: object already exists`, { target: handleString(h) });
    }
    this.#objects.set(key, Buffer.from(joinData(data)));
  }

  async openWriter(signal: AbortSignal | undefined, h: Handle): Promise<ObjectWriter> {
    throwIfAborted(signal);
    checkHandle(h);
    let parts: Buffer[] | undefined = [];
    return {
      write: async (data) => {
        if (!parts) throw new HvError('ERR_INTERNAL', `write ${handleString(h)} after commit or abort`);
        parts.push(Buffer.from(data));
      },
      commit: async () => {
        if (!parts) throw new HvError('ERR_INTERNAL', `commit ${handleString(h)} twice, or after abort`);
        const data = parts;
        parts = undefined;
        await this.save(signal, h, data);
      },
      abort: async () => {
        parts = undefined;
      },
    };
  }

  async load(signal: AbortSignal | undefined, h: Handle, opts: LoadOptions = {}): Promise<Buffer> {
    throwIfAborted(signal);
    checkHandle(h);
    const buf = this.#objects.get(keyOf(h));
    if (!buf) throw notFound(h);
    return Buffer.from(sliceRange(buf, h, opts));
  }

  async stat(signal: AbortSignal | undefined, h: Handle): Promise<ObjectInfo> {
    throwIfAborted(signal);
    checkHandle(h);
    const buf = this.#objects.get(keyOf(h));
    if (!buf) throw notFound(h);
    return { name: h.name, size: buf.length };
  }

  async remove(signal: AbortSignal | undefined, h: Handle): Promise<void> {
    throwIfAborted(signal);
    checkHandle(h);
    this.#objects.delete(keyOf(h));
  }

  async *list(signal: AbortSignal | undefined, type: FileType): AsyncIterable<ObjectInfo> {
    const prefix = `${type}/`;
    for (const [key, buf] of [...this.#objects]) {
      throwIfAborted(signal);
      if (key.startsWith(prefix)) yield { name: key.slice(prefix.length), size: buf.length };
    }
  }

  async *listNames(signal: AbortSignal | undefined, type: FileType): AsyncIterable<string> {
    for await (const o of this.list(signal, type)) yield o.name;
  }

  isNotFound(err: unknown): boolean {
    return err instanceof HvError && err.code === 'ERR_NOT_FOUND';
  }

  isPermanent(err: unknown): boolean {
    return err instanceof HvError && err.code !== 'ERR_IO';
  }

  isReadOnly(): boolean {
    return false;
  }

  async close(): Promise<void> {}
}

function keyOf(h: Handle): string {
  return `${h.type}/${h.name}`;
}

function notFound(h: Handle): HvError {
  return new HvError('ERR_NOT_FOUND', `load ${handleString(h)}: object does not exist`, { target: handleString(h) });
}
