// Restore a restore point from archive media alone (the repository is gone): the media
// become a read-only repository (MediaBackend), so decryption and chunk verification are
// the repository's own; disks are written slice by slice, zero slices left unwritten.

import { promises as fsp } from 'node:fs';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { HvError } from '../errors.ts';
import { log, progress, type OperationContext } from '../progress.ts';
import { namedChunks } from '../repo/manifest.ts';
import { pointChunks } from '../repo/manifest-chunks.ts';
import type { ChunkRef, ConfigFileManifest, DiskManifest, RestorePointManifest } from '../repo/manifest-types.ts';
import { Repository } from '../repo/repository.ts';
import { restoreDisk } from '../restore/disk-restore.ts';
import { objectIndex } from './catalog.ts';
import { catalogFromMedia, mediaBackend } from './media-set.ts';
import type { MediaBackend } from './media-backend.ts';
import type { ScannedMedium } from './scan.ts';
import { manifestSets } from './sealed-points.ts';

export interface MediaRestoreRequest {
  vmName: string;
  point?: string;
  to: string;
  password?: string;
}

export interface MediaRestoreSummary {
  pointId: string;
  vmName: string;
  createdAt: string;
  directory: string;
  disks: { key: string; path: string; bytes: number }[];
  /** Media the restore needed, in the order it asks for them. */
  mediaNeeded: string[];
}

export async function openMediaRepository(scanned: ScannedMedium[], password: string | undefined, signal?: AbortSignal, ctx?: OperationContext): Promise<{ repo: Repository; backend: MediaBackend }> {
  const backend = mediaBackend(scanned);
  const repo = await Repository.open(backend, { password, signal, onWarning: (w) => log(ctx, 'warning', w, backend.location) });
  return { repo, backend };
}

export async function choosePoint(repo: Repository, vmName: string, point: string | undefined, signal?: AbortSignal): Promise<RestorePointManifest> {
  if (point && point !== 'latest') {
    const m = await repo.loadManifest(await repo.resolveManifestId(point, signal), signal);
    if (m.vm.name.toLowerCase() !== vmName.toLowerCase()) throw new HvError('ERR_NOT_FOUND', `restore point ${point} on the media belongs to VM ${m.vm.name}, not ${vmName}`, { target: point });
    return m;
  }
  const [latest] = await repo.findRestorePoints({ vmName, latest: true }, signal);
  if (!latest) throw new HvError('ERR_NOT_FOUND', `the media hold no restore point of VM ${vmName}`, { target: vmName });
  return repo.loadManifest(latest.id, signal);
}

/**
 * Media holding the manifest and every chunk of `m` (its segments, then the chunks they
 * list, read from the media), in pool order: what an operator must insert.
 */
export async function mediaNeededFor(scanned: ScannedMedium[], backend: MediaBackend, repo: Repository, m: RestorePointManifest, signal?: AbortSignal): Promise<string[]> {
  const need = new Set<string>();
  const add = (type: 'chunks' | 'manifests', name: string) => {
    const parts = backend.partsOf({ type, name });
    if (!parts) throw new HvError('ERR_NOT_FOUND', `<${type}/${name}> of restore point ${m.id} is not on the given media; give every medium of the pool`, { target: name });
    for (const p of parts) need.add(p.medium);
  };
  add('manifests', m.id);
  for (const id of namedChunks(m)) add('chunks', id);
  for (const id of await pointChunks(repo, m, signal)) add('chunks', id);
  const order = catalogFromMedia(scanned).media.map((x) => x.id);
  return order.filter((id) => need.has(id));
}

export async function restoreFromMedia(ctx: OperationContext, scanned: ScannedMedium[], req: MediaRestoreRequest): Promise<MediaRestoreSummary> {
  const { signal } = ctx;
  const { repo, backend } = await openMediaRepository(scanned, req.password, signal, ctx);
  try {
    const m = await choosePoint(repo, req.vmName, req.point, signal);
    // Read the copies the point's own export relied on (its set and the sets before it), so a
    // restore asks for the fewest media; copies written later are the fallback.
    const cat = catalogFromMedia(scanned);
    // Media of an encrypted repository list no points in their trailers: the set is the one carrying the manifest.
    const set = cat.points.find((p) => p.id === m.id)?.set ?? manifestSets(scanned).get(m.id);
    if (set) backend.prefer(objectIndex(cat, set));
    const mediaNeeded = await mediaNeededFor(scanned, backend, repo, m, signal);
    for (const id of mediaNeeded) log(ctx, 'info', `insert medium ${id} (${basename(scanned.find((s) => s.label.mediumId === id)!.source)})`, id);
    const dir = resolve(req.to);
    await fsp.mkdir(dir, { recursive: true });
    const disks: MediaRestoreSummary['disks'] = [];
    for (const d of m.disks) disks.push({ key: d.key, path: await restoreOneDisk(ctx, repo, m, d, dir), bytes: d.virtualSize });
    for (const f of m.configFiles) await restoreConfigFile(ctx, repo, f, dir);
    return { pointId: m.id, vmName: m.vm.name, createdAt: m.createdAt, directory: dir, disks, mediaNeeded };
  } finally {
    await repo.close();
  }
}

