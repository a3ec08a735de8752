// Decoding of one 512-byte tar header block (POSIX ustar, as tar-stream and GNU tar write
// it), for walking a media file by position without reading entry data. Pure: no I/O.
// Offsets are those of POSIX.1-1988 ustar (tar-stream's headers.js uses the same).

import { HvError } from '../errors.ts';

const NAME = 0;
const SIZE = 124;
const CHECKSUM = 148;
const TYPEFLAG = 156;
const LINKNAME = 157;
const MAGIC = 257;
const PREFIX = 345;

export interface TarHeader {
  name: string;
  size: number;
  /** '0' (or NUL) regular file, '5' directory, 'x'/'g' pax, 'L' GNU long name, ... */
  typeflag: string;
  linkname: string;
}

function cString(block: Buffer, start: number, length: number): string {
  const end = block.indexOf(0, start);
  return block.toString('utf8', start, end < 0 || end > start + length ? start + length : end);
}

function octal(block: Buffer, start: number, length: number, what: string): number {
  if (block[start]! & 0x80) {
    // GNU base-256 for sizes of 8 GiB and more.
    let v = 0;
    for (let i = start + 1; i < start + length; i++) v = v * 256 + block[i]!;
    return v;
  }
  const text = cString(block, start, length).trim();
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) throw new Error(`${what} field is not octal`);
  return parseInt(text, 8);
}

export function isZeroBlock(block: Buffer): boolean {
  for (let i = 0; i < 512; i++) if (block[i] !== 0) return false;
  return true;
}

/** Decodes a header block; throws ERR_CORRUPT (naming `medium` and the offset) when it is not one. */
export function decodeTarHeader(block: Buffer, medium: string, offset: number): TarHeader {
  const fail = (why: string) => new HvError('ERR_CORRUPT', `medium ${medium}: no valid tar header at byte ${offset} (${why})`, { target: medium, data: { offset } });
  if (block.length !== 512) throw fail('short block');
  let sum = 8 * 32;
  for (let i = 0; i < 512; i++) if (i < CHECKSUM || i >= CHECKSUM + 8) sum += block[i]!;
  let stored: number;
  let size: number;
  try {
    stored = octal(block, CHECKSUM, 8, 'checksum');
    size = octal(block, SIZE, 12, 'size');
  } catch (e) {
    throw fail((e as Error).message);
  }
  if (stored !== sum) throw fail('checksum mismatch');
  const magic = block.toString('latin1', MAGIC, MAGIC + 6);
  let name = cString(block, NAME, 100);
  if (magic === 'ustar\0') {
    const prefix = cString(block, PREFIX, 155);
    if (prefix) name = `${prefix}/${name}`;
  }
  const tf = block[TYPEFLAG]!;
  return { name, size, typeflag: tf === 0 ? '0' : String.fromCharCode(tf), linkname: cString(block, LINKNAME, 100) };
}
