// The Hyper-V host driver. Windows Server 2016+: recovery checkpoints through
// Msvm_VirtualSystemSnapshotService (application-consistent, falling back to crash), reference
// points and RCT for incrementals. Windows Server 2012 R2 (or VMs below configuration 6.2):
// Checkpoint-VM / Remove-VMSnapshot and a full scan every time. All PowerShell goes through
// one PsSession; see session.ts for how parameters stay out of script text.

import { randomUUID } from 'node:crypto';
import type { Disk } from '../../disk/disk.ts';
import { HvError, throwIfAborted } from '../../errors.ts';
import type { LogEvent } from '../../progress.ts';
import { openDisk } from '../../vhdx/index.ts';
import type {
  BackupCheckpoint, ChangedRanges, Consistency, DiskReference, FrozenDisk, Host, HostCallOptions,
  RestoredVm, VmDescription, VmSummary,
} from '../host.ts';
import { CHECKPOINT_TAG, classifyCheckpoints, describeCheckpoint, tagSafe, userCheckpointsError } from './checkpoints.ts';
import type { CheckpointInfo, RawCheckpoint } from './checkpoints.ts';
import { asArray, compareVersions, diskFormat, diskKey, parseDate, str, toVmDescription, toVmSummary } from './mapping.ts';
import type { RawDrive, RawVm, RawVmSummary } from './mapping.ts';
import { queryRctChanges } from './rct.ts';
import * as S from './scripts.ts';
import { NodePowerShellSession } from './session.ts';
import type { PsSession } from './session.ts';
import { callMethod, MethodFailed } from './wmi-job.ts';
import type { JobContext } from './wmi-job.ts';

export interface HyperVHostOptions {
  /** The PowerShell session (tests pass a stub); default: a node-powershell session. */
  session?: PsSession;
  /** Job id written into our checkpoints' names ("HVBackup:<jobId>"); default a random UUID. */
  jobId?: string;
  /** Back up VMs that have user checkpoints, by scanning (RCT is unsafe with them). */
  allowUserCheckpoints?: boolean;
  /** Msvm_ConcreteJob polling interval (default 500 ms). */
  pollIntervalMs?: number;
  sleep?: (ms: number) => Promise<void>;
  onLog?: (event: LogEvent) => void;
  /** PowerShell executable for the default session ("powershell" or "pwsh"). */
  executable?: string;
  /** Milliseconds one PowerShell step may take (default STEP_TIMEOUT_MS; 0: no limit). */
  stepTimeoutMs?: number;
}

/**
 * How long one PowerShell step may take before the driver takes Hyper-V's management service
 * for hung. Steps are short (a WMI method returns a job that later steps poll), so a step that
 * runs for minutes is a host that stopped answering: a scheduled backup fails and says so
 * instead of waiting for ever, and its PowerShell process is ended (session.ts).
 */
export const STEP_TIMEOUT_MS = 5 * 60_000;

/**
 * Steps that work for as long as their work takes, with no time limit (a signal still stops
 * them): Import-VM -Copy copies every disk, Remove-VMSnapshot waits for its merge, and
 * Checkpoint-VM waits for the guest's VSS writers.
 */
const UNBOUNDED_STEPS: ReadonlySet<string> = new Set([S.IMPORT_VM, S.REMOVE_CHECKPOINT, S.LEGACY_CHECKPOINT]);

export interface HostInfo {
  computerName: string;
  osVersion: string;
  osCaption: string;
  /** VM configuration versions this host can run (Get-VMHostSupportedVersion); empty on 2012 R2. */
  supportedVersions: string[];
  defaultVersion?: string;
  failoverClusters: boolean;
}

/** Recovery checkpoints and RCT need Windows Server 2016 (NT 10.0) and VM configuration 6.2. */
const MIN_RCT_CONFIG_VERSION = '6.2';
const RECOVERY_SNAPSHOT_TYPE = 32768;
const CONSISTENCY_LEVEL = { application: 1, crash: 2 } as const;

