// The backup engine: per VM, merge leftover checkpoints, take a backup checkpoint, store
// each frozen disk and the config files as chunks, merge the checkpoint once they are read
// (always, also when the backup failed), write the manifest LAST. Several VMs per job with
// bounded parallelism; one VM failing does not stop the others.

import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { relative, sep } from 'node:path';
import type { BackupMethod, BackupResult } from '../api/types.ts';
import { HvError, isHvError, throwIfAborted } from '../errors.ts';
import type { BackupCheckpoint, DiskReference, Host, VmDescription } from '../hosts/host.ts';
import type { OperationContext } from '../progress.ts';
import { log, progress } from '../progress.ts';
import type { ChunkWriter, HeldLock, Repository } from '../repo/index.ts';
import type { RescanSet } from '../repo/repair-records.ts';
import { isAllZero } from '../repo/index.ts';
import type { ConfigFileManifest, DiskManifest, RestorePointManifest } from '../repo/manifest-types.ts';
import { MANIFEST_VERSION } from '../repo/manifest-types.ts';
import { backupDisk } from './disk-backup.ts';
import type { DiskBackupResult } from './disk-backup.ts';

/**
 * Planned reads from which a backup uses every chunk worker. One worker hashes ~1 GB/s of
 * incompressible data or compresses ~0.4 GB/s of text; below this a second one would finish
 * little sooner than it takes to start.
 */
export const ALL_WORKERS_BYTES = 128 * 1024 * 1024;

export interface BackupJobOptions {
  repo: Repository;
  host: Host;
  sources: string[];
  full?: boolean;
  parallel?: number;
  whatIf?: boolean;
  consistency?: 'auto' | 'crash' | 'application';
}

export async function runBackupJob(ctx: OperationContext, opts: BackupJobOptions): Promise<BackupResult[]> {
  // The chunk workers load their modules while the lock is taken and the VMs are
  // checkpointed, instead of after the first read (~130 ms of a tracked incremental). All of
  // them for a full backup; one for what may be an incremental, and the others once there
  // turns out to be no previous point or a disk's plan is large (allWorkersFor): a second
  // worker costs ~100 CPU-ms to start, on a 2-core host while the checkpoint is taken, more
  // than it saves on the few MiB of a tracked incremental. The same holds in the bridge, which
  // pays the start only once: on two cores a second worker took the main thread's core, and
  // warm tracked calls were slower (median ~130 ms against ~100 ms with one worker).
  if (!opts.whatIf) opts.repo.pool.prestart(opts.full ? undefined : 1);
  // Any backup may write split slices: a format 2 or 3 repository becomes format 4 first (its own exclusive lock, once).
  if (!opts.whatIf) await opts.repo.upgradeFormat(ctx.signal);
  // The lock is taken while the VMs are described: describing reads only the host. Each VM
  // waits for it before it reads anything of the repository.
  const locking: Promise<HeldLock | undefined> = opts.whatIf ? Promise.resolve(undefined) : opts.repo.lock({ exclusive: false, operation: 'backup', signal: ctx.signal }).then((lock) => {
    // Taking the lock dropped the repository's list of stored chunks, and the first chunk a
    // disk submits waits for it (hundreds of ms on a big repository): load it now, while the
    // VMs are checkpointed. A failure here is the writer's to report later.
    opts.repo.hasChunks([]).catch(() => undefined);
    return lock;
  });
  locking.catch(() => undefined);
  try {
    const results: (BackupResult | undefined)[] = new Array(opts.sources.length);
    let next = 0;
    const worker = async () => {
      while (next < opts.sources.length) {
        const i = next++;
        results[i] = await backupSource(ctx, opts, opts.sources[i]!, locking);
      }
    };
    const n = Math.max(1, Math.min(opts.parallel ?? 1, opts.sources.length));
    await Promise.all(Array.from({ length: n }, worker));
    // A lock we could not take fails the whole job, as it did before any VM was looked at.
    await locking;
    return results as BackupResult[];
  } finally {
    await (await locking.catch(() => undefined))?.release();
  }
}

