// A Backend wrapper that reads through to the real store but writes nothing: saves and
// removals are recorded instead. PowerShell -WhatIf runs the real engine over it, so
// what it reports is exactly what a real run would write (after restic's dryrun backend).

import { throwIfAborted } from '../errors.ts';
import type { FileType, Handle, SaveData, SaveOptions } from './backend.ts';
import { ForwardingBackend } from './backend-forwarding.ts';
import { checkHandle, dataLength } from './backend-util.ts';

export interface PlannedWrite {
  op: 'save' | 'remove';
  type: FileType;
  name: string;
  /** Bytes that would be written (0 for removals). */
  size: number;
}

export class DryRunBackend extends ForwardingBackend {
  readonly planned: PlannedWrite[] = [];

  override async save(signal: AbortSignal | undefined, h: Handle, data: SaveData, opts?: SaveOptions): Promise<void> {
    throwIfAborted(signal);
    checkHandle(h);
    void opts;
    this.planned.push({ op: 'save', type: h.type, name: h.name, size: dataLength(data) });
  }

  override async remove(signal: AbortSignal | undefined, h: Handle): Promise<void> {
    throwIfAborted(signal);
    checkHandle(h);
    this.planned.push({ op: 'remove', type: h.type, name: h.name, size: 0 });
  }
}
