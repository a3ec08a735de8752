// The crash sweep's runner (test/e2e/crash-sweep.test.ts runs it): a small process of its own,
// because every kill point starts a CLI child, and a fork of the big test process made each of
// those writes fault its pages afresh (copy-on-write), ~2 s per kill point on the bench VM.
// Usage: node crash-sweep.ts <merge|backup|gc|restore|archive> <scratch dir>
// Prints one JSON line: { changes, failures } — changes the unkilled step made, and what went
// wrong after each kill (empty when every kill point recovered).
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { exportArchive, getArchiveCatalog, restoreFromArchive } from '../../core/api/archive.ts';
import { backupVMs } from '../../core/api/backup.ts';
import { initRepository, keepIdleWorkerPools, removeRestorePoints } from '../../core/api/repository.ts';
import { collectGarbage } from '../../core/api/retention.ts';
import { restoreVM } from '../../core/api/restore.ts';
import { verifyRepository } from '../../core/api/verify.ts';
import { guestWrite, randomGuestWrites, type GuestWrite } from '../../core/hosts/local/guest.ts';
import { LocalHost } from '../../core/hosts/local/host.ts';
import { repairVm } from '../../core/hosts/local/repair.ts';
import { createSampleVm } from '../../core/hosts/local/sample.ts';
import { loadVm, saveVmConfig } from '../../core/hosts/local/vm-folder.ts';
import { checkVhdx } from '../../core/vhdx/index.ts';
import { readWhole } from './disk-read.ts';
import { isHvError } from '../../core/errors.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const preload = join(root, 'test', 'support', 'kill-at.mjs');
const MiB = 1 << 20;
const SIZE = 8 * MiB;

const [phase, dir] = process.argv.slice(2);
/**
 * HVB_SWEEP_EVERY=k: kill before every kth change only (the 1st, the (k+1)th, ...) and before
 * the last one; for a second pass under other settings (the spill suite's tables) that keeps
 * the whole sweep's time down. Default 1: every change.
 */
const EVERY = Math.max(1, Math.floor(Number(process.env.HVB_SWEEP_EVERY ?? 1)) || 1);
const killPoints = (changes: number): number[] => Array.from({ length: changes }, (_, i) => i + 1).filter((at) => (at - 1) % EVERY === 0 || at === changes);
if (!['merge', 'backup', 'gc', 'restore', 'archive'].includes(phase ?? '') || !dir) throw new Error('usage: crash-sweep.ts <merge|backup|gc|restore|archive> <scratch dir>');
mkdirSync(dir, { recursive: true });
const path = (...p: string[]) => join(dir, ...p);

/** The CLI with `args`, killed (SIGKILL) just before its `at`th file-system change; 0: never. Returns how many changes it counted. */
function cliKilledAt(at: number, ...args: string[]): { killed: boolean; status: number | null; stderr: string; changes: number } {
  const countFile = path(`count-${at}`);
  const r = spawnSync(process.execPath, ['--import', preload, join(root, 'core', 'cli', 'main.ts'), ...args], {
    cwd: root, encoding: 'utf8', env: { ...process.env, HVB_KILL_AT: String(at), HVB_KILL_COUNT_FILE: countFile },
  });
  // Written at exit by every run not killed.
  const changes = existsSync(countFile) ? Number(readFileSync(countFile, 'utf8')) : 0;
  return { killed: r.signal === 'SIGKILL', status: r.status, stderr: r.stderr, changes };
}

/**
 * What is wrong with a run meant to be killed before change `at`, if anything. One that ended
 * well having made fewer changes is not: with the index spilled, how many scratch writes a
 * backup makes follows how its chunks fell into packs, which follows the workers' timing
 * (117 to 120 changes for one step).
 */
function notKilled(at: number, run: ReturnType<typeof cliKilledAt>): string | undefined {
  if (run.killed || (run.status === 0 && run.changes < at)) return undefined;
  return `change ${at}: not killed (exit ${run.status}, ${run.changes} changes): ${run.stderr}`;
}

const diskBytes = (file: string) => readWhole(file);