/** undefined when the job's lock could not be taken (the job then fails as a whole). */
async function backupSource(ctx: OperationContext, opts: BackupJobOptions, source: string, locking: Promise<HeldLock | undefined>): Promise<BackupResult | undefined> {
  const startedAt = new Date().toISOString();
  // The engine's own time for this VM (describe to merge), beside the process's wall time.
  const t0 = performance.now();
  const elapsed = () => Math.round(performance.now() - t0);
  let vm: VmDescription | undefined;
  try {
    throwIfAborted(ctx.signal);
    vm = await opts.host.describeVM(source, { signal: ctx.signal });
    const leftovers = await opts.host.findLeftoverCheckpoints(vm, { signal: ctx.signal });
    const got = await locking.then((lock) => ({ lock }), () => undefined);
    if (!got) return undefined;
    // The previous point is looked up under the lock (a GC before it may have removed it)
    // and loads while the checkpoint is taken: neither needs the other.
    const previous = previousPoint(opts.repo, vm, opts.whatIf === true);
    previous.then((p) => { if (!p && !opts.whatIf) opts.repo.pool.prestart(); }, () => undefined);
    // Points a repair found naming damaged chunks (repair-records.ts): their VMs scan.
    const rescan = opts.repo.pointsToRescan(ctx.signal);
    rescan.catch(() => undefined); // awaited with the previous point
    if (opts.whatIf) {
      const prev = await previous;
      return { ...planOnly(vm, source, startedAt, prev, leftovers, opts.full === true, rescanReason(ctx, vm, await rescan, prev)), durationMs: elapsed() };
    }
    if (leftovers.length > 0) {
      for (const l of leftovers) log(ctx, 'warning', `VM ${vm.name}: merging leftover ${l.description}`, vm.name);
      await opts.host.removeLeftoverCheckpoints(vm, { signal: ctx.signal });
      vm = await opts.host.describeVM(source, { signal: ctx.signal });
    }
    return { ...(await backupVm(ctx, opts, vm, source, startedAt, previous, rescan, got.lock)), durationMs: elapsed() };
  } catch (err) {
    const e = isHvError(err) ? err : new HvError('ERR_INTERNAL', (err as Error)?.message ?? String(err), { cause: err });
    log(ctx, 'warning', `backup of ${vm?.name ?? source} failed: ${e.message}`, vm?.name ?? source);
    progress(ctx, { activity: 'backup', target: vm?.name ?? source, status: 'failed', completed: true });
    return {
      vmName: vm?.name ?? source, vmId: vm?.id, source, status: 'failed', startedAt, finishedAt: new Date().toISOString(),
      totalBytes: 0, readBytes: 0, storedBytes: 0, durationMs: elapsed(), error: { code: e.code, message: e.message, target: e.target },
    };
  }
}

/** The newest restore point of this VM (same id), which an incremental builds on. */
async function previousPoint(repo: Repository, vm: VmDescription, whatIf: boolean): Promise<RestorePointManifest | undefined> {
  // Under the job's lock, so it may store the summaries it had to read one by one as a set.
  const points = await repo.findRestorePoints({ vmName: vm.name }, undefined, { consolidate: !whatIf });
  const newest = points.find((m) => m.vm.id === vm.id);
  // Summaries to choose, the whole manifest (chunk lists) only for the one an incremental reuses.
  return newest && repo.loadManifest(newest.id);
}

function planOnly(vm: VmDescription, source: string, startedAt: string, previous: RestorePointManifest | undefined, leftovers: { description: string }[], full: boolean, rescan: string | undefined): BackupResult {
  const plan: string[] = [];
  for (const l of leftovers) plan.push(`merge leftover ${l.description}`);
  plan.push(`create a backup checkpoint of VM ${vm.name} (${vm.disks.length} disk${vm.disks.length === 1 ? '' : 's'})`);
  const method: BackupMethod = full || !previous ? 'full' : rescan ? 'scan' : 'changed-blocks';
  const why = full ? '--full requested' : !previous ? 'no previous restore point of this VM' : rescan ?? `incremental to restore point ${previous.id.slice(0, 12)} (changed blocks if change tracking is trusted at the checkpoint, else a scan)`;
  for (const d of vm.disks) plan.push(`back up disk ${d.key} (${d.path}): ${method}, ${why}`);
  plan.push(`store ${vm.configFiles.length} config file(s), write the restore-point manifest, merge the checkpoint`);
  return { vmName: vm.name, vmId: vm.id, source, status: 'planned', method, methodReason: why, startedAt, totalBytes: 0, readBytes: 0, storedBytes: 0, plan };
}

function combineMethods(full: boolean, disks: DiskBackupResult[]): { method: BackupMethod; reason?: string } {
  if (full) return { method: 'full', reason: undefined };
  const scans = disks.filter((d) => d.choice.method === 'scan');
  if (scans.length === 0) return { method: 'changed-blocks' };
  return { method: 'scan', reason: scans.map((d) => `${d.manifest.key}: ${d.choice.reason}`).join('; ') };
}

/**
 * Why this VM's backup must read its disks whole although change tracking may be trusted: its
 * newest point names chunks a repair took out of the index (reusing that point's ids would name
 * them again), or a repair record does not load (it might say so).
 */
