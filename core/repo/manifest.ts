// Encoding, decoding and validation of restore-point manifests. Pure code: the stored
// object is codec.seal('manifests', encodeObject(encodeManifest(m))) — see repository.ts.

import { HvError } from '../errors.ts';
import type { ChunkRef, DiskManifest, RestorePointManifest, RestorePointSummary } from './manifest-types.ts';
import { MANIFEST_VERSION, MANIFEST_VERSIONS } from './manifest-types.ts';
import { MAX_SEGMENT_SLICES, segmentCount, sliceCount } from './manifest-segments.ts';

const HEX64 = /^[0-9a-f]{64}$/;

export function isRestorePointId(id: unknown): id is string {
  return typeof id === 'string' && HEX64.test(id);
}

export function encodeManifest(m: RestorePointManifest): Buffer {
  const problem = manifestProblem(m);
  if (problem) throw new HvError('ERR_INVALID_ARGUMENT', `manifest ${m?.id ?? '?'}: ${problem}`, { target: m?.id });
  return Buffer.from(JSON.stringify(m), 'utf8');
}

/** `what` names the object in errors, e.g. "<manifests/ab12…>". */
export function decodeManifest(buf: Buffer, what: string, expectedId?: string): RestorePointManifest {
  let raw: unknown;
  try {
    raw = JSON.parse(buf.toString('utf8'));
  } catch (err) {
    throw new HvError('ERR_CORRUPT', `${what}: manifest is not valid JSON (${(err as Error).message})`, { target: what, cause: err });
  }
  const m = raw as RestorePointManifest;
  if (typeof m === 'object' && m !== null && typeof m.version === 'number' && m.version > MANIFEST_VERSION) {
    throw new HvError('ERR_UNSUPPORTED', `${what}: manifest version ${m.version} is newer than this HVBackup reads (${MANIFEST_VERSION})`, { target: what });
  }
  const problem = manifestProblem(m);
  if (problem) throw new HvError('ERR_CORRUPT', `${what}: invalid manifest: ${problem}`, { target: what });
  if (expectedId !== undefined && m.id !== expectedId) {
    throw new HvError('ERR_CORRUPT', `${what}: manifest says its id is ${m.id}`, { target: what });
  }
  return m;
}

/** First thing wrong with a manifest, or undefined. Checks what restore relies on. */
export function manifestProblem(m: RestorePointManifest): string | undefined {
  if (typeof m !== 'object' || m === null || Array.isArray(m)) return 'not an object';
  if (!MANIFEST_VERSIONS.includes(m.version)) return `version ${String(m.version)} is not one of ${MANIFEST_VERSIONS.join(', ')}`;
  if (!isRestorePointId(m.id)) return 'id is not 64 hex characters';
  if (typeof m.vm !== 'object' || m.vm === null || typeof m.vm.name !== 'string' || typeof m.vm.id !== 'string') return 'vm.name / vm.id missing';
  if (typeof m.createdAt !== 'string' || typeof m.finishedAt !== 'string') return 'createdAt / finishedAt missing';
  if (m.parentId !== undefined && !isRestorePointId(m.parentId)) return 'parentId is not 64 hex characters';
  if (!Array.isArray(m.disks) || !Array.isArray(m.configFiles)) return 'disks / configFiles missing';
  for (const d of m.disks) {
    const p = diskProblem(d, m.version);
    if (p) return `disk ${JSON.stringify(d?.key)}: ${p}`;
  }
  for (const f of m.configFiles) {
    if (typeof f?.path !== 'string' || !Number.isSafeInteger(f.size) || !chunkRefsOk(f.chunks)) return `config file ${JSON.stringify(f?.path)}: bad path, size or chunks`;
  }
  if (typeof m.stats !== 'object' || m.stats === null) return 'stats missing';
  return undefined;
}

function diskProblem(d: DiskManifest, version: number): string | undefined {
  if (typeof d !== 'object' || d === null) return 'not an object';
  if (typeof d.key !== 'string' || typeof d.fileName !== 'string') return 'key / fileName missing';
  if (d.format !== 'vhdx' && d.format !== 'raw') return `unknown format ${JSON.stringify(d.format)}`;
  if (!Number.isSafeInteger(d.virtualSize) || d.virtualSize < 0) return 'bad virtualSize';
  if (!Number.isSafeInteger(d.chunkSize) || d.chunkSize <= 0) return 'bad chunkSize';
  const slices = sliceCount(d.virtualSize, d.chunkSize);
  if (version === 1) {
    if (d.segments !== undefined) return 'a version 1 manifest has no segments';
    if (!chunkRefsOk(d.chunks)) return 'chunks must be 64-hex ids or null';
    if (d.chunks.length !== slices) return `has ${d.chunks.length} chunks, virtualSize ${d.virtualSize} / chunkSize ${d.chunkSize} needs ${slices}`;
    return undefined;
  }
  if (d.chunks !== undefined) return `a version ${version} manifest lists chunks in segments, not inline`;
  if (!Number.isSafeInteger(d.segmentSlices) || d.segmentSlices! < 1 || d.segmentSlices! > MAX_SEGMENT_SLICES) return `bad segmentSlices ${String(d.segmentSlices)}`;
  if (!chunkRefsOk(d.segments)) return 'segments must be 64-hex ids or null';
  const need = segmentCount(slices, d.segmentSlices!);
  if (d.segments.length !== need) return `has ${d.segments.length} segments, ${slices} slices of ${d.segmentSlices} per segment need ${need}`;
  if (!Number.isSafeInteger(d.dataSlices) || d.dataSlices! < 0 || d.dataSlices! > slices) return `bad dataSlices ${String(d.dataSlices)}`;
  return undefined;
}