/** The whole disk as the guest sees it (through a checkpoint's child, if any). */
async function guestView(vmDir: string): Promise<Buffer> {
  const vm = await loadVm(vmDir);
  return diskBytes(join(vm.dir, vm.config.disks[0]!.path));
}

/** A sample VM `name` backed up into a new repository: the point, and the disk it holds. */
async function backedUpVm(name: string, sizeBytes: number, seed: number): Promise<{ vm: string; repo: string; pointId: string; image: Buffer }> {
  const vm = path(name);
  await createSampleVm({}, { dir: vm, sizeBytes, seed });
  const repo = path(`${name}-repo`);
  await initRepository({}, { path: repo });
  const [b] = await backupVMs({}, { repository: repo, sources: [vm] });
  if (b!.status !== 'success') throw new Error(`the backup of ${name} failed: ${b!.error?.message}`);
  return { vm, repo, pointId: b!.pointId!, image: await guestView(vm) };
}

/** Point `point` of `repo` restored into `to` (removed after): its disk's bytes. */
async function restoredImage(repo: string, point: string, to: string): Promise<Buffer> {
  try {
    const res = await restoreVM({}, { repository: repo, point, to });
    return await diskBytes(res.disks[0]!.path);
  } finally {
    rmSync(to, { recursive: true, force: true });
  }
}

function apply(image: Buffer, writes: GuestWrite[]): void {
  for (const w of writes) w.data.copy(image, w.offset);
}

/**
 * After a kill: the guest writes on, repair finishes the rest, and the disk is `expected` (plus
 * those writes), with no checkpoint or child left, and valid. Returns what failed, if anything.
 */
async function recovered(vmDir: string, expected: Buffer, seed: number): Promise<string | undefined> {
  const after = randomGuestWrites(seed, 3, 8192, SIZE);
  const t0 = performance.now();
  await guestWrite(vmDir, after);
  // A kill must not wedge the VM: its lock is broken at once when its holder is gone.
  const waited = performance.now() - t0;
  if (waited > 10_000) return `the guest's next write waited ${Math.round(waited / 1000)} s for the VM`;
  apply(expected, after);
  await repairVm({}, vmDir);
  const vm = await loadVm(vmDir);
  if (vm.config.backupCheckpoint) return 'a checkpoint is left after repair';
  const children = readdirSync(join(vmDir, 'Virtual Hard Disks')).filter((f) => f.endsWith('.avhdx'));
  if (children.length) return `differencing disks left: ${children.join(', ')}`;
  const locks = readdirSync(vmDir).filter((f) => f.startsWith('.hvbackup-vm.lock'));
  if (locks.length) return `lock files left: ${locks.join(', ')}`;
  const disk = join(vm.dir, vm.config.disks[0]!.path);
  const problems = (await checkVhdx(disk)).problems;
  if (problems.length) return `${disk}: ${problems.join('; ')}`;
  const now = await guestView(vmDir);
  if (!now.equals(expected)) {
    let i = 0;
    while (now[i] === expected[i]) i++;
    return `the disk differs from the writes made, first at byte ${i}`;
  }
  return undefined;
}

