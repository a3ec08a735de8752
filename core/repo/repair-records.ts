// Repair records: what `verify --repair` took out of the index, and which restore points name
// those chunks. Content addressing makes damage contagious: a chunk the index lists is never
// stored again, and an incremental reuses the previous point's chunk ids without reading
// them, so one rotten blob would break every later point too. Repair drops the damaged
// chunks from the index, so the next backup that meets their bytes stores them again (under
// the same id, which heals the older points as well), and leaves this record so that the next
// backup of a VM whose newest point names one of them reads its disks whole (a scan) instead
// of reusing that point's ids. Objects under repairs/ are written once (random names) and
// removed by GC once no point they name is left.

import { HvError } from '../errors.ts';
import { decodeObject, encodeObject } from './object-format.ts';

export const REPAIR_RECORD_VERSION = 1;

export interface RepairRecord {
  version: number;
  /** When the repair ran (ISO 8601). */
  repairedAt: string;
  /** The chunk ids taken out of the index: missing, or stored bytes that do not decode to their id. */
  chunks: string[];
  /** Restore points whose manifest or segments name one of those chunks. */
  points: string[];
}

const HEX64 = /^[0-9a-f]{64}$/;

/** The stored payload (before seal): JSON, compressed like every other object. */
export function encodeRepairRecord(r: RepairRecord): Buffer {
  return encodeObject(Buffer.from(JSON.stringify(r)));
}

/** Inverse of encodeRepairRecord; `what` names the object in errors. */
export function decodeRepairRecord(payload: Buffer, what: string): RepairRecord {
  let r: unknown;
  try {
    r = JSON.parse(decodeObject(payload, what).toString('utf8'));
  } catch (err) {
    if (err instanceof HvError) throw err;
    throw new HvError('ERR_CORRUPT', `${what}: not a repair record (${(err as Error).message})`, { target: what });
  }
  const o = r as Partial<RepairRecord>;
  if (typeof o !== 'object' || o === null || o.version !== REPAIR_RECORD_VERSION) {
    throw new HvError('ERR_CORRUPT', `${what}: repair record version ${JSON.stringify(o?.version)} is not supported (this HVBackup reads ${REPAIR_RECORD_VERSION})`, { target: what });
  }
  const ids = (v: unknown) => Array.isArray(v) && v.every((x) => typeof x === 'string' && HEX64.test(x));
  if (typeof o.repairedAt !== 'string' || !ids(o.chunks) || !ids(o.points)) {
    throw new HvError('ERR_CORRUPT', `${what}: repair record lacks repairedAt, or its chunks or points are not lists of 64-digit hex ids`, { target: what });
  }
  return { version: o.version, repairedAt: o.repairedAt, chunks: o.chunks!, points: o.points! };
}

/**
 * The points whose VMs must scan at their next backup, from every record; `unreadable` names
 * the records that did not load (then every VM scans: a scan is always right, a reuse of a
 * damaged id is not).
 */
export interface RescanSet {
  points: Map<string, { repairedAt: string; chunks: number }>;
  unreadable: { name: string; problem: string }[];
}
