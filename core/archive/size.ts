// Media capacities and record sizes as people write them: "4M", "100G", "256K", "LTO-8".
// Binary multiples (K = 1024), because tape block sizes and our test media are powers of two.

import { HvError } from '../errors.ts';

const UNITS: Record<string, number> = { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 };

/** Native (uncompressed) capacities of LTO generations, in bytes (decimal, as the vendors state them). */
export const LTO_CAPACITY: Record<string, number> = {
  'LTO-5': 1.5e12, 'LTO-6': 2.5e12, 'LTO-7': 6e12, 'LTO-8': 12e12, 'LTO-9': 18e12,
};

export function parseSize(text: string | number, what = 'size'): number {
  if (typeof text === 'number') {
    if (Number.isSafeInteger(text) && text > 0) return text;
    throw new HvError('ERR_INVALID_ARGUMENT', `${what} must be a positive whole number of bytes, not ${text}`);
  }
  const lto = LTO_CAPACITY[text.trim().toUpperCase()];
  if (lto !== undefined) return lto;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*$/i.exec(text);
  if (!m) throw new HvError('ERR_INVALID_ARGUMENT', `${what} "${text}" is not a size (use e.g. 4M, 100G, 2T or LTO-8)`);
  const bytes = Math.floor(Number(m[1]) * UNITS[m[2]!.toUpperCase()]!);
  if (!(bytes > 0)) throw new HvError('ERR_INVALID_ARGUMENT', `${what} "${text}" must be more than zero bytes`);
  return bytes;
}

export function formatSize(bytes: number): string {
  for (const u of ['T', 'G', 'M', 'K']) {
    const f = UNITS[u]!;
    if (bytes >= f && bytes % f === 0) return `${bytes / f}${u}`;
  }
  return String(bytes);
}