async function mergeSweep(): Promise<{ changes: number; failures: string[] }> {
  // A VM left on a backup checkpoint the guest wrote to (pieces of blocks, a write across a
  // block boundary, a whole block), by a backup that died: `vm repair` merges it.
  const template = path('template');
  await createSampleVm({}, { dir: template, sizeBytes: SIZE, seed: 3 });
  const host = new LocalHost();
  await host.createBackupCheckpoint(await host.describeVM(template), { consistency: 'auto' });
  await guestWrite(template, [...randomGuestWrites(41, 6, 8192, SIZE), { offset: 2 * MiB - 4096, data: Buffer.alloc(8192, 0x5e) }, { offset: 5 * MiB, data: Buffer.alloc(MiB, 0x6f) }]);
  const vm = await loadVm(template);
  await saveVmConfig(vm, { ...vm.config, backupCheckpoint: { ...vm.config.backupCheckpoint!, owner: { pid: 999_999, host: hostname() } } });
  const image = await guestView(template);
  const failures: string[] = [];
  const calm = path('calm');
  cpSync(template, calm, { recursive: true });
  const run = cliKilledAt(0, 'vm', 'repair', calm);
  if (run.status !== 0) failures.push(`the unkilled repair failed: ${run.stderr}`);
  const problem = await recovered(calm, Buffer.from(image), 7);
  if (problem) failures.push(`the unkilled repair: ${problem}`);
  for (const at of killPoints(run.changes)) {
    const copy = path(`merge-${at}`);
    cpSync(template, copy, { recursive: true });
    const killed = cliKilledAt(at, 'vm', 'repair', copy);
    const missed = notKilled(at, killed);
    if (missed) failures.push(missed);
    const p = await recovered(copy, Buffer.from(image), 100 + at).catch((err: Error) => err.message);
    if (p) failures.push(`killed before change ${at} of ${run.changes}: ${p}`);
    rmSync(copy, { recursive: true, force: true });
  }
  return { changes: run.changes, failures };
}

async function backupSweep(): Promise<{ changes: number; failures: string[] }> {
  // A VM backed up once and changed since: the killed backup is a tracked incremental, through
  // checkpoint, chunks, packs, index, manifest, merge and tracking record.
  const { vm: template, repo: repoTemplate } = await backedUpVm('vm-template', SIZE, 5);
  await guestWrite(template, randomGuestWrites(53, 8, 8192, SIZE));
  const image = await guestView(template);
  const failures: string[] = [];
  const fresh = (at: number | string) => {
    const vm = path(`vm-${at}`);
    const repo = path(`repo-${at}`);
    cpSync(template, vm, { recursive: true });
    cpSync(repoTemplate, repo, { recursive: true });
    return { vm, repo };
  };
  const calm = fresh('calm');
  const run = cliKilledAt(0, 'backup', calm.vm, '--repo', calm.repo);
  if (run.status !== 0) failures.push(`the unkilled backup failed: ${run.stderr}`);
  for (const at of killPoints(run.changes)) {
    const { vm, repo } = fresh(at);
    const killed = cliKilledAt(at, 'backup', vm, '--repo', repo);
    const missed = notKilled(at, killed);
    if (missed) failures.push(missed);
    const expected = Buffer.from(image);
    const p = await recovered(vm, expected, 200 + at).catch((err: Error) => err.message);
    if (p) failures.push(`killed before change ${at} of ${run.changes}: ${p}`);
    const v = await verifyRepository({}, { repository: repo });
    if (!v.ok) failures.push(`killed before change ${at}: the repository does not verify: ${JSON.stringify(v.problems)}`);
    const [next] = await backupVMs({}, { repository: repo, sources: [vm] });
    if (next!.status !== 'success') {
      failures.push(`killed before change ${at}: the next backup failed: ${next!.error?.message}`);
    } else {
      if (!(await restoredImage(repo, next!.pointId!, path(`restored-${at}`))).equals(expected)) failures.push(`killed before change ${at}: the next backup (${next!.method}) does not restore the disk`);
    }
    rmSync(vm, { recursive: true, force: true });
    rmSync(repo, { recursive: true, force: true });
  }
  return { changes: run.changes, failures };
}


