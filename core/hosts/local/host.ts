// The local host: VMs are folders laid out like Hyper-V's (see vm-folder.ts), or bare
// disk files (a one-disk VM named after the file). Works on any OS; used by tests, demos
// and for backing up plain VHDX/raw images.

import { createHash } from 'node:crypto';
import { mkdir, open, readdir, readFile, stat } from 'node:fs/promises';
import { basename, join, relative, resolve, sep } from 'node:path';
import { HvError } from '../../errors.ts';
import type { LogEvent } from '../../progress.ts';
import { openDisk } from '../../vhdx/index.ts';
import { changesSince, freezeTracking, startReference } from '../../tracking/index.ts';
import type { FrozenTracking } from '../../tracking/index.ts';
import type {
  BackupCheckpoint, ChangedRanges, Consistency, DiskReference, FrozenDisk, Host, HostCallOptions,
  RestoredVm, VmDescription, VmSummary,
} from '../host.ts';
import { VM_CONFIG_SCHEMA, decodeVmConfig, newVmId } from './config.ts';
import type { BackupCheckpointRecord, VmConfig } from './config.ts';
import { bareDiskName, checkpointOwnerAlive, createCheckpoint, removeCheckpoint } from './checkpoint.ts';
import { VM_CONFIG_DIR, findConfigFile, loadVm, withVmLock, writeFileAtomic } from './vm-folder.ts';
import type { LoadedVm } from './vm-folder.ts';
import { encodeVmConfig } from './config.ts';

const DISK_EXTENSIONS = ['.vhdx', '.avhdx', '.img', '.raw'];

interface LiveCheckpoint {
  tracking: Map<string, FrozenTracking>;
}

export interface LocalHostOptions {
  /** Folder under which listVMs and name lookups search (depth 2). */
  root?: string;
  onLog?: (e: LogEvent) => void;
}

function toPosix(p: string): string {
  return p.split(sep).join('/');
}

async function diskFormat(path: string): Promise<'vhdx' | 'raw'> {
  const buf = Buffer.alloc(8);
  const fh = await open(path, 'r');
  try {
    await fh.read(buf, 0, 8, 0);
  } finally {
    await fh.close();
  }
  return buf.toString('latin1') === 'vhdxfile' ? 'vhdx' : 'raw';
}

function describeLoaded(vm: LoadedVm): VmDescription {
  const c = vm.config;
  return {
    id: c.id,
    name: c.name,
    host: 'local',
    location: vm.dir,
    state: c.backupCheckpoint ? `backup checkpoint ${c.backupCheckpoint.state}` : 'ready',
    generation: c.generation,
    configFiles: [vm.configFile],
    disks: c.disks.map((d) => ({ key: d.key, path: join(vm.dir, d.path), format: 'vhdx' as const })),
    details: { guestVss: c.guestVss?.enabled === true },
  };
}

export class LocalHost implements Host {
  readonly kind = 'local' as const;
  readonly root: string | undefined;
  readonly #onLog: (e: LogEvent) => void;
  readonly #live = new Map<string, LiveCheckpoint>();

  constructor(opts: LocalHostOptions = {}) {
    this.root = opts.root === undefined ? undefined : resolve(opts.root);
    this.#onLog = opts.onLog ?? (() => undefined);
  }

  async listVMs(): Promise<VmSummary[]> {
    if (!this.root) return [];
    return (await findVmFolders(this.root, 2)).map((vm) => {
      const d = describeLoaded(vm);
      return { id: d.id, name: d.name, host: d.host, location: d.location, state: d.state };
    }).sort((a, b) => a.name.localeCompare(b.name));
  }

  async describeVM(ref: string): Promise<VmDescription> {
    const st = await stat(ref).catch(() => undefined);
    if (st?.isDirectory()) return describeLoaded(await loadVm(ref));
    if (st?.isFile()) {
      if (!DISK_EXTENSIONS.some((e) => ref.toLowerCase().endsWith(e))) {
        throw new HvError('ERR_INVALID_ARGUMENT', `${ref} is neither a VM folder nor a disk file (${DISK_EXTENSIONS.join(', ')})`, { target: ref });
      }
      return describeBareDisk(resolve(ref));
    }
    if (this.root) {
      const found = (await findVmFolders(this.root, 2)).filter((vm) => vm.config.name === ref || vm.config.id === ref);
      if (found.length > 1) throw new HvError('ERR_INVALID_ARGUMENT', `${found.length} VMs named ${ref} under ${this.root}`, { target: ref });
      if (found.length === 1) return describeLoaded(found[0]!);
    }
    throw new HvError('ERR_NOT_FOUND', `no VM folder, disk file or VM named ${ref}${this.root ? ` under ${this.root}` : ''}`, { target: ref });
  }

