// A Backend that hands every call to another: the base of wrappers that change a few calls
// (dry run, fault injection in tests) and pass the rest through. openReader and localFile are
// passed on only when the inner backend has them; openWriter never is (a dry run must not write
// through it): a subclass that can write opts in.

import type { Backend, FileType, Handle, LoadOptions, ObjectInfo, ObjectReader, SaveData, SaveOptions } from './backend.ts';

export class ForwardingBackend implements Backend {
  readonly location: string;
  protected readonly inner: Backend;
  readonly openReader?: (signal: AbortSignal | undefined, h: Handle) => Promise<ObjectReader>;
  readonly localFile?: (h: Handle) => string;

  constructor(inner: Backend) {
    this.inner = inner;
    this.location = inner.location;
    if (inner.openReader) this.openReader = (signal, h) => inner.openReader!(signal, h);
    if (inner.localFile) this.localFile = (h) => inner.localFile!(h);
  }

  save(signal: AbortSignal | undefined, h: Handle, data: SaveData, opts?: SaveOptions): Promise<void> {
    return this.inner.save(signal, h, data, opts);
  }

  remove(signal: AbortSignal | undefined, h: Handle): Promise<void> {
    return this.inner.remove(signal, h);
  }

  load(signal: AbortSignal | undefined, h: Handle, opts?: LoadOptions): Promise<Buffer> {
    return this.inner.load(signal, h, opts);
  }

  stat(signal: AbortSignal | undefined, h: Handle): Promise<ObjectInfo> {
    return this.inner.stat(signal, h);
  }

  list(signal: AbortSignal | undefined, type: FileType): AsyncIterable<ObjectInfo> {
    return this.inner.list(signal, type);
  }

  listNames(signal: AbortSignal | undefined, type: FileType): AsyncIterable<string> {
    return this.inner.listNames(signal, type);
  }

  isNotFound(err: unknown): boolean {
    return this.inner.isNotFound(err);
  }

  isPermanent(err: unknown): boolean {
    return this.inner.isPermanent(err);
  }

  isReadOnly(err: unknown): boolean {
    return this.inner.isReadOnly(err);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
