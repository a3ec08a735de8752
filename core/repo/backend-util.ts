// Checks shared by every backend, so they all refuse the same bad names and ranges.

import { HvError } from '../errors.ts';
import type { FileType, Handle, LoadOptions, SaveData } from './backend.ts';
import { handleString } from './backend.ts';

export const FILE_TYPES: readonly FileType[] = ['config', 'keys', 'locks', 'chunks', 'packs', 'manifests', 'points', 'index', 'catalog', 'repairs', 'tables'];

// Names become file names and object keys: keep them to a portable alphabet, so a name
// can never climb out of its folder or differ by case only on Windows shares.
const NAME = /^[0-9a-z][0-9a-z._-]{0,127}$/;

export function checkHandle(h: Handle): void {
  if (!FILE_TYPES.includes(h.type)) {
    throw new HvError('ERR_INVALID_ARGUMENT', `unknown object type "${String(h.type)}"`, { target: handleString(h) });
  }
  if (h.type === 'config' ? h.name !== 'config' : !NAME.test(h.name) || h.name.includes('..')) {
    throw new HvError('ERR_INVALID_ARGUMENT', `invalid object name ${JSON.stringify(h.name)} for ${h.type}`, { target: handleString(h) });
  }
  if (h.type === 'chunks' && h.name.length < 3) {
    throw new HvError('ERR_INVALID_ARGUMENT', `chunk name ${JSON.stringify(h.name)} is too short`, { target: handleString(h) });
  }
}

/** Validate a load range and return it as [start, end) within an object of `size` bytes. */
export function rangeOf(size: number, h: Handle, opts: LoadOptions): [number, number] {
  const offset = opts.offset ?? 0;
  if (!Number.isSafeInteger(offset) || offset < 0 || (opts.length !== undefined && (!Number.isSafeInteger(opts.length) || opts.length < 0))) {
    throw new HvError('ERR_INVALID_ARGUMENT', `load ${handleString(h)}: invalid range offset=${opts.offset} length=${opts.length}`, { target: handleString(h) });
  }
  const end = opts.length === undefined ? size : offset + opts.length;
  if (offset > size || end > size) {
    throw new HvError('ERR_INVALID_ARGUMENT', `load ${handleString(h)}: range ${offset}+${end - offset} is beyond the object's ${size} bytes`, { target: handleString(h) });
  }
  return [offset, end];
}

export function sliceRange(buf: Buffer, h: Handle, opts: LoadOptions): Buffer {
  const [start, end] = rangeOf(buf.length, h, opts);
  return buf.subarray(start, end);
}

/** SaveData as one buffer (for stores that keep objects whole in memory). */
export function joinData(data: SaveData): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.concat(data as Buffer[]);
}

export function dataLength(data: SaveData): number {
  return Buffer.isBuffer(data) ? data.length : (data as readonly Buffer[]).reduce((a, b) => a + b.length, 0);
}