export class HyperVFrozenDisk implements FrozenDisk {
  readonly key: string;
  readonly path: string;
  readonly format: 'vhdx' | 'raw';
  /** Virtual size from Get-VHD (undefined if Hyper-V did not say). */
  readonly virtualSize: number | undefined;
  /** Position among the snapshot's storage settings = index into the reference point's RCT ids. */
  readonly rctIndex: number;
  constructor(key: string, path: string, virtualSize: number | undefined, rctIndex: number) {
    this.key = key;
    this.path = path;
    this.format = diskFormat(path);
    this.virtualSize = virtualSize;
    this.rctIndex = rctIndex;
  }
  /** Our own VHDX library reads the frozen parent (local path or SMB share), read-only. */
  open(): Promise<Disk> {
    return openDisk(this.path);
  }
}

export interface HyperVCheckpoint extends BackupCheckpoint {
  readonly mode: 'recovery' | 'legacy';
  /** Msvm_VirtualSystemSettingData.InstanceID of the recovery snapshot ("Microsoft:<guid>"). */
  readonly snapshotInstanceId?: string;
  readonly tag: string;
  /** Set when incrementals must scan (user checkpoints allowed, 2012 R2, config < 6.2). */
  readonly rctUnavailableReason?: string;
  /** Host folder holding the checkpoint's exported configuration (cp.vm.configFiles), removed with the checkpoint. */
  readonly exportDirectory?: string;
  disks: HyperVFrozenDisk[];
}

export class HyperVHost implements Host {
  readonly kind = 'hyperv' as const;
  readonly jobId: string;
  readonly #session: PsSession;
  readonly #opts: HyperVHostOptions;
  #hostInfo: Promise<HostInfo> | undefined;

  constructor(opts: HyperVHostOptions = {}) {
    this.#opts = opts;
    this.#session = opts.session ?? new NodePowerShellSession({ executable: opts.executable });
    this.jobId = tagSafe(opts.jobId ?? randomUUID());
  }

  async dispose(): Promise<void> {
    await this.#session.dispose?.();
  }

