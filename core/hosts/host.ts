// A hypervisor driver: what the backup and restore engines need from a host, and no more.
// Implementations: the local VHDX host (core/hosts/local, any OS, used by tests and demos)
// and Hyper-V on Windows (core/hosts/hyperv). Shaped so that later replica VMs (several
// checkpoints in a chain) and instant recovery fit.

import type { ByteRange, Disk } from '../disk/disk.ts';

export type Consistency = 'application' | 'crash';

export interface VmSummary {
  /** Stable id (Hyper-V VMId GUID; the local host keeps one in the VM's config). */
  id: string;
  name: string;
  /** The host driver that owns it: "local" or "hyperv". */
  host: 'local' | 'hyperv';
  /** Where the VM lives: its folder (local) or its configuration location (Hyper-V). */
  location: string;
  state?: string;
}

export interface VmDiskInfo {
  /** Stable key of the disk within the VM: controller location (e.g. "SCSI:0:0") or file name. */
  key: string;
  /** The disk file as the VM uses it now (may be an .avhdx if checkpoints exist). */
  path: string;
  format: 'vhdx' | 'raw';
}

export interface VmDescription extends VmSummary {
  generation: 1 | 2;
  /** Hyper-V configuration version, e.g. "9.0"; absent on the local host. */
  configVersion?: string;
  /** Files that describe the VM (Hyper-V .vmcx/.vmrs, or the local host's JSON config). */
  configFiles: string[];
  disks: VmDiskInfo[];
  /** Host-specific facts kept in the restore point (cluster, checkpoint type, ...). */
  details?: Record<string, unknown>;
}

/** What a restore point keeps so the next backup can ask for changes since it. */
export interface DiskReference {
  diskKey: string;
  /** Hyper-V: the RCT id of the reference point. Local host: the tracker's reference id. */
  referenceId: string;
  /** The disk's identity when the reference was taken (DataWriteGuid / virtual size). */
  dataWriteGuid?: string;
}

export interface FrozenDisk {
  key: string;
  /** The frozen (read-only) disk file: the parent of the checkpoint's differencing disk. */
  path: string;
  format: 'vhdx' | 'raw';
  /** Open the frozen disk read-only (through its chain, if it has a parent). */
  open(): Promise<Disk>;
}

export interface BackupCheckpoint {
  /** Host's id of the checkpoint (snapshot id, or local checkpoint id). */
  id: string;
  vm: VmDescription;
  consistency: Consistency;
  /** Why consistency is what it is, e.g. "guest VSS failed: ...; took crash-consistent". */
  consistencyNote?: string;
  createdAt: Date;
  disks: FrozenDisk[];
  /**
   * References the host already started at the freeze (local host), so the engine can
   * record them in the manifest before removing the checkpoint. Absent: the engine takes
   * the ones removeBackupCheckpoint returns.
   */
  references?: DiskReference[];
}

export type ChangedRanges =
  | { available: true; ranges: ByteRange[]; method: 'rct' | 'local-tracking' | 'differencing-bitmap' }
  | { available: false; reason: string };

export interface RestoredVm {
  /** Folder the VM's files were written to. */
  directory: string;
  name: string;
  configFiles: string[];
  disks: { key: string; path: string }[];
  /** Give the VM a new id (restore beside the original) or keep the original one. */
  newId: boolean;
}

export interface HostCallOptions {
  signal?: AbortSignal;
}

export interface Host {
  readonly kind: 'local' | 'hyperv';

  listVMs(opts?: HostCallOptions): Promise<VmSummary[]>;
  /** `ref` is a VM id, name, or (local host) folder path. */
  describeVM(ref: string, opts?: HostCallOptions): Promise<VmDescription>;

  /**
   * Freeze the VM's disks: afterwards writes go to new differencing disks and
   * `disks[].path` are stable until removeBackupCheckpoint.
   */
  createBackupCheckpoint(vm: VmDescription, opts: HostCallOptions & { consistency: Consistency | 'auto' }): Promise<BackupCheckpoint>;

  /** Ranges of `disk` changed since `since` (a reference from the previous restore point). */
  getChangedRanges(cp: BackupCheckpoint, disk: FrozenDisk, since: DiskReference | undefined, opts?: HostCallOptions): Promise<ChangedRanges>;

  /**
   * Merge the checkpoint back (the VM keeps running on its disks). With keepReference,
   * leave a reference point (Hyper-V ConvertToReferencePoint) and return one DiskReference per disk.
   */
  removeBackupCheckpoint(cp: BackupCheckpoint, opts: HostCallOptions & { keepReference: boolean }): Promise<DiskReference[]>;

  /** Backup checkpoints left behind by killed runs (ours only, never the user's). */
  findLeftoverCheckpoints(vm: VmDescription, opts?: HostCallOptions): Promise<{ id: string; description: string }[]>;
  /** Merge leftovers found by findLeftoverCheckpoints, keeping every guest write. */
  removeLeftoverCheckpoints(vm: VmDescription, opts?: HostCallOptions): Promise<number>;

  /** Make restored files a VM the host knows (Hyper-V Import-VM; local host: write its config). */
  registerRestoredVM(restored: RestoredVm, opts?: HostCallOptions): Promise<VmSummary>;

  /**
   * Optional: refuse (ERR_UNSUPPORTED, naming the VM and versions) a VM this host cannot run,
   * e.g. a Hyper-V configuration version newer than the host supports. The restore engine
   * calls it before writing any byte.
   */
  checkRestoreCompatibility?(vmName: string, configVersion: string | undefined, opts?: HostCallOptions): Promise<void>;

  /**
   * Optional: let the host forget references no restore point needs any more (Hyper-V:
   * DestroyReferencePoint for the reference points holding these RCT ids). Returns how many
   * host objects were released. Retention calls it for the points it removes.
   */
  releaseReferences?(vm: VmDescription, refs: DiskReference[], opts?: HostCallOptions): Promise<number>;
}
