// Skeleton: bodies land in the next commits.
import { HvError } from '../../errors.ts';
import type {
  BackupCheckpoint, ChangedRanges, Consistency, DiskReference, FrozenDisk, Host, HostCallOptions,
  RestoredVm, VmDescription, VmSummary,
} from '../host.ts';

export interface HyperVHostOptions {
  /** Tag put on our recovery checkpoints (ElementName prefix), followed by the job id. */
  jobId?: string;
}

const todo = (what: string): never => { throw new HvError('ERR_UNSUPPORTED', `Hyper-V driver: ${what} is not implemented yet`); };

export class HyperVHost implements Host {
  readonly kind = 'hyperv' as const;
  readonly options: HyperVHostOptions;
  constructor(opts: HyperVHostOptions = {}) { this.options = opts; }
  async listVMs(_opts?: HostCallOptions): Promise<VmSummary[]> { return todo('listVMs'); }
  async describeVM(_ref: string, _opts?: HostCallOptions): Promise<VmDescription> { return todo('describeVM'); }
  async createBackupCheckpoint(_vm: VmDescription, _opts: HostCallOptions & { consistency: Consistency | 'auto' }): Promise<BackupCheckpoint> { return todo('createBackupCheckpoint'); }
  async getChangedRanges(_cp: BackupCheckpoint, _disk: FrozenDisk, _since: DiskReference | undefined, _opts?: HostCallOptions): Promise<ChangedRanges> { return todo('getChangedRanges'); }
  async removeBackupCheckpoint(_cp: BackupCheckpoint, _opts: HostCallOptions & { keepReference: boolean }): Promise<DiskReference[]> { return todo('removeBackupCheckpoint'); }
  async findLeftoverCheckpoints(_vm: VmDescription, _opts?: HostCallOptions): Promise<{ id: string; description: string }[]> { return todo('findLeftoverCheckpoints'); }
  async removeLeftoverCheckpoints(_vm: VmDescription, _opts?: HostCallOptions): Promise<number> { return todo('removeLeftoverCheckpoints'); }
  async registerRestoredVM(_restored: RestoredVm, _opts?: HostCallOptions): Promise<VmSummary> { return todo('registerRestoredVM'); }
}