  async createBackupCheckpoint(vm: VmDescription, opts: HostCallOptions & { consistency: Consistency | 'auto' }): Promise<BackupCheckpoint> {
    if (isBare(vm)) return this.#freezeBareDisk(vm);
    return withVmLock(vm.location, async () => {
      const loaded = await loadVm(vm.location);
      if (loaded.config.backupCheckpoint) {
        throw new HvError('ERR_HOST', `VM ${loaded.config.name} already has backup checkpoint ${loaded.config.backupCheckpoint.id}; run "hvbackup vm repair ${loaded.dir}"`, { target: loaded.dir });
      }
      const { consistency, note } = chooseConsistency(loaded.config, opts.consistency);
      const abs = (rel: string) => join(loaded.dir, rel);
      const created = await createCheckpoint(loaded, abs);
      this.#live.set(created.record.id, { tracking: created.tracking });
      const disks: FrozenDisk[] = created.record.disks.map((d) => ({
        key: d.key, path: abs(d.parent), format: 'vhdx', open: () => openDisk(abs(d.parent)),
      }));
      return {
        id: created.record.id, vm: describeLoaded(loaded), consistency, consistencyNote: note,
        createdAt: new Date(created.record.createdAt), disks,
        references: [...created.references].map(([diskKey, referenceId]) => ({ diskKey, referenceId })),
      };
    });
  }

