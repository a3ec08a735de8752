// A Backend wrapper that reads through to the real store but writes nothing: saves and
// removals are recorded instead. PowerShell -WhatIf runs the real engine over it, so
// what it reports is exactly what a real run would write (after restic's dryrun backend).

import { throwIfAborted } from '../errors.ts';
import type { Backend, FileType, Handle, LoadOptions, ObjectInfo, SaveData, SaveOptions } from './backend.ts';
import { checkHandle, dataLength } from './backend-util.ts';

export interface PlannedWrite {
  op: 'save' | 'remove';
  type: FileType;
  name: string;
  /** Bytes that would be written (0 for removals). */
  size: number;
}

export class DryRunBackend implements Backend {
  readonly location: string;
  readonly planned: PlannedWrite[] = [];
  readonly #inner: Backend;

  constructor(inner: Backend) {
    this.#inner = inner;
    this.location = inner.location;
  }

  async save(signal: AbortSignal | undefined, h: Handle, data: SaveData, opts?: SaveOptions): Promise<void> {
    throwIfAborted(signal);
    checkHandle(h);
    void opts;
    this.planned.push({ op: 'save', type: h.type, name: h.name, size: dataLength(data) });
  }

  async remove(signal: AbortSignal | undefined, h: Handle): Promise<void> {
    throwIfAborted(signal);
    checkHandle(h);
    this.planned.push({ op: 'remove', type: h.type, name: h.name, size: 0 });
  }

  load(signal: AbortSignal | undefined, h: Handle, opts?: LoadOptions): Promise<Buffer> {
    return this.#inner.load(signal, h, opts);
  }

  stat(signal: AbortSignal | undefined, h: Handle): Promise<ObjectInfo> {
    return this.#inner.stat(signal, h);
  }

  list(signal: AbortSignal | undefined, type: FileType): AsyncIterable<ObjectInfo> {
    return this.#inner.list(signal, type);
  }

  isNotFound(err: unknown): boolean {
    return this.#inner.isNotFound(err);
  }

  isPermanent(err: unknown): boolean {
    return this.#inner.isPermanent(err);
  }

  close(): Promise<void> {
    return this.#inner.close();
  }
}
