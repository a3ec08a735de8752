// The local host: VM folders laid out like Hyper-V's, bare disk files, sample VMs and the
// emulated guest writer used by tests and demos.
export { LocalHost, findVmFolders } from './host.ts';
export type { LocalHostOptions } from './host.ts';
export { loadVm, withVmLock, VM_CONFIG_DIR, VM_DISK_DIR, VM_SNAPSHOT_DIR } from './vm-folder.ts';
export type { VmConfig } from './config.ts';
export { repairVm } from './repair.ts';
export { createSampleVm } from './sample.ts';
export type { SampleVmOptions } from './sample.ts';
export { guestWrite } from './guest.ts';