/** The restore engine's disk writer over the media-backed repository; a partial file never carries the final name. */
async function restoreOneDisk(ctx: OperationContext, repo: Repository, m: RestorePointManifest, d: DiskManifest, dir: string): Promise<string> {
  if (d.fileName.includes('/')) throw new HvError('ERR_CORRUPT', `restore point ${m.id} names a disk file ${JSON.stringify(d.fileName)} that is not a plain file name; refusing`, { target: d.fileName });
  const path = safeJoin(dir, d.fileName);
  await refuseExisting(path);
  const partial = `${path}.partial`;
  await fsp.rm(partial, { force: true });
  let done = 0;
  try {
    await restoreDisk(repo, d, partial, { pointId: m.id, signal: ctx.signal, onBytes: (n) => progress(ctx, { activity: 'restore from media', target: d.fileName, done: (done += n), total: d.virtualSize }) });
    await moveNoClobber(partial, path);
  } finally {
    await fsp.rm(partial, { force: true });
  }
  return path;
}

async function restoreConfigFile(ctx: OperationContext, repo: Repository, f: ConfigFileManifest, dir: string): Promise<void> {
  const path = safeJoin(join(dir, 'config'), f.path);
  await fsp.mkdir(dirname(path), { recursive: true });
  const fh = await fsp.open(path, 'wx');
  try {
    await fh.truncate(f.size);
    await writeSlices(ctx, repo, f.path, f.chunks, repo.chunkSize, f.size, async (buf, off) => { await fh.write(buf, 0, buf.length, off); });
  } finally {
    await fh.close();
  }
}

async function writeSlices(ctx: OperationContext, repo: Repository, what: string, chunks: ChunkRef[], chunkSize: number, size: number, write: (buf: Buffer, off: number) => Promise<void>): Promise<void> {
  const slices = chunks.map((id, i) => ({ id, i })).filter((s): s is { id: string; i: number } => s.id !== null);
  let done = 0;
  const it = repo.readChunks(slices.map((s) => s.id), { signal: ctx.signal });
  for (const s of slices) {
    const next = await it.next();
    if (next.done) throw new HvError('ERR_INTERNAL', `chunk stream ended early for ${what}`);
    const expected = Math.min(chunkSize, size - s.i * chunkSize);
    if (next.value.data.length !== expected) throw new HvError('ERR_CORRUPT', `chunk ${s.id} of ${what} holds ${next.value.data.length} bytes, the manifest expects ${expected}`, { target: s.id });
    await write(next.value.data, s.i * chunkSize);
    done += expected;
    progress(ctx, { activity: 'restore from media', target: what, done, total: size });
  }
  progress(ctx, { activity: 'restore from media', target: what, completed: true });
}

/** A name from a manifest, joined under `dir`; refuses anything that would land outside it. */
export function safeJoin(dir: string, rel: string): string {
  const p = resolve(dir, rel);
  if (rel.includes('\\') || /^[A-Za-z]:/.test(rel) || rel.startsWith('/') || !p.startsWith(dir + sep)) {
    throw new HvError('ERR_CORRUPT', `restore point names a file ${JSON.stringify(rel)} outside the destination ${dir}; refusing`, { target: rel });
  }
  return p;
}

async function moveNoClobber(from: string, to: string): Promise<void> {
  try {
    await fsp.link(from, to);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new HvError('ERR_ALREADY_EXISTS', `${to} already exists; not overwriting it`, { target: to });
    throw err;
  }
}

async function refuseExisting(path: string): Promise<void> {
  if (await fsp.stat(path).then(() => true, () => false)) throw new HvError('ERR_ALREADY_EXISTS', `${path} already exists; restore to an empty folder`, { target: path });
}
