// Test helpers: every file under a folder, which of them contain a byte pattern, bit flips.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}

export function filesContaining(dir: string, needle: string | Buffer): string[] {
  return filesUnder(dir).filter((f) => readFileSync(f).includes(needle));
}

/** Flip one bit of a file in place. */
export function flipBit(file: string, byteOffset: number, bit = 0): void {
  const buf = readFileSync(file);
  buf[byteOffset]! ^= 1 << bit;
  writeFileSync(file, buf);
}
