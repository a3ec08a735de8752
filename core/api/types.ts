// Result objects of the public API. The CLI prints them (table or --json), the bridge
// sends them to PowerShell, where they become HVBackup.* typed objects. Dates are ISO
// strings so they cross JSON unchanged; sizes are bytes.

export interface RepositoryInfo {
  path: string;
  id: string;
  formatVersion: number;
  encrypted: boolean;
  chunkSize: number;
  compression: string;
  createdAt: string;
}

export interface RepositoryStats extends RepositoryInfo {
  restorePoints: number;
  vms: number;
  /** Sum over restore points of their disks' virtual bytes (what a full copy of each would take). */
  logicalBytes: number;
  /** Bytes of non-zero data referenced (each unique chunk counted once, uncompressed). */
  uniqueBytes: number;
  /** Bytes the repository's objects take in storage. */
  storedBytes: number;
  chunkCount: number;
  /** logicalBytes / uniqueBytes. */
  dedupeRatio: number;
  /** uniqueBytes / stored chunk bytes. */
  compressionRatio: number;
  /** VMs whose next backup reads their disks whole because a repair found their newest point damaged (verify --repair). */
  vmsToRescan: string[];
}

export type BackupMethod = 'full' | 'changed-blocks' | 'scan';

export interface RestorePointDiskInfo {
  key: string;
  fileName: string;
  virtualSize: number;
}

export interface RestorePointInfo {
  id: string;
  repository: string;
  vmName: string;
  vmId: string;
  host: string;
  createdAt: string;
  consistency: 'application' | 'crash';
  method: BackupMethod;
  methodReason?: string;
  /** Bytes of the VM's disks (virtual). */
  totalBytes: number;
  /** Bytes newly stored by this point (compressed), as recorded at backup time. */
  storedBytes: number;
  disks: RestorePointDiskInfo[];
}

export interface ErrorInfo {
  code: string;
  message: string;
  target?: string;
}

export interface BackupResult {
  vmName: string;
  vmId?: string;
  source: string;
  status: 'success' | 'failed' | 'planned';
  pointId?: string;
  method?: BackupMethod;
  methodReason?: string;
  consistency?: 'application' | 'crash';
  startedAt: string;
  finishedAt?: string;
  /** Virtual bytes of the VM's disks. */
  totalBytes: number;
  /** Bytes read from the frozen disks. */
  readBytes: number;
  /** Bytes of new chunks written (after compression). */
  storedBytes: number;
  /**
   * Milliseconds the engine spent on this VM, from describing it to merging its checkpoint
   * (the manifest's stats.durationMs stops before the manifest is written). Excludes process
   * start and opening the repository, which a job pays once for all its VMs; the job's lock is
   * taken while the VMs are described, and only a wait for it beyond that counts here.
   */
  durationMs?: number;
  /** With whatIf: the steps the engine would take. */
  plan?: string[];
  error?: ErrorInfo;
}

export interface RestoreResult {
  pointId: string;
  vmName: string;
  directory: string;
  disks: { key: string; path: string; bytes: number }[];
  /** partial: restored with allowDamaged, and `damaged` lists the ranges written as zeros. */
  status: 'success' | 'planned' | 'partial';
  plan?: string[];
  /** Byte ranges of the disks (by key) written as zeros because their chunk or segment did not load. */
  damaged?: { disk: string; offset: number; length: number; chunk?: string; segment?: number; problem: string }[];
}

export interface VerifyProblem {
  chunk?: string;
  object?: string;
  problem: string;
  /** Restore points the problem breaks. */
  points: string[];
}

export interface VerifyReport {
  repository: string;
  pointsChecked: number;
  chunksChecked: number;
  bytesChecked: number;
  problems: VerifyProblem[];
  ok: boolean;
  /** Set by a repair (verify --repair): what it changed. `ok` and `problems` are what verify found before. */
  repair?: RepairSummary;
}

/** What verify --repair changed. */
export interface RepairSummary {
  /** Index objects that did not load, removed (their packs listed again from the packs' own indexes). */
  indexObjectsRemoved: number;
  packsRescued: number;
  /** Missing or corrupt chunks taken out of the index. */
  chunksRemoved: number;
  packsRewritten: number;
  packsRemoved: number;
  /** Restore points that name a removed chunk: their VMs read their disks whole at the next backup. */
  pointsToRescan: string[];
}

export interface RemoveResult {
  ids: string[];
  status: 'removed' | 'planned';
}
