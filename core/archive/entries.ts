// Names of the entries on an archive medium, and the safety rule every name read back
// must pass: an entry is a relative '/'-separated path inside the medium, so a hostile
// or damaged tar can never make an extractor write outside the folder it was given.

import { HvError } from '../errors.ts';

export const LABEL_ENTRY = 'HVBACKUP-LABEL.json';
export const README_ENTRY = 'README.txt';
export const TRAILER_ENTRY = 'HVBACKUP-END.json';

/** Repository object types that travel on media, under the same prefix as in the repository. */
export type ObjectEntryType = 'config' | 'keys' | 'manifests' | 'chunks';

export interface ObjectEntryName {
  type: ObjectEntryType;
  /** Object name within its type ('config' for the config object). */
  name: string;
  /** 1-based part number and part count when the object is split across media; 1 of 1 otherwise. */
  part: number;
  parts: number;
}

export function objectEntryName(type: ObjectEntryType, name: string, part = 1, parts = 1): string {
  const base = type === 'config' ? 'config' : `${type}/${name}`;
  return parts === 1 ? base : `${base}.part${part}of${parts}`;
}

const OBJECT_RE = /^(?:(config)|(keys|manifests|chunks)\/([0-9a-f]{8,128}))(?:\.part([1-9]\d*)of([1-9]\d*))?$/;

/** Refuses names that could leave the destination: absolute, drive letters, backslashes, `..`. */
export function assertSafeEntryName(entryName: string, medium: string): void {
  const bad =
    entryName.length === 0 ? 'is empty'
    : entryName.includes('\\') ? 'contains a backslash'
    : entryName.startsWith('/') ? 'is an absolute path'
    : /^[A-Za-z]:/.test(entryName) ? 'starts with a drive letter'
    : entryName.includes('\0') ? 'contains a NUL character'
    : entryName.split('/').some((s) => s === '..') ? "contains '..'"
    : undefined;
  if (bad) {
    throw new HvError('ERR_CORRUPT', `medium ${medium}: entry name ${JSON.stringify(entryName)} ${bad} and would escape the destination; refusing to read this medium`, {
      target: medium, data: { entry: entryName },
    });
  }
}

/** Parses an object entry name; undefined for the label, README and trailer; throws for anything else. */
export function parseEntryName(entryName: string, medium: string): ObjectEntryName | undefined {
  assertSafeEntryName(entryName, medium);
  if (entryName === LABEL_ENTRY || entryName === README_ENTRY || entryName === TRAILER_ENTRY) return undefined;
  const m = OBJECT_RE.exec(entryName);
  const part = m?.[4] === undefined ? 1 : Number(m[4]);
  const parts = m?.[5] === undefined ? 1 : Number(m[5]);
  if (!m || part > parts || (parts === 1 && m[4] !== undefined)) {
    throw new HvError('ERR_CORRUPT', `medium ${medium}: unexpected entry ${JSON.stringify(entryName)} (not written by HVBackup)`, {
      target: medium, data: { entry: entryName },
    });
  }
  return m[1] ? { type: 'config', name: 'config', part, parts } : { type: m[2] as ObjectEntryType, name: m[3]!, part, parts };
}

/** Bytes a ustar entry with `length` bytes of data takes in the tar stream. */
export function tarEntrySize(length: number): number {
  return 512 + Math.ceil(length / 512) * 512;
}