  async #freezeBareDisk(vm: VmDescription): Promise<BackupCheckpoint> {
    const d = vm.disks[0]!;
    const disk = await openDisk(d.path);
    const virtualSize = disk.size;
    await disk.close();
    const tracking = new Map([[d.key, await freezeTracking(d.path, virtualSize)]]);
    // The tracking file lives beside the disk; a read-only folder only costs the next backup a scan.
    const referenceId = await startReference(d.path, virtualSize).catch((err: unknown) => {
      this.#onLog({ level: 'warning', message: `cannot start change tracking beside ${d.path} (${(err as Error).message}); the next backup will scan`, target: d.path });
      return undefined;
    });
    const id = `bare-${Date.now().toString(36)}`;
    this.#live.set(id, { tracking });
    return {
      id, vm, consistency: 'crash', consistencyNote: 'bare disk file: read in place, no checkpoint (nothing may write it during the backup)',
      createdAt: new Date(), references: referenceId ? [{ diskKey: d.key, referenceId }] : [],
      disks: [{ key: d.key, path: d.path, format: d.format, open: () => openDisk(d.path) }],
    };
  }

  async getChangedRanges(cp: BackupCheckpoint, disk: FrozenDisk, since: DiskReference | undefined): Promise<ChangedRanges> {
    const frozen = this.#live.get(cp.id)?.tracking.get(disk.key);
    if (!since) return { available: false, reason: 'the previous restore point has no change-tracking reference for this disk' };
    if (!frozen) return { available: false, reason: `no change-tracking state for disk ${disk.key}` };
    const r = changesSince(frozen, since.referenceId, disk.path);
    return 'ranges' in r ? { available: true, ranges: r.ranges, method: 'local-tracking' } : { available: false, reason: r.reason };
  }

  async removeBackupCheckpoint(cp: BackupCheckpoint, opts: HostCallOptions & { keepReference: boolean }): Promise<DiskReference[]> {
    this.#live.delete(cp.id);
    if (!isBare(cp.vm)) {
      await withVmLock(cp.vm.location, async () => {
        const loaded = await loadVm(cp.vm.location);
        if (loaded.config.backupCheckpoint?.id !== cp.id) return;
        await removeCheckpoint(loaded, (rel) => join(loaded.dir, rel), this.#onLog);
      });
    }
    return opts.keepReference ? cp.references ?? [] : [];
  }

  async findLeftoverCheckpoints(vm: VmDescription): Promise<{ id: string; description: string }[]> {
    if (isBare(vm)) return [];
    const rec = (await loadVm(vm.location)).config.backupCheckpoint;
    if (!rec) return [];
    refuseIfOwnerAlive(vm.name, rec);
    return [{ id: rec.id, description: `hvbackup backup checkpoint ${rec.id} (${rec.state}, created ${rec.createdAt}; ${rec.disks.map((d) => d.child).join(', ')})` }];
  }

  async removeLeftoverCheckpoints(vm: VmDescription): Promise<number> {
    if (isBare(vm)) return 0;
    return withVmLock(vm.location, async () => {
      const loaded = await loadVm(vm.location);
      if (!loaded.config.backupCheckpoint) return 0;
      refuseIfOwnerAlive(loaded.config.name, loaded.config.backupCheckpoint);
      this.#onLog({ level: 'warning', message: `merging leftover backup checkpoint ${loaded.config.backupCheckpoint.id} of VM ${loaded.config.name}`, target: loaded.dir });
      await removeCheckpoint(loaded, (rel) => join(loaded.dir, rel), this.#onLog);
      return 1;
    });
  }

  async registerRestoredVM(restored: RestoredVm): Promise<VmSummary> {
    let base: VmConfig | undefined;
    for (const f of restored.configFiles.filter((p) => p.endsWith('.json'))) {
      base = decodeVmConfig(await readFile(f), f);
    }
    const config: VmConfig = {
      schema: VM_CONFIG_SCHEMA,
      id: restored.newId || !base ? newVmId() : base.id,
      name: restored.name,
      generation: base?.generation ?? 2,
      disks: restored.disks.map((d) => ({ key: d.key, path: toPosix(relative(restored.directory, d.path)) })),
      ...(base?.guestVss ? { guestVss: base.guestVss } : {}),
    };
    const file = join(restored.directory, VM_CONFIG_DIR, `${restored.name}.json`);
    await mkdir(join(restored.directory, VM_CONFIG_DIR), { recursive: true });
    await writeFileAtomic(file, encodeVmConfig(config), { noClobber: true });
    return { id: config.id, name: config.name, host: 'local', location: restored.directory, state: 'ready' };
  }
}

function refuseIfOwnerAlive(name: string, rec: BackupCheckpointRecord): void {
  if (checkpointOwnerAlive(rec)) {
    throw new HvError('ERR_LOCKED', `VM ${name} is being backed up right now (checkpoint ${rec.id}, process ${rec.owner?.pid} on ${rec.owner?.host}); its checkpoint is not a leftover`, { target: name });
  }
}

function isBare(vm: VmDescription): boolean {
  return vm.details?.bareDisk === true;
}

function chooseConsistency(c: VmConfig, wanted: Consistency | 'auto'): { consistency: Consistency; note: string } {
  const hook = c.guestVss?.enabled === true;
  if (wanted === 'crash') return { consistency: 'crash', note: 'crash-consistent checkpoint requested' };
  if (hook) return { consistency: 'application', note: `guest VSS hook declared in the VM config${c.guestVss?.note ? ` (${c.guestVss.note})` : ''}` };
  if (wanted === 'application') throw new HvError('ERR_HOST', `VM ${c.name} declares no guest VSS hook; an application-consistent checkpoint is not possible`, { target: c.name });
  return { consistency: 'crash', note: 'no guest VSS hook declared in the VM config; crash-consistent' };
}

async function describeBareDisk(path: string): Promise<VmDescription> {
  const id = createHash('sha256').update(`bare:${path}`).digest('hex');
  const uuid = `${id.slice(0, 8)}-${id.slice(8, 12)}-${id.slice(12, 16)}-${id.slice(16, 20)}-${id.slice(20, 32)}`;
  return {
    id: uuid, name: bareDiskName(path), host: 'local', location: path, state: 'ready', generation: 2,
    configFiles: [], disks: [{ key: basename(path), path, format: await diskFormat(path) }], details: { bareDisk: true },
  };
}

/** VM folders at `dir` and below, to `depth` levels. Folders that fail to parse are reported, not skipped silently. */
export async function findVmFolders(dir: string, depth: number): Promise<LoadedVm[]> {
  if (await findConfigFile(dir).catch(() => undefined)) return [await loadVm(dir)];
  if (depth === 0) return [];
  const out: LoadedVm[] = [];
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const e of entries) {
    if (e.isDirectory() && !e.name.startsWith('.')) out.push(...(await findVmFolders(join(dir, e.name), depth - 1)));
  }
  return out;
}
