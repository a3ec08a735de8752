// Restore a restore point into a VM folder. Nothing appears under a final name until it
// is complete: disks and config files are written under a hidden staging folder inside
// the destination and moved into place (never over an existing file) at the end, so a
// killed restore leaves no half-valid disk under the final name. The staging folder is named
// with the restoring process's pid and host: the next restore into the same destination
// removes those of processes that are gone (a killed restore's partial disks).

import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { link, mkdir, open, readdir, rm, unlink, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { RestoreResult } from '../api/types.ts';
import { HvError, throwIfAborted, wrapError } from '../errors.ts';
import type { Host } from '../hosts/host.ts';
import type { OperationContext } from '../progress.ts';
import { log, progress } from '../progress.ts';
import type { Repository } from '../repo/index.ts';
import { pointDisk } from '../repo/manifest.ts';
import type { ConfigFileManifest, DiskManifest, RestorePointManifest } from '../repo/manifest-types.ts';
import { hostTag, processAlive } from '../process.ts';
import { restoreDisk, type DamagedRange } from './disk-restore.ts';

export interface RestoreOptions {
  repo: Repository;
  host: Host;
  manifest: RestorePointManifest;
  to: string;
  newName?: string;
  /** Restore only this disk (by key or file name), as a bare disk file in `to`. */
  disk?: string;
  whatIf?: boolean;
  /**
   * Write what loads and zeros where a chunk or segment does not (restoreDisk `damaged`), and
   * say which ranges: status 'partial'. For a point verify says is broken, when the rest of
   * the disk is worth more than nothing. Config files must still load.
   */
  allowDamaged?: boolean;
}

const DISK_DIR = 'Virtual Hard Disks';

function safeName(name: string, what: string): string {
  if (name === '' || name === '.' || name === '..' || /[/\\\0]/.test(name)) {
    throw new HvError('ERR_INVALID_ARGUMENT', `${what} ${JSON.stringify(name)} is not a usable file name`, { target: name });
  }
  return name;
}

function safeRel(rel: string, what: string): string {
  if (rel.startsWith('/') || rel.includes('\\') || rel.split('/').some((p) => p === '..' || p === '')) {
    throw new HvError('ERR_CORRUPT', `${what} path ${JSON.stringify(rel)} would leave the destination folder`, { target: rel });
  }
  return rel;
}

async function syncDir(dir: string): Promise<void> {
  if (process.platform === 'win32') return; // directories cannot be opened for fsync there
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Move a finished file to its final name without ever replacing an existing file. */
async function moveNoClobber(from: string, to: string): Promise<void> {
  await mkdir(dirname(to), { recursive: true });
  try {
    await link(from, to);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new HvError('ERR_ALREADY_EXISTS', `${to} already exists; not overwriting it`, { target: to });
    throw err;
  }
  await unlink(from);
}

export async function restoreVm(ctx: OperationContext, opts: RestoreOptions): Promise<RestoreResult> {
  const m = opts.manifest;
  const to = resolve(opts.to);
  const name = safeName(opts.newName ?? m.vm.name, 'VM name');
  const disks = pickDisks(m, opts.disk);
  const single = opts.disk !== undefined;
  const finalOf = (d: DiskManifest) => (single ? join(to, safeName(d.fileName, 'disk file')) : join(to, DISK_DIR, safeName(d.fileName, 'disk file')));
  const targets = disks.map(finalOf);
  if (!single) targets.push(join(to, 'Virtual Machines', `${name}.json`));
  for (const t of targets) {
    if (existsSync(t)) throw new HvError('ERR_ALREADY_EXISTS', `${t} already exists; restore refuses to overwrite (choose another --to or --name)`, { target: t });
  }
  const result: RestoreResult = { pointId: m.id, vmName: name, directory: to, disks: disks.map((d) => ({ key: d.key, path: finalOf(d), bytes: d.virtualSize })), status: 'planned' };
  if (opts.whatIf) {
    return { ...result, plan: [...disks.map((d) => `restore disk ${d.key} (${d.virtualSize} bytes) to ${finalOf(d)}`), ...(single ? [] : [`write VM config ${targets[targets.length - 1]}${opts.newName ? ' with a new VM id' : ''}`])] };
  }
  // A shared lock, like a backup's: GC rewrites packs and deletes the old ones, so without it a
  // restore could find a chunk's pack gone half-way through. Taken first: refused, it writes nothing.
  const lock = await opts.repo.lock({ exclusive: false, operation: `restore ${m.vm.name}`, signal: ctx.signal, reader: true });
  const staging = join(to, `${STAGING_PREFIX}${process.pid}-${hostTag()}-${randomBytes(6).toString('hex')}`);
  try {
    await mkdir(staging, { recursive: true });
    await removeDeadStaging(ctx, to, staging);
  } catch (err) {
    await lock.release();
    const e = err as NodeJS.ErrnoException;
    throw wrapError(err, `restore to ${to}${e.code === 'EEXIST' || e.code === 'ENOTDIR' ? ' (a file, not a folder)' : ''}`, to);
  }
  try {
    const total = disks.reduce((a, d) => a + (d.dataSlices ?? d.chunks!.filter((c) => c).length) * d.chunkSize, 0);
    let done = 0;
    const staged: string[] = [];
    const damaged: DamagedRange[] | undefined = opts.allowDamaged ? [] : undefined;
    for (const d of disks) {
      throwIfAborted(ctx.signal);
      const p = join(staging, `${d.fileName}`);
      await restoreDisk(opts.repo, d, p, { pointId: m.id, signal: ctx.signal, damaged, onBytes: (n) => progress(ctx, { activity: 'restore', target: m.vm.name, status: `writing ${d.fileName}`, done: (done += n), total }) }).catch((err: unknown) => {
        // A disk that does not fit (ENOSPC), or any other write failure, names the file it was writing.
        throw wrapError(err, `restore disk ${d.key} of ${m.vm.name} to ${finalOf(d)}`, finalOf(d));
      });
      staged.push(p);
    }
    for (const r of damaged ?? []) log(ctx, 'warning', `${r.disk}: bytes ${r.offset}..${r.offset + r.length} written as zeros: ${r.problem}`, m.vm.name);
    const configs = single ? [] : await stageConfigFiles(opts.repo, m.configFiles, staging, ctx.signal).catch((err: unknown) => {
      throw wrapError(err, `restore the config files of ${m.vm.name} to ${to}`, to);
    });
    for (let i = 0; i < disks.length; i++) await moveNoClobber(staged[i]!, finalOf(disks[i]!));
    // The disks were fsynced when closed (restoreDisk); make their new names durable too.
    for (const dir of new Set(disks.map((d) => dirname(finalOf(d))))) await syncDir(dir);
    if (!single) {
      await opts.host.registerRestoredVM({ directory: to, name, configFiles: configs, disks: disks.map((d) => ({ key: d.key, path: finalOf(d) })), newId: opts.newName !== undefined });
    }
    progress(ctx, { activity: 'restore', target: m.vm.name, status: 'done', done, total, completed: true });
    if (damaged && damaged.length > 0) return { ...result, status: 'partial', damaged: damaged.sort((a, b) => (a.disk < b.disk ? -1 : a.disk > b.disk ? 1 : a.offset - b.offset)) };
    return { ...result, status: 'success' };
  } finally {
    await rm(staging, { recursive: true, force: true });
    await lock.release();
  }
}

const STAGING_PREFIX = '.hvbackup-restore-';

/**
 * Staging folders of restores into `to` whose process is gone (killed: nothing under a final
 * name is theirs, only partial disks in the staging folder). Only this host's, whose pids can
 * be checked; older unnamed ones are left, as is everything else.
 */
async function removeDeadStaging(ctx: OperationContext, to: string, mine: string): Promise<void> {
  const names = await readdir(to).catch(() => [] as string[]);
  for (const n of names) {
    const m = /^\.hvbackup-restore-(\d+)-([A-Za-z0-9]+)-[0-9a-f]{12}$/.exec(n);
    if (!m || join(to, n) === mine || m[2] !== hostTag() || processAlive(Number(m[1]))) continue;
    await rm(join(to, n), { recursive: true, force: true });
    log(ctx, 'verbose', `removed ${join(to, n)}, left by a restore that did not finish (process ${m[1]} is gone)`, to);
  }
}

function pickDisks(m: RestorePointManifest, key: string | undefined): DiskManifest[] {
  return key === undefined ? m.disks : [pointDisk(m, key)];
}

async function stageConfigFiles(repo: Repository, files: ConfigFileManifest[], staging: string, signal?: AbortSignal): Promise<string[]> {
  const out: string[] = [];
  for (const f of files) {
    const p = join(staging, 'config', safeRel(f.path, 'config file'));
    const buf = Buffer.alloc(f.size);
    let off = 0;
    for (const c of f.chunks) {
      const len = Math.min(repo.chunkSize, f.size - off);
      if (c) {
        const data = await repo.loadChunk(c, { signal });
        data.copy(buf, off);
      }
      off += len;
    }
    await mkdir(dirname(p), { recursive: true });
    await writeFile(p, buf);
    out.push(p);
  }
  return out;
}
