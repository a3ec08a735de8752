// I/O for a local VM folder (laid out like Hyper-V's): find and atomically rewrite the
// config in `Virtual Machines/`, and the per-VM lock that serialises the guest writer,
// checkpoint creation and merge (like Hyper-V's VMMS owning the VM's disk handles).

import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { link, open, readdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { HvError } from '../../errors.ts';
import { hostTag, processAlive } from '../../process.ts';
import { decodeVmConfig, encodeVmConfig } from './config.ts';
import type { VmConfig } from './config.ts';

export const VM_CONFIG_DIR = 'Virtual Machines';
export const VM_DISK_DIR = 'Virtual Hard Disks';
export const VM_SNAPSHOT_DIR = 'Snapshots';
const LOCK_NAME = '.hvbackup-vm.lock';

/** The config file of a VM folder, or undefined when the folder is not a VM. */
export async function findConfigFile(vmDir: string): Promise<string | undefined> {
  let names: string[];
  try {
    names = await readdir(join(vmDir, VM_CONFIG_DIR));
  } catch {
    return undefined;
  }
  const json = names.filter((n) => n.endsWith('.json') && !n.startsWith('.'));
  if (json.length > 1) {
    throw new HvError('ERR_INVALID_ARGUMENT', `VM folder ${vmDir} has ${json.length} configs in "${VM_CONFIG_DIR}" (${json.join(', ')}); expected one`, { target: vmDir });
  }
  return json.length === 1 ? join(vmDir, VM_CONFIG_DIR, json[0]!) : undefined;
}

export interface LoadedVm {
  dir: string;
  configFile: string;
  config: VmConfig;
}

export async function loadVm(vmDir: string): Promise<LoadedVm> {
  const dir = resolve(vmDir);
  const configFile = await findConfigFile(dir);
  if (!configFile) throw new HvError('ERR_NOT_FOUND', `${dir} is not a VM folder (no "${VM_CONFIG_DIR}/*.json")`, { target: dir });
  return { dir, configFile, config: decodeVmConfig(await readFile(configFile), configFile) };
}

/** Durable atomic replace: temp file in the same folder, fsync, rename. */
export async function writeFileAtomic(file: string, data: Buffer, opts: { noClobber?: boolean } = {}): Promise<void> {
  const tmp = join(file, '..', `.${basename(file)}.${randomUUID().slice(0, 8)}.tmp`);
  const fh = await open(tmp, 'wx');
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  if (opts.noClobber && existsSync(file)) {
    await unlink(tmp);
    throw new HvError('ERR_ALREADY_EXISTS', `${file} already exists; not overwriting it`, { target: file });
  }
  await rename(tmp, file);
}

export async function saveVmConfig(vm: LoadedVm, config: VmConfig): Promise<void> {
  await writeFileAtomic(vm.configFile, encodeVmConfig(config));
  vm.config = config;
}

/**
 * Create the lock file with our pid already in it: written under a name of its own, then linked
 * into place, which fails if the lock exists. Creating it first and writing it after let a kill
 * -9 in between leave an empty lock, which no one can tell from one being written: the VM then
 * stayed locked for a minute (found by the kill-at-every-change sweep). False: it exists.
 */
async function createLock(dir: string, lockFile: string): Promise<boolean> {
  const tmp = join(dir, `${LOCK_NAME}.${process.pid}.${hostTag()}.${randomUUID().slice(0, 8)}`);
  await writeFile(tmp, `${process.pid}\n${hostname()}\n`);
  try {
    await link(tmp, lockFile);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
}

/**
 * Lock temp files of killed processes of this host (named with pid and host): litter, removed
 * by the next holder. Another host's are left alone: its pids cannot be checked from here (a
 * VM folder on a share), and removing a live one's temp would fail its lock.
 */
async function removeDeadLockTemps(dir: string): Promise<void> {
  const names = await readdir(dir).catch(() => [] as string[]);
  for (const n of names) {
    if (!n.startsWith(`${LOCK_NAME}.`)) continue;
    const [pidText, host] = n.slice(LOCK_NAME.length + 1).split('.');
    const pid = Number(pidText);
    if (host === hostTag() && Number.isInteger(pid) && pid > 0 && pid !== process.pid && !processAlive(pid)) await unlink(join(dir, n)).catch(() => undefined);
  }
}

async function breakIfStale(lockFile: string): Promise<boolean> {
  try {
    const [pidText, host] = (await readFile(lockFile, 'utf8')).split('\n');
    const pid = Number(pidText);
    if (host === hostname() && Number.isInteger(pid) && pid > 0 && !processAlive(pid)) {
      await unlink(lockFile).catch(() => undefined);
      return true;
    }
    // An unreadable/empty lock older than a minute: an older HVBackup's crash between create and write.
    if (!(pid > 0) && Date.now() - (await stat(lockFile)).mtimeMs > 60_000) {
      await unlink(lockFile).catch(() => undefined);
      return true;
    }
  } catch {
    return true; // vanished meanwhile
  }
  return false;
}

const inProcess = new Map<string, Promise<void>>();

/**
 * Run `fn` holding the VM's lock (a lock file with our pid, broken when its process is
 * gone — a kill -9 must not wedge the VM), serialised in-process as well.
 */
export async function withVmLock<T>(vmDir: string, fn: () => Promise<T>, timeoutMs = 60_000): Promise<T> {
  const dir = resolve(vmDir);
  const prev = inProcess.get(dir) ?? Promise.resolve();
  let release!: () => void;
  const mine = new Promise<void>((r) => (release = r));
  const chained = prev.then(() => mine);
  inProcess.set(dir, chained);
  await prev;
  const lockFile = join(dir, LOCK_NAME);
  try {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (await createLock(dir, lockFile)) break;
      if (await breakIfStale(lockFile)) continue;
      if (Date.now() > deadline) throw new HvError('ERR_LOCKED', `VM ${dir} is locked by another process (${lockFile})`, { target: dir });
      await new Promise((r) => setTimeout(r, 15));
    }
    await removeDeadLockTemps(dir);
    try {
      return await fn();
    } finally {
      await unlink(lockFile).catch(() => undefined);
    }
  } finally {
    release();
    if (inProcess.get(dir) === chained) inProcess.delete(dir);
  }
}