async function gcSweep(): Promise<{ changes: number; failures: string[] }> {
  // Four points of a VM that changes between them (whole blocks and pieces); the first and the
  // third removed, so GC deletes packs, rewrites packs the kept points still use part of, and
  // consolidates the index objects.
  const vm = path('gc-vm');
  await createSampleVm({}, { dir: vm, sizeBytes: SIZE, seed: 9 });
  const repoTemplate = path('gc-repo-template');
  await initRepository({}, { path: repoTemplate });
  const points: { id: string; image: Buffer }[] = [];
  for (let i = 0; i < 4; i++) {
    if (i > 0) await guestWrite(vm, [...randomGuestWrites(60 + i, 5, 8192, SIZE), { offset: (2 * i) * MiB, data: Buffer.alloc(MiB, 0x30 + i) }]);
    const image = await guestView(vm);
    const [r] = await backupVMs({}, { repository: repoTemplate, sources: [vm] });
    if (r!.status !== 'success') throw new Error(`backup ${i} failed: ${r!.error?.message}`);
    points.push({ id: r!.pointId!, image });
  }
  await removeRestorePoints({}, { repository: repoTemplate, ids: [points[0]!.id, points[2]!.id] });
  const kept = [points[1]!, points[3]!];
  const failures: string[] = [];
  const calm = path('gc-calm');
  cpSync(repoTemplate, calm, { recursive: true });
  const run = cliKilledAt(0, 'gc', '--repo', calm);
  if (run.status !== 0) failures.push(`the unkilled gc failed: ${run.stderr}`);
  for (const at of killPoints(run.changes)) {
    const repo = path(`gc-repo-${at}`);
    cpSync(repoTemplate, repo, { recursive: true });
    const killed = cliKilledAt(at, 'gc', '--repo', repo);
    const missed = notKilled(at, killed);
    if (missed) failures.push(missed);
    try {
      const v = await verifyRepository({}, { repository: repo });
      if (!v.ok) failures.push(`killed before change ${at} of ${run.changes}: the repository does not verify: ${JSON.stringify(v.problems)}`);
      for (const p of kept) {
        if (!(await restoredImage(repo, p.id, path(`gc-restored-${at}`))).equals(p.image)) failures.push(`killed before change ${at}: point ${p.id.slice(0, 8)} does not restore as backed up`);
      }
      // The next GC (the killed one's lock is stale: its process is gone) finishes the job.
      await collectGarbage({}, { repository: repo });
      const again = await verifyRepository({}, { repository: repo });
      if (!again.ok) failures.push(`killed before change ${at}: after the next gc the repository does not verify: ${JSON.stringify(again.problems)}`);
    } catch (err) {
      failures.push(`killed before change ${at}: ${(err as Error).message}`);
    }
    rmSync(repo, { recursive: true, force: true });
  }
  return { changes: run.changes, failures };
}

async function restoreSweep(): Promise<{ changes: number; failures: string[] }> {
  // A restore writes under a staging folder and moves the disk, then the config, into place: a
  // kill must never leave a partial disk under its final name, and the next restore into the
  // same folder either finishes or refuses to overwrite a disk that is complete.
  const { repo, pointId, image } = await backedUpVm('r-vm', SIZE, 11);
  const args = (to: string) => ['restore', pointId, '--repo', repo, '--vm', 'r-vm', '--to', to];
  const failures: string[] = [];
  const run = cliKilledAt(0, ...args(path('r-calm')));
  if (run.status !== 0) failures.push(`the unkilled restore failed: ${run.stderr}`);
  const diskOf = (to: string) => join(to, 'Virtual Hard Disks', 'r-vm.vhdx');
  const complete = async (disk: string): Promise<string | undefined> => {
    const problems = (await checkVhdx(disk)).problems;
    if (problems.length) return `${disk} is under its final name but invalid: ${problems.join('; ')}`;
    return (await diskBytes(disk)).equals(image) ? undefined : `${disk} is under its final name but not the disk backed up`;
  };
  for (const at of killPoints(run.changes)) {
    const to = path(`r-to-${at}`);
    const killed = cliKilledAt(at, ...args(to));
    const missed = notKilled(at, killed);
    if (missed) failures.push(missed);
    try {
      const placed = existsSync(diskOf(to));
      const p = placed ? await complete(diskOf(to)) : undefined;
      if (p) failures.push(`killed before change ${at} of ${run.changes}: ${p}`);
      const again: Error | undefined = await restoreVM({}, { repository: repo, point: pointId, to }).then(() => undefined, (err: unknown) => err as Error);
      if (placed) {
        if (!isHvError(again, 'ERR_ALREADY_EXISTS')) failures.push(`killed before change ${at}: a restore over the placed disk did not refuse: ${again ? again.message : 'it succeeded'}`);
      } else if (again) {
        failures.push(`killed before change ${at}: the next restore failed: ${again.message}`);
      } else {
        const p2 = await complete(diskOf(to));
        if (p2) failures.push(`killed before change ${at}: after the next restore, ${p2}`);
        const left = readdirSync(to).filter((n) => n.startsWith('.hvbackup-restore-'));
        if (left.length) failures.push(`killed before change ${at}: staging folders left after the next restore: ${left.join(', ')}`);
      }
    } catch (err) {
      failures.push(`killed before change ${at}: ${(err as Error).message}`);
    }
    rmSync(to, { recursive: true, force: true });
  }
  return { changes: run.changes, failures };
}