function rescanReason(ctx: OperationContext, vm: VmDescription, set: RescanSet | undefined, previous: RestorePointManifest | undefined): string | undefined {
  if (!set || !previous) return undefined;
  const r = set.points.get(previous.id);
  if (r) return `restore point ${previous.id.slice(0, 12)} names ${r.chunks === 1 ? 'a chunk' : 'chunks'} that a repair (${r.repairedAt}) found missing or corrupt: reading the whole disk stores again what it still holds`;
  const bad = set.unreadable[0];
  if (!bad) return undefined;
  log(ctx, 'warning', `repair record <repairs/${bad.name}> does not load (${bad.problem}); every VM is scanned until it is fixed or removed`, vm.name);
  return `repair record <repairs/${bad.name}> does not load, so the previous point may name chunks a repair found damaged: reading the whole disk`;
}

async function backupVm(ctx: OperationContext, opts: BackupJobOptions, vm: VmDescription, source: string, startedAt: string, previousLoad: Promise<RestorePointManifest | undefined>, rescanLoad: Promise<RescanSet | undefined>, lock: HeldLock | undefined): Promise<BackupResult> {
  const t0 = Date.now();
  const cp = await opts.host.createBackupCheckpoint(vm, { consistency: opts.consistency ?? 'auto', signal: ctx.signal });
  log(ctx, 'verbose', `VM ${vm.name}: checkpoint ${cp.id} (${cp.consistency}${cp.consistencyNote ? `: ${cp.consistencyNote}` : ''})`, vm.name);
  /** The checkpoint's removal once started (as soon as every disk is read). */
  let removal: Promise<DiskReference[]> | undefined;
  try {
    const previous = await previousLoad;
    const full = opts.full === true || !previous;
    const rescan = full ? undefined : rescanReason(ctx, vm, await rescanLoad, previous);
    const writer = opts.repo.chunkWriter({ signal: ctx.signal });
    const track = { planned: 0, done: 0 };
    // At most ten progress events a second per VM, plus every change of status: one per
    // 4 MiB read made ~500 JSON lines (or bridge messages) for a tracked incremental.
    let lastStatus = '';
    let lastAt = 0;
    const report = (status: string) => {
      const now = Date.now();
      if (status === lastStatus && now - lastAt < 100) return;
      lastStatus = status;
      lastAt = now;
      progress(ctx, { activity: 'backup', target: vm.name, status, done: track.done, total: track.planned });
    };
    // Per-point metadata — the config files and the disks' segments — goes to a writer of its
    // own, so it fills packs of its own: config chunks are new on every backup (the config
    // holds the checkpoint record) and so is every segment with a change in it, and both are
    // garbage once the point is removed; in the disks' packs they would make prune rewrite
    // 8 MiB of data to drop them. Config files are submitted once the first disk is planned
    // (a disk refused up front stores nothing); one flush after the disks stores them with
    // the last segments, which wait for every data chunk anyway.
    const metaWriter = opts.repo.chunkWriter({ signal: ctx.signal });
    let configLoads: Promise<Promise<ConfigFileManifest>[]> | undefined;
    const submitConfig = () => {
      configLoads ??= submitConfigFiles(cp, opts.repo.chunkSize, metaWriter);
      configLoads.catch(() => undefined);
      return configLoads;
    };
    const disks: DiskBackupResult[] = [];
    for (const fd of cp.disks) {
      const prevDisk = previous?.disks.find((d) => d.key === fd.key);
      const disk = await fd.open();
      try {
        disks.push(await backupDisk({
          repo: opts.repo, host: opts.host, cp, fd, disk, previous: prevDisk, previousPoint: previous?.id, full, rescan, writer, segmentWriter: metaWriter, signal: ctx.signal,
          onPlanned: (b) => {
            track.planned += b;
            if (track.planned >= ALL_WORKERS_BYTES) opts.repo.pool.prestart();
            report(`reading ${fd.key}`);
            void submitConfig();
          },
          onRead: (b) => { track.done += b; report(`reading ${fd.key}`); },
        }));
      } finally {
        await disk.close();
      }
    }
    const loads = await submitConfig();
    // Every disk is read and the config files too: the VM leaves its checkpoint now, while the
    // chunks are flushed and the manifest is written, not after (a VM runs slower on a
    // checkpoint, and Hyper-V's reference points come from the removal anyway).
    removal = opts.host.removeBackupCheckpoint(cp, { keepReference: true, signal: ctx.signal });
    removal.catch(() => undefined); // awaited below, or in the catch
    // One flush of each writer, side by side: the data chunks of every disk, and the config
    // files and the last segments; then one index object listing both writers' packs (write
    // order: every chunk and segment durable and listed before the manifest; a segment only
    // names chunks, so it need not wait for theirs).
    await Promise.all([writer.flush({ index: false }), metaWriter.flush({ index: false })]);
    await opts.repo.saveIndex(ctx.signal);
    for (const d of disks) await d.durable;
    const configFiles = await Promise.all(loads);
    const removedRefs = await removal;
    const references = cp.references ?? removedRefs;
    const { method, reason } = combineMethods(full, disks);
    const manifest = buildManifest(vm, cp, previous, disks, configFiles, references, { method, reason: full && !opts.full ? 'no previous restore point of this VM' : reason }, [writer, metaWriter], t0);
    throwIfAborted(ctx.signal);
    // The shared lock is what keeps GC from deleting the chunks this manifest names: if it was
    // force-removed or could not be refreshed, GC may have run, so write no manifest (ERR_LOCKED).
    lock?.check();
    const pointId = await opts.repo.saveManifest(manifest, ctx.signal);
    log(ctx, 'info', `VM ${vm.name}: restore point ${pointId} (${method})`, vm.name);
    progress(ctx, { activity: 'backup', target: vm.name, status: 'done', done: track.done, total: track.planned, completed: true });
    return {
      vmName: vm.name, vmId: vm.id, source, status: 'success', pointId, method, methodReason: manifest.methodReason,
      consistency: cp.consistency, startedAt, finishedAt: manifest.finishedAt, totalBytes: manifest.stats.totalBytes,
      readBytes: manifest.stats.readBytes, storedBytes: manifest.stats.storedBytes,
    };
  } catch (err) {
    // Never leave the VM on a checkpoint, whatever happened above; report the first failure.
    if (removal) {
      await removal.catch((mergeErr: unknown) => {
        log(ctx, 'warning', `VM ${vm.name}: removing checkpoint ${cp.id} failed: ${(mergeErr as Error).message}; run "hvbackup vm repair"`, vm.name);
      });
    } else {
      await opts.host.removeBackupCheckpoint(cp, { keepReference: false }).catch((mergeErr: unknown) => {
        log(ctx, 'warning', `VM ${vm.name}: removing checkpoint ${cp.id} after a failed backup also failed: ${(mergeErr as Error).message}; run "hvbackup vm repair"`, vm.name);
      });
    }
    throw err;
  }
}