  #log(level: LogEvent['level'], message: string, target?: string): void {
    this.#opts.onLog?.({ level, message, target });
  }

  #job(step: string, vmName: string, signal?: AbortSignal): JobContext {
    return {
      session: this.#session, step, vmName, signal,
      pollIntervalMs: this.#opts.pollIntervalMs ?? 500,
      timeoutMs: this.#opts.stepTimeoutMs ?? STEP_TIMEOUT_MS,
      sleep: this.#opts.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms))),
    };
  }

  /** The time limit of one step (InvokeOptions.timeoutMs). */
  #timeout(script: string): number {
    return UNBOUNDED_STEPS.has(script) ? 0 : this.#opts.stepTimeoutMs ?? STEP_TIMEOUT_MS;
  }

  async #invoke(script: string, params: Record<string, unknown>, signal?: AbortSignal): Promise<unknown> {
    throwIfAborted(signal);
    return this.#session.invoke(script, params, { signal, timeoutMs: this.#timeout(script) });
  }

  /** OS version and supported configuration versions, asked once per session. */
  hostInfo(opts: HostCallOptions = {}): Promise<HostInfo> {
    this.#hostInfo ??= this.#invoke(S.HOST_INFO, {}, opts.signal).then((raw) => {
      const r = (raw ?? {}) as Record<string, unknown>;
      return {
        computerName: str(r.ComputerName), osVersion: str(r.OsVersion), osCaption: str(r.OsCaption),
        supportedVersions: asArray<string>(r.SupportedVersions).map(String),
        defaultVersion: r.DefaultVersion ? str(r.DefaultVersion) : undefined,
        failoverClusters: Boolean(r.FailoverClusters),
      };
    });
    this.#hostInfo.catch(() => { this.#hostInfo = undefined; });
    return this.#hostInfo;
  }

  async listVMs(opts: HostCallOptions = {}): Promise<VmSummary[]> {
    return asArray<RawVmSummary>(await this.#invoke(S.LIST_VMS, {}, opts.signal)).map(toVmSummary);
  }

  async describeVM(ref: string, opts: HostCallOptions = {}): Promise<VmDescription> {
    const raw = (await this.#invoke(S.DESCRIBE_VM, { ref }, opts.signal)) as RawVm | null;
    if (!raw) throw new HvError('ERR_NOT_FOUND', `no virtual machine named or with id "${ref}" on this Hyper-V host`, { target: ref });
    return toVmDescription(raw);
  }

  /** Why this VM cannot use recovery checkpoints + RCT on this host, or undefined when it can. */
  async legacyReason(vm: VmDescription, opts: HostCallOptions = {}): Promise<string | undefined> {
    const info = await this.hostInfo(opts);
    if (compareVersions(info.osVersion || '0', '10.0') < 0) {
      return `host ${info.computerName} runs ${info.osCaption || 'Windows'} ${info.osVersion}: recovery checkpoints and RCT need Windows Server 2016 or later`;
    }
    if (vm.configVersion && compareVersions(vm.configVersion, MIN_RCT_CONFIG_VERSION) < 0) {
      return `VM ${vm.name} has configuration version ${vm.configVersion}: RCT needs ${MIN_RCT_CONFIG_VERSION} or later (Update-VMVersion while the VM is off)`;
    }
    return undefined;
  }

  async #checkpoints(vm: VmDescription, signal?: AbortSignal): Promise<RawCheckpoint[]> {
    return asArray<RawCheckpoint>(await this.#invoke(S.LIST_CHECKPOINTS, { vmId: vm.id }, signal));
  }

  async findLeftoverCheckpoints(vm: VmDescription, opts: HostCallOptions = {}): Promise<{ id: string; description: string }[]> {
    const { ours } = classifyCheckpoints(await this.#checkpoints(vm, opts.signal));
    return ours.map((c) => ({ id: c.id, description: describeCheckpoint(c) }));
  }

  async removeLeftoverCheckpoints(vm: VmDescription, opts: HostCallOptions = {}): Promise<number> {
    const { ours } = classifyCheckpoints(await this.#checkpoints(vm, opts.signal));
    return this.#removeOurs(vm, ours, opts.signal);
  }

  async #removeOurs(vm: VmDescription, ours: CheckpointInfo[], signal?: AbortSignal): Promise<number> {
    for (const c of ours) {
      this.#log('warning', `merging checkpoint ${describeCheckpoint(c)} left behind by an earlier backup of VM ${vm.name}`, vm.name);
      await this.#invoke(S.REMOVE_CHECKPOINT, { vmId: vm.id, checkpointId: c.id }, signal);
    }
    return ours.length;
  }

  /**
   * Before freezing: merge our leftovers, refuse when user checkpoints exist (unless allowed,
   * in which case incrementals scan), note other products' recovery checkpoints.
   */
  async #prepareCheckpoints(vm: VmDescription, scanning: boolean, signal?: AbortSignal): Promise<string | undefined> {
    const { ours, user, foreign } = classifyCheckpoints(await this.#checkpoints(vm, signal));
    await this.#removeOurs(vm, ours, signal);
    for (const c of foreign) this.#log('info', `VM ${vm.name}: leaving checkpoint ${describeCheckpoint(c)} alone (not created by HVBackup)`, vm.name);
    // Without RCT (2012 R2 path) every backup scans, so user checkpoints do no harm.
    if (user.length === 0 || scanning) return undefined;
    if (!this.#opts.allowUserCheckpoints) throw userCheckpointsError(vm.name, user);
    const names = user.map((c) => `"${c.name}"`).join(', ');
    this.#log('warning', `VM ${vm.name} has user checkpoints (${names}); backing up by scanning the disks`, vm.name);
    return `VM ${vm.name} has user checkpoints (${names}); RCT is unsafe with them, disks were scanned (-AllowUserCheckpoints)`;
  }

  async createBackupCheckpoint(vm: VmDescription, opts: HostCallOptions & { consistency: Consistency | 'auto' }): Promise<HyperVCheckpoint> {
    const vhd = vm.details?.vhdDisks as string[] | undefined;
    if (vhd?.length) {
      throw new HvError('ERR_UNSUPPORTED', `VM ${vm.name} has VHD (not VHDX) disks: ${vhd.join(', ')}; convert them with Convert-VHD while the VM is off`, { target: vm.name });
    }
    const legacy = await this.legacyReason(vm, opts);
    const userReason = await this.#prepareCheckpoints(vm, legacy !== undefined, opts.signal);
    const tag = `${CHECKPOINT_TAG}${this.jobId}`;
    if (legacy) return this.#legacyCheckpoint(vm, tag, legacy, opts.signal);
    const { level, snapshot, note } = await this.#createRecoverySnapshot(vm, tag, opts.consistency, opts.signal);
    try {
      const job = this.#job('Naming the backup checkpoint', vm.name, opts.signal);
      await callMethod(job, S.TAG_SNAPSHOT, { snapshotInstanceId: snapshot.instanceId, name: tag, notes: `Created by HVBackup job ${this.jobId}` });
      const disks = await this.#snapshotDisks(vm, snapshot, opts.signal);
      const exported = await this.#exportConfig(vm, snapshot.instanceId, opts.signal);
      return {
        id: snapshot.checkpointId, vm: exported?.vm ?? vm, mode: 'recovery', snapshotInstanceId: snapshot.instanceId, tag,
        consistency: level, consistencyNote: note, createdAt: new Date(), disks, rctUnavailableReason: userReason,
        exportDirectory: exported?.directory,
      };
    } catch (err) {
      // Never leave an untagged checkpoint behind: later runs could not tell it is ours.
      await callMethod(this.#job('Removing the failed backup checkpoint', vm.name), S.DESTROY_SNAPSHOT, { snapshotInstanceId: snapshot.instanceId })
        .catch((e: unknown) => this.#log('warning', `could not remove checkpoint ${snapshot.instanceId} of VM ${vm.name}: ${(e as Error).message}`, vm.name));
      throw err;
    }
  }

  async #createRecoverySnapshot(vm: VmDescription, tag: string, wanted: Consistency | 'auto', signal?: AbortSignal) {
    // A VM that is off (or saved) has no guest to ask: its disks are at rest, so don't
    // wait for a VSS attempt that can only fail.
    const resting = vm.state === 'Off' || vm.state === 'Saved';
    const levels: Consistency[] = wanted === 'auto' ? (resting ? ['crash'] : ['application', 'crash']) : [wanted];
    let note: string | undefined = wanted === 'crash' ? 'crash-consistent requested'
      : wanted === 'auto' && resting ? `VM was ${vm.state!.toLowerCase()}: no guest to quiesce, disks at rest` : undefined;
    for (const level of levels) {
      const job = this.#job(`CreateSnapshot (recovery checkpoint, ${level}-consistent)`, vm.name, signal);
      try {
        const r = await callMethod(job, S.CREATE_RECOVERY_SNAPSHOT, { vmId: vm.id, name: tag, snapshotType: RECOVERY_SNAPSHOT_TYPE, consistencyLevel: CONSISTENCY_LEVEL[level] });
        const snapshot = await this.#resultingSnapshot(vm, str(r.SnapshotInstanceId), str(r.JobId), signal);
        return { level, snapshot, note };
      } catch (err) {
        if (!(err instanceof MethodFailed) || level === levels[levels.length - 1]) throw err;
        note = `guest VSS failed (${err.message}); took crash-consistent`;
        this.#log('warning', `VM ${vm.name}: application-consistent checkpoint failed, falling back to crash-consistent: ${err.message}`, vm.name);
      }
    }
    throw new HvError('ERR_INTERNAL', `no consistency level tried for VM ${vm.name}`);
  }

  async #resultingSnapshot(vm: VmDescription, instanceId: string, jobId: string, signal?: AbortSignal) {
    let id = instanceId;
    if (!id) {
      const s = (await this.#invoke(S.GET_JOB_SNAPSHOT, { jobId, vmId: vm.id }, signal)) as { InstanceID?: string } | null;
      id = str(s?.InstanceID);
    }
    if (!id) throw new HvError('ERR_HOST', `CreateSnapshot of VM ${vm.name} completed but Hyper-V did not say which checkpoint it made`, { target: vm.name });
    // Snapshot InstanceIDs read "Microsoft:<checkpoint GUID>"; Get-VMSnapshot's Id is that GUID.
    return { instanceId: id, checkpointId: id.replace(/^Microsoft:/i, '').toLowerCase() };
  }

  async #snapshotDisks(vm: VmDescription, snapshot: { instanceId: string; checkpointId: string }, signal?: AbortSignal): Promise<HyperVFrozenDisk[]> {
    const raw = asArray<{ HostResource: unknown; Size?: number | null } & Partial<RawDrive>>(
      await this.#invoke(S.GET_SNAPSHOT_DISKS, { vmId: vm.id, snapshotInstanceId: snapshot.instanceId, checkpointId: snapshot.checkpointId }, signal));
    return raw.map((d, i) => {
      const path = str(asArray<string>(d.HostResource)[0]);
      const key = d.ControllerType === null || d.ControllerType === undefined ? path.split(/[\\/]/).pop()! : diskKey(d);
      return new HyperVFrozenDisk(key, path, d.Size ?? undefined, i);
    });
  }

  /**
   * The checkpoint's configuration exported as an importable VM; the engine stores these files
   * (relative to cp.vm.location). If the export fails, fall back to the live files with a warning.
   */
  async #exportConfig(vm: VmDescription, snapshotInstanceId: string, signal?: AbortSignal): Promise<{ vm: VmDescription; directory: string } | undefined> {
    const folderName = `hvbackup-export-${`${this.jobId}-${vm.id}`.replace(/[^A-Za-z0-9._-]/g, '_')}`;
    let directory: string | undefined;
    try {
      const job = this.#job('ExportSystemDefinition (checkpoint configuration)', vm.name, signal);
      await callMethod(job, S.EXPORT_SNAPSHOT_CONFIG, { vmId: vm.id, snapshotInstanceId, folderName }, (r) => { directory = str(r.Directory) || undefined; });
      if (!directory) throw new HvError('ERR_HOST', 'ExportSystemDefinition did not say where it wrote');
      const files = asArray<string>(await this.#invoke(S.LIST_EXPORT, { directory }, signal));
      if (!files.some((f) => /\.vmcx$/i.test(f))) throw new HvError('ERR_HOST', `the export in ${directory} holds no .vmcx`, { target: directory });
      return { vm: { ...vm, location: directory, configFiles: files }, directory };
    } catch (err) {
      if (signal?.aborted) throw err;
      this.#log('warning', `VM ${vm.name}: could not export the checkpoint's configuration (${(err as Error).message}); storing the live configuration files`, vm.name);
      if (directory) await this.#removeExport(directory);
      return undefined;
    }
  }

  async #removeExport(directory: string): Promise<void> {
    await this.#invoke(S.REMOVE_EXPORT, { directory }).catch((e: unknown) =>
      this.#log('warning', `could not remove the configuration export ${directory}: ${(e as Error).message}`, directory));
  }

  async #legacyCheckpoint(vm: VmDescription, tag: string, legacy: string, signal?: AbortSignal): Promise<HyperVCheckpoint> {
    const r = (await this.#invoke(S.LEGACY_CHECKPOINT, { vmId: vm.id, name: tag }, signal)) as { Id: string; CreationTime: string; HardDrives: unknown };
    const disks = asArray<RawDrive & { Size?: number | null }>(r.HardDrives)
      .filter((d) => d.Path)
      .map((d, i) => new HyperVFrozenDisk(diskKey(d), str(d.Path), d.Size ?? undefined, i));
    return {
      id: str(r.Id).toLowerCase(), vm, mode: 'legacy', tag, consistency: 'crash', disks,
      consistencyNote: `standard checkpoint (Checkpoint-VM), no guest VSS: ${legacy}`,
      createdAt: parseDate(r.CreationTime), rctUnavailableReason: legacy,
    };
  }

  async getChangedRanges(cp: BackupCheckpoint, disk: FrozenDisk, since: DiskReference | undefined, opts: HostCallOptions = {}): Promise<ChangedRanges> {
    const hcp = asHyperVCheckpoint(cp);
    if (hcp.rctUnavailableReason) return { available: false, reason: hcp.rctUnavailableReason };
    if (!since) return { available: false, reason: `no previous reference point for disk ${disk.key} of VM ${cp.vm.name}` };
    if (!since.referenceId) return { available: false, reason: `the previous restore point has no RCT id for disk ${disk.key} of VM ${cp.vm.name}` };
    if (disk.format !== 'vhdx') return { available: false, reason: `disk ${disk.key} of VM ${cp.vm.name} is not a VHDX; RCT tracks VHDX only` };
    const virtualSize = disk instanceof HyperVFrozenDisk && disk.virtualSize ? disk.virtualSize : await sizeOf(disk);
    const job = this.#job(`GetVirtualDiskChanges (disk ${disk.key})`, cp.vm.name, opts.signal);
    return queryRctChanges(job, { path: disk.path, limitId: since.referenceId, virtualSize });
  }

  async removeBackupCheckpoint(cp: BackupCheckpoint, opts: HostCallOptions & { keepReference: boolean }): Promise<DiskReference[]> {
    const hcp = asHyperVCheckpoint(cp);
    try {
      return await this.#removeCheckpoint(hcp, opts);
    } finally {
      if (hcp.exportDirectory) await this.#removeExport(hcp.exportDirectory);
    }
  }

  async #removeCheckpoint(hcp: HyperVCheckpoint, opts: HostCallOptions & { keepReference: boolean }): Promise<DiskReference[]> {
    const vm = hcp.vm;
    if (hcp.mode === 'legacy') {
      await this.#invoke(S.REMOVE_CHECKPOINT, { vmId: vm.id, checkpointId: hcp.id }, opts.signal);
      return [];
    }
    if (!opts.keepReference || hcp.rctUnavailableReason) {
      await callMethod(this.#job('DestroySnapshot (merging the backup checkpoint)', vm.name, opts.signal), S.DESTROY_SNAPSHOT, { snapshotInstanceId: hcp.snapshotInstanceId });
      return [];
    }
    const job = this.#job('ConvertToReferencePoint', vm.name, opts.signal);
    const r = await callMethod(job, S.CONVERT_TO_REFERENCE_POINT, { snapshotInstanceId: hcp.snapshotInstanceId });
    const instanceId = str(r.ReferencePointInstanceId);
    const rps = asArray<RawReferencePoint>(await this.#invoke(S.GET_REFERENCE_POINTS, { vmId: vm.id, instanceId: instanceId || null, jobId: str(r.JobId) || null }, opts.signal));
    // One answer is the point we made; several mean Hyper-V could not say, so go by our tag.
    const rp = rps.length === 1 ? rps[0] : rps.find((x) => x.ElementName === hcp.tag);
    if (!rp) {
      throw new HvError('ERR_HOST', `ConvertToReferencePoint of VM ${vm.name} completed but its reference point could not be identified (${rps.length} found)`, { target: vm.name });
    }
    const rct = asArray<string>(rp.ResilientChangeTrackingIdentifiers);
    return hcp.disks.map((d) => ({ diskKey: d.key, referenceId: str(rct[d.rctIndex]) }));
  }

  /**
   * Destroy the VM's reference points that hold any of `refs` (the DiskReferences of restore
   * points retention no longer needs). Returns how many were destroyed.
   */
  releaseReferences(vm: VmDescription, refs: DiskReference[], opts: HostCallOptions = {}): Promise<number> {
    return this.destroyReferencePoints(vm, refs, opts);
  }

  async destroyReferencePoints(vm: VmDescription, refs: DiskReference[], opts: HostCallOptions = {}): Promise<number> {
    const wanted = new Set(refs.map((r) => r.referenceId).filter(Boolean));
    const rps = asArray<RawReferencePoint>(await this.#invoke(S.GET_REFERENCE_POINTS, { vmId: vm.id, instanceId: null, jobId: null }, opts.signal));
    let n = 0;
    for (const rp of rps) {
      if (!asArray<string>(rp.ResilientChangeTrackingIdentifiers).some((id) => wanted.has(id))) continue;
      await callMethod(this.#job('DestroyReferencePoint', vm.name, opts.signal), S.DESTROY_REFERENCE_POINT, { referencePointId: rp.InstanceID });
      n++;
    }
    return n;
  }

  /**
   * Can this host run a VM of `configVersion`? Called by the restore engine before it writes
   * any byte; throws ERR_UNSUPPORTED naming the VM, its version and the host's range.
   */
  async checkRestoreCompatibility(vmName: string, configVersion: string | undefined, opts: HostCallOptions = {}): Promise<void> {
    if (!configVersion) return;
    const info = await this.hostInfo(opts);
    const supported = info.supportedVersions.length ? info.supportedVersions : ['5.0']; // 2012 R2 runs 5.0 only
    if (supported.some((v) => compareVersions(v, configVersion) === 0)) return;
    const sorted = [...supported].sort(compareVersions);
    const newest = sorted[sorted.length - 1]!;
    const host = `${info.computerName} (${info.osCaption || 'Windows'} ${info.osVersion})`.trim();
    const fix = compareVersions(configVersion, newest) > 0
      ? 'restore it on a host running a newer Windows Server, or export the disks only'
      : 'restore it on an older host, or restore the disks only and create a new VM';
    throw new HvError('ERR_UNSUPPORTED',
      `VM ${vmName} has configuration version ${configVersion}, which host ${host} cannot run (it supports ${sorted.join(', ')}): ${fix}`,
      { target: vmName, data: { configVersion, supportedVersions: sorted } });
  }

  async registerRestoredVM(restored: RestoredVm, opts: HostCallOptions & { vhdDestinationPath?: string } = {}): Promise<VmSummary> {
    const configPath = restored.configFiles.find((f) => /\.vmcx$/i.test(f)) ?? restored.configFiles.find((f) => /\.xml$/i.test(f));
    if (!configPath) {
      throw new HvError('ERR_INVALID_ARGUMENT', `restored VM ${restored.name} in ${restored.directory} has no .vmcx (or 2012 R2 .xml) configuration file to import`, { target: restored.directory });
    }
    const sep = restored.directory.includes('/') && !restored.directory.includes('\\') ? '/' : '\\';
    const dir = restored.directory.replace(/[\\/]+$/, '');
    const vhdDestinationPath = opts.vhdDestinationPath ?? `${dir}${sep}Virtual Hard Disks`;
    const r = (await this.#invoke(S.IMPORT_VM, {
      configPath, newId: restored.newId, name: restored.name, directory: restored.directory, vhdDestinationPath,
      stagingPath: `${dir}${sep}.hvbackup-import-${this.jobId}`, disks: restored.disks,
    }, opts.signal)) as { Imported: boolean; Incompatibilities?: unknown } & Partial<RawVmSummary>;
    if (!r?.Imported) {
      const problems = asArray<{ Message: string; MessageId: number }>(r?.Incompatibilities).map((i) => `${i.Message} (${i.MessageId})`);
      throw new HvError('ERR_HOST', `Hyper-V cannot import restored VM ${restored.name} from ${configPath}: ${problems.join('; ') || 'no reason given'}`, {
        target: configPath, data: { incompatibilities: problems },
      });
    }
    return toVmSummary(r as RawVmSummary);
  }
}

interface RawReferencePoint { InstanceID: string; ElementName?: string; ResilientChangeTrackingIdentifiers: unknown; VirtualDiskIdentifiers?: unknown }

function asHyperVCheckpoint(cp: BackupCheckpoint): HyperVCheckpoint {
  const h = cp as Partial<HyperVCheckpoint>;
  if (h.mode !== 'recovery' && h.mode !== 'legacy') {
    throw new HvError('ERR_INVALID_ARGUMENT', `checkpoint ${cp.id} of VM ${cp.vm.name} was not made by the Hyper-V host`, { target: cp.vm.name });
  }
  return cp as HyperVCheckpoint;
}

async function sizeOf(disk: FrozenDisk): Promise<number> {
  const d = await disk.open();
  try {
    return d.size;
  } finally {
    await d.close();
  }
}