async function archiveSweep(): Promise<{ changes: number; failures: string[] }> {
  // The first export of a point to a pool of 4 MiB media (three; objects split across them): media written as .partial, fsynced, named in the catalog, renamed into place. After a
  // kill the catalog (if any) names only media that are there, the next export finishes, and
  // the media alone restore the disk.
  const { repo: repoTemplate, pointId, image } = await backedUpVm('a-vm', 3 * SIZE, 13);
  const args = (repo: string, media: string) => ['archive', 'export', '--repo', repo, '--pool', 'sweep', '--media-dir', media, '--capacity', '4M'];
  const failures: string[] = [];
  const calm = { repo: path('a-calm-repo'), media: path('a-calm-media') };
  cpSync(repoTemplate, calm.repo, { recursive: true });
  const run = cliKilledAt(0, ...args(calm.repo, calm.media));
  if (run.status !== 0) failures.push(`the unkilled export failed: ${run.stderr}`);
  for (const at of killPoints(run.changes)) {
    const repo = path(`a-repo-${at}`);
    const media = path(`a-media-${at}`);
    cpSync(repoTemplate, repo, { recursive: true });
    const killed = cliKilledAt(at, ...args(repo, media));
    const missed = notKilled(at, killed);
    if (missed) failures.push(missed);
    try {
      const before = await getArchiveCatalog({}, { repository: repo, pool: 'sweep' }).catch((err: unknown) => {
        if (isHvError(err, 'ERR_NOT_FOUND')) return undefined;
        throw err;
      });
      for (const m of before?.media ?? []) {
        if (m.file && !existsSync(join(media, m.file)) && !existsSync(join(media, `${m.file}.partial`))) failures.push(`killed before change ${at} of ${run.changes}: the catalog names medium ${m.file}, which is not there`);
      }
      await exportArchive({}, { repository: repo, pool: 'sweep', mediaDir: media, capacity: '4M' });
      const cat = await getArchiveCatalog({}, { repository: repo, pool: 'sweep' });
      if (!cat.points.some((p) => p.id === pointId)) failures.push(`killed before change ${at}: after the next export the pool lacks the point`);
      const files = cat.media.filter((m) => m.file).sort((x, y) => x.seq - y.seq).map((m) => join(media, m.file!));
      if (files.length < 2) failures.push(`killed before change ${at}: the export wrote ${files.length} medium, not a set that spans`);
      const to = path(`a-restored-${at}`);
      const res = await restoreFromArchive({}, { media: files, vmName: 'a-vm', to });
      if (!(await diskBytes(res.disks[0]!.path)).equals(image)) failures.push(`killed before change ${at}: the media do not restore the disk`);
      rmSync(to, { recursive: true, force: true });
    } catch (err) {
      failures.push(`killed before change ${at}: ${(err as Error).message}`);
    }
    rmSync(repo, { recursive: true, force: true });
    rmSync(media, { recursive: true, force: true });
  }
  return { changes: run.changes, failures };
}

// The checks after each kill (verify, the next backup, its restore) reuse one set of chunk
// workers rather than starting two for each.
keepIdleWorkerPools(2);
const sweeps = { merge: mergeSweep, backup: backupSweep, gc: gcSweep, restore: restoreSweep, archive: archiveSweep } as const;
const result = await sweeps[phase as keyof typeof sweeps]();
process.stdout.write(`${JSON.stringify(result)}\n`);