function chunkRefsOk(refs: ChunkRef[] | undefined): refs is ChunkRef[] {
  return Array.isArray(refs) && refs.every((r) => r === null || isRestorePointId(r));
}

/**
 * Every distinct chunk id the manifest itself names: version-1 disk chunks, config-file
 * chunks and version-2 segment ids. NOT every chunk the point needs: the chunks its segments
 * list are read from the repository (manifest-chunks.ts pointChunks).
 */
export function namedChunks(m: RestorePointManifest): Set<string> {
  const ids = new Set<string>();
  for (const d of m.disks) for (const c of d.chunks ?? d.segments ?? []) if (c) ids.add(c);
  for (const f of m.configFiles) for (const c of f.chunks) if (c) ids.add(c);
  return ids;
}

/** The summary of a manifest: everything but the chunk lists. */
export function summarize(m: RestorePointManifest): RestorePointSummary {
  return {
    ...m,
    disks: m.disks.map(({ chunks, segments, ...d }) => { void chunks; void segments; return d; }),
    configFiles: m.configFiles.map(({ chunks, ...f }) => { void chunks; return f; }),
  };
}

export function encodeSummary(s: RestorePointSummary): Buffer {
  return Buffer.from(JSON.stringify(s), 'utf8');
}

/** Inverse of encodeSummary; checks what listing relies on (id, VM, times). */
export function decodeSummary(buf: Buffer, what: string, expectedId: string): RestorePointSummary {
  let s: RestorePointSummary;
  try {
    s = JSON.parse(buf.toString('utf8')) as RestorePointSummary;
  } catch (err) {
    throw new HvError('ERR_CORRUPT', `${what}: restore point summary is not valid JSON (${(err as Error).message})`, { target: what, cause: err });
  }
  return checkSummary(s, what, expectedId);
}

function checkSummary(s: RestorePointSummary, what: string, expectedId: string): RestorePointSummary {
  const ok = typeof s === 'object' && s !== null && s.id === expectedId && typeof s.vm?.id === 'string' && typeof s.vm?.name === 'string'
    && typeof s.createdAt === 'string' && typeof s.finishedAt === 'string' && Array.isArray(s.disks) && Array.isArray(s.configFiles);
  if (!ok) throw new HvError('ERR_CORRUPT', `${what}: restore point summary is missing fields or names another point`, { target: what });
  return s;
}

/** Many points' summaries in one object (points/set-…, repository-format.md "Summaries"). */
export interface SummarySet {
  /** Every point listed when it was written: readers need no older set. */
  complete: boolean;
  points: RestorePointSummary[];
}

export const SUMMARY_SET_VERSION = 1;

export function encodeSummarySet(set: SummarySet): Buffer {
  return Buffer.from(JSON.stringify({ version: SUMMARY_SET_VERSION, complete: set.complete, points: set.points }), 'utf8');
}

/** Inverse of encodeSummarySet; each summary checked as decodeSummary checks one (its id a restore point id). */
export function decodeSummarySet(buf: Buffer, what: string): SummarySet {
  let v: { version?: unknown; complete?: unknown; points?: unknown };
  try {
    v = JSON.parse(buf.toString('utf8')) as typeof v;
  } catch (err) {
    throw new HvError('ERR_CORRUPT', `${what}: summary set is not valid JSON (${(err as Error).message})`, { target: what, cause: err });
  }
  if (typeof v !== 'object' || v === null || v.version !== SUMMARY_SET_VERSION || typeof v.complete !== 'boolean' || !Array.isArray(v.points)) {
    throw new HvError('ERR_CORRUPT', `${what}: not a version ${SUMMARY_SET_VERSION} summary set`, { target: what });
  }
  const points = (v.points as RestorePointSummary[]).map((s) => checkSummary(s, what, isRestorePointId(s?.id) ? s.id : '(not a restore point id)'));
  return { complete: v.complete, points };
}

/** The disk of point `m` named `disk` (key or file name); the only one when `disk` is undefined and the point has one. Restore, PointDisk and dump pick disks with it. */
export function pointDisk<D extends { key: string; fileName: string }>(m: { id: string; vm: { name: string }; disks: D[] }, disk: string | undefined): D {
  const list = m.disks.map((x) => `${x.key} ${x.fileName}`).join(', ');
  if (disk === undefined) {
    if (m.disks.length === 1) return m.disks[0]!;
    throw new HvError('ERR_INVALID_ARGUMENT', `restore point ${m.id.slice(0, 12)} of ${m.vm.name} has ${m.disks.length} disks (${list || 'none'}); name one`, { target: m.id });
  }
  const d = m.disks.find((x) => x.key === disk || x.fileName === disk);
  if (!d) throw new HvError('ERR_NOT_FOUND', `restore point ${m.id.slice(0, 12)} of ${m.vm.name} has no disk ${disk} (disks: ${list || 'none'})`, { target: disk });
  return d;
}