function buildManifest(vm: VmDescription, cp: BackupCheckpoint, previous: RestorePointManifest | undefined, disks: DiskBackupResult[], configFiles: ConfigFileManifest[], references: DiskReference[], m: { method: BackupMethod; reason?: string }, writers: ChunkWriter[], t0: number): RestorePointManifest {
  const refByKey = new Map(references.map((r) => [r.diskKey, r]));
  const dm: DiskManifest[] = disks.map((d) => ({ ...d.manifest, ...(refByKey.has(d.manifest.key) ? { reference: refByKey.get(d.manifest.key)! } : {}) }));
  return {
    version: MANIFEST_VERSION,
    id: '',
    vm: { id: vm.id, name: vm.name, generation: vm.generation, ...(vm.configVersion ? { configVersion: vm.configVersion } : {}), host: vm.host, hostName: hostname() },
    createdAt: cp.createdAt.toISOString(),
    finishedAt: new Date().toISOString(),
    consistency: cp.consistency,
    ...(cp.consistencyNote ? { consistencyNote: cp.consistencyNote } : {}),
    method: m.method,
    ...(m.reason ? { methodReason: m.reason } : {}),
    ...(previous && m.method !== 'full' ? { parentId: previous.id } : {}),
    disks: dm,
    configFiles,
    stats: {
      totalBytes: dm.reduce((a, d) => a + d.virtualSize, 0),
      readBytes: disks.reduce((a, d) => a + d.readBytes, 0),
      newChunks: writers.reduce((a, w) => a + w.stats.newChunks, 0),
      storedBytes: writers.reduce((a, w) => a + w.stats.storedBytes, 0),
      durationMs: Date.now() - t0,
    },
    ...(vm.details ? { details: vm.details } : {}),
  };
}

/**
 * The VM's config files as chunks, paths relative to the checkpoint's VM folder (Hyper-V: its
 * exported config). Resolves once they are submitted; each file's chunk ids settle once the
 * writer has stored them, at a later flush().
 */
async function submitConfigFiles(cp: BackupCheckpoint, chunkSize: number, writer: ChunkWriter): Promise<Promise<ConfigFileManifest>[]> {
  const out: Promise<ConfigFileManifest>[] = [];
  for (const file of cp.vm.configFiles) {
    const data = await readFile(file);
    const chunks: (Promise<{ id: string }> | null)[] = [];
    for (let off = 0; off < data.length; off += chunkSize) {
      const slice = data.subarray(off, Math.min(off + chunkSize, data.length));
      const c = isAllZero(slice) ? null : (await writer.submit(slice)).done;
      c?.catch(() => undefined); // the writer's flush() reports it
      chunks.push(c);
    }
    const path = relative(cp.vm.location, file).split(sep).join('/');
    const m = Promise.all(chunks.map(async (c) => (c ? (await c).id : null))).then((ids) => ({ path, size: data.length, chunks: ids }));
    m.catch(() => undefined);
    out.push(m);
  }
  return out;
}
