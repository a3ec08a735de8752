// The Hyper-V driver against a stubbed PowerShell session: each test scripts what Hyper-V
// answers (fixtures shaped like real Get-VM / CIM output) and asserts the exact sequence of
// scripts and the parameters the driver sent.
import assert from 'node:assert/strict';
import { toVmDescription } from '../../core/hosts/hyperv/mapping.ts';
import type { RawVm } from '../../core/hosts/hyperv/mapping.ts';
import { getHost } from '../../core/hosts/index.ts';
import { HyperVFrozenDisk, STEP_TIMEOUT_MS } from '../../core/hosts/hyperv/hyperv-host.ts';
import type { HyperVCheckpoint, HyperVHost } from '../../core/hosts/hyperv/hyperv-host.ts';
import { createHyperVHost } from '../../core/hosts/hyperv/index.ts';
import * as S from '../../core/hosts/hyperv/scripts.ts';
import { scriptName } from '../../core/hosts/hyperv/scripts.ts';
import { calledScripts, fx, hostWith, paramsOf, rejectsWith, scriptedSession } from './testing.ts';
import type { Step } from './testing.ts';

const VM_ID = '6b1c3f0e-8e4b-4f5b-9c1a-2d7e5a9b0c11';
const SNAP = 'Microsoft:7A8B9C0D-1E2F-4A3B-8C4D-5E6F7A8B9C0D';
const JOB = 'B8F1A2C3-D4E5-4F60-8172-93A4B5C6D7E8';
const OS_VHDX = 'D:\\Hyper-V\\web01\\Virtual Hard Disks\\web01.vhdx';
const DATA_VHDX = 'D:\\Hyper-V\\web01\\Virtual Hard Disks\\web01-data.vhdx';
const web01 = () => toVmDescription(fx<RawVm>('describe-vm-web01'));

/** GET_JOB (completed) .. LIST_EXPORT: the snapshot job done, the checkpoint tagged, its disks and configuration read. */
function snapshotGrantedSteps(): Step[] {
  return [
    [S.GET_JOB, fx('job-completed')],
    [S.GET_JOB_SNAPSHOT, fx('job-snapshot')],
    [S.TAG_SNAPSHOT, fx('method-done')],
    [S.GET_SNAPSHOT_DISKS, fx('snapshot-disks')],
    [S.EXPORT_SNAPSHOT_CONFIG, fx('export-done')],
    [S.LIST_EXPORT, fx('list-export')],
  ];
}

/** HOST_INFO .. LIST_EXPORT of a backup checkpoint that Hyper-V grants at once. */
function checkpointSteps(checkpoints = 'checkpoints-none'): Step[] {
  return [
    [S.HOST_INFO, fx('host-info-2022')],
    [S.LIST_CHECKPOINTS, fx(checkpoints)],
    [S.CREATE_RECOVERY_SNAPSHOT, fx('create-snapshot-started')],
    [S.GET_JOB, fx('job-running')],
    ...snapshotGrantedSteps(),
  ];
}

/** HOST_INFO, LIST_CHECKPOINTS (none: null) and a started CREATE_RECOVERY_SNAPSHOT, then `rest`. */
function snapshotStartedSteps(...rest: Step[]): Step[] {
  return [
    [S.HOST_INFO, fx('host-info-2022')],
    [S.LIST_CHECKPOINTS, null],
    [S.CREATE_RECOVERY_SNAPSHOT, fx('create-snapshot-started')],
    ...rest,
  ];
}
const CHECKPOINT_SCRIPTS = ['host-info', 'list-checkpoints', 'create-recovery-snapshot', 'get-job', 'get-job', 'get-job-snapshot', 'tag-snapshot',
  'get-snapshot-disks', 'export-snapshot-config', 'list-export'];
const EXPORT_DIR = 'C:\\Users\\hvbackup\\AppData\\Local\\Temp\\hvbackup-export-job-1-6b1c3f0e-8e4b-4f5b-9c1a-2d7e5a9b0c11';

describe('HyperVHost: discovery', () => {
  it('maps Get-VM / Get-VMHardDiskDrive output onto VmDescription with controller disk keys', async () => {
    const { host, session } = hostWith([[S.LIST_VMS, fx('list-vms')], [S.DESCRIBE_VM, fx('describe-vm-web01')]]);
    const list = await host.listVMs();
    assert.deepEqual(list.map((v) => [v.id, v.name, v.state]), [[VM_ID, 'web01', 'Running'], ['0f9e8d7c-6b5a-4938-8271-605f4e3d2c1b', 'db01', 'Off']]);
    const vm = await host.describeVM('web01');
    assert.deepEqual(paramsOf(session, 1), { ref: 'web01' });
    assert.equal(vm.host, 'hyperv');
    assert.equal(vm.generation, 2);
    assert.equal(vm.configVersion, '10.0');
    assert.deepEqual(vm.disks, [
      { key: 'SCSI:0:0', path: OS_VHDX, format: 'vhdx' },
      { key: 'SCSI:0:1', path: DATA_VHDX, format: 'vhdx' },
    ]);
    assert.equal(vm.configFiles.length, 3);
    assert.deepEqual(vm.details, { checkpointType: 'Production', clustered: false });
  });

  it('maps a clustered generation 1 VM (single-object pipeline output, IDE, cluster group) and refuses its VHD disk', async () => {
    const vm = toVmDescription(fx<RawVm>('describe-vm-clustered-gen1'));
    assert.equal(vm.generation, 1);
    assert.equal(vm.state, 'Off');
    assert.deepEqual(vm.configFiles, ['C:\\ClusterStorage\\Volume1\\legacy-app\\Virtual Machines\\A1B2C3D4-E5F6-4711-8899-AABBCCDDEEFF.xml']);
    assert.equal(vm.details?.clusterGroup, 'legacy-app');
    assert.equal(vm.details?.clusterOwnerNode, 'HV02');
    assert.equal(vm.details?.checkpointType, 'Standard');
    assert.deepEqual(vm.disks, []);
    const { host, session } = hostWith([]);
    await rejectsWith(host.createBackupCheckpoint(vm, { consistency: 'auto' }), 'ERR_UNSUPPORTED', 'legacy-app', 'IDE:0:0', 'Convert-VHD');
    assert.equal(session.invoke.callCount, 0);
  });

  it('answers ERR_NOT_FOUND naming the VM when Get-VM finds nothing', async () => {
    const { host } = hostWith([[S.DESCRIBE_VM, null]]);
    await rejectsWith(host.describeVM('nosuchvm'), 'ERR_NOT_FOUND', '"nosuchvm"');
  });
});

describe('HyperVHost: full backup checkpoint (WS2016+ recovery checkpoint)', () => {
  it('creates an application-consistent recovery checkpoint, waits for the job, tags it and lists the frozen disks', async () => {
    const { host, session, sleep } = hostWith(checkpointSteps());
    const cp = await host.createBackupCheckpoint(web01(), { consistency: 'auto' });
    assert.deepEqual(calledScripts(session), CHECKPOINT_SCRIPTS);
    assert.deepEqual(paramsOf(session, 1), { vmId: VM_ID });
    assert.deepEqual(paramsOf(session, 2), { vmId: VM_ID, name: 'HVBackup:job-1', snapshotType: 32768, consistencyLevel: 1 });
    assert.deepEqual(paramsOf(session, 3), { jobId: JOB });
    assert.deepEqual(paramsOf(session, 5), { jobId: JOB, vmId: VM_ID });
    assert.deepEqual(paramsOf(session, 6), { snapshotInstanceId: SNAP, name: 'HVBackup:job-1', notes: 'Created by HVBackup job job-1' });
    assert.deepEqual(paramsOf(session, 7), { vmId: VM_ID, snapshotInstanceId: SNAP, checkpointId: '7a8b9c0d-1e2f-4a3b-8c4d-5e6f7a8b9c0d' });
    assert.deepEqual(paramsOf(session, 8), { vmId: VM_ID, snapshotInstanceId: SNAP, folderName: 'hvbackup-export-job-1-6b1c3f0e-8e4b-4f5b-9c1a-2d7e5a9b0c11' });
    assert.deepEqual(paramsOf(session, 9), { directory: EXPORT_DIR });
    assert.equal(cp.vm.location, EXPORT_DIR, 'the engine stores the exported config, relative to the export folder');
    assert.deepEqual(cp.vm.configFiles, fx('list-export'));
    assert.deepEqual(cp.vm.disks, web01().disks);
    assert.deepEqual(sleep.args, [[250]], 'polls once while JobState is 4 (running)');
    assert.equal(cp.mode, 'recovery');
    assert.equal(cp.consistency, 'application');
    assert.equal(cp.consistencyNote, undefined);
    assert.equal(cp.id, '7a8b9c0d-1e2f-4a3b-8c4d-5e6f7a8b9c0d');
    assert.deepEqual(cp.disks.map((d) => [d.key, d.path, d.format, d.virtualSize, d.rctIndex]), [
      ['SCSI:0:0', OS_VHDX, 'vhdx', 137438953472, 0],
      ['SCSI:0:1', DATA_VHDX, 'vhdx', 268435456, 1],
    ]);
  });

  it('when the configuration export fails, stores the live configuration files and says so', async () => {
    const steps = checkpointSteps().slice(0, 8);
    const { host, session, logs } = hostWith([...steps,
      [S.EXPORT_SNAPSHOT_CONFIG, { ReturnValue: 4096, JobId: JOB, Directory: EXPORT_DIR }],
      [S.GET_JOB, { ...fx<object>('job-failed-disk'), ErrorDescription: 'Failed to export the virtual machine configuration: Access is denied. (0x80070005)' }],
      [S.REMOVE_EXPORT, null]]);
    const cp = await host.createBackupCheckpoint(web01(), { consistency: 'auto' });
    assert.deepEqual(calledScripts(session).slice(-3), ['export-snapshot-config', 'get-job', 'remove-export']);
    assert.deepEqual(cp.vm, web01());
    assert.ok(logs.some((l) => l.includes('could not export the checkpoint') && l.includes('Access is denied')), logs.join('\n'));
  });

  it('without an earlier reference point, asks the engine to scan', async () => {
    const { host, session } = hostWith(checkpointSteps());
    const cp = await host.createBackupCheckpoint(web01(), { consistency: 'auto' });
    const r = await host.getChangedRanges(cp, cp.disks[0]!, undefined);
    assert.deepEqual(r, { available: false, reason: 'no previous reference point for disk SCSI:0:0 of VM web01' });
    assert.equal(session.invoke.callCount, CHECKPOINT_SCRIPTS.length);
  });

  it('after the copy converts the checkpoint to a reference point and returns its RCT ids per disk', async () => {
    const { host, session } = hostWith([
      ...checkpointSteps(),
      [S.CONVERT_TO_REFERENCE_POINT, fx('convert-started')],
      [S.GET_JOB, fx('job-convert-completed')],
      [S.GET_REFERENCE_POINTS, [fx<unknown[]>('reference-points')[0]]],
      [S.REMOVE_EXPORT, null],
    ]);
    const cp = await host.createBackupCheckpoint(web01(), { consistency: 'auto' });
    const refs = await host.removeBackupCheckpoint(cp, { keepReference: true });
    assert.deepEqual(calledScripts(session).slice(-4), ['convert-to-reference-point', 'get-job', 'get-reference-points', 'remove-export']);
    assert.deepEqual(paramsOf(session, 10), { snapshotInstanceId: SNAP });
    assert.deepEqual(paramsOf(session, 11), { jobId: 'C9D0E1F2-A3B4-4C5D-8E6F-708192A3B4C5' });
    assert.deepEqual(paramsOf(session, 12), { vmId: VM_ID, instanceId: null, jobId: 'C9D0E1F2-A3B4-4C5D-8E6F-708192A3B4C5' });
    assert.deepEqual(paramsOf(session, 13), { directory: EXPORT_DIR });
    assert.deepEqual(refs, [
      { diskKey: 'SCSI:0:0', referenceId: 'rctX:7e1f2a3b-0000-4000-8000-000000000001:3' },
      { diskKey: 'SCSI:0:1', referenceId: 'rctX:7e1f2a3b-0000-4000-8000-000000000002:3' },
    ]);
  });

  it('merges the checkpoint with DestroySnapshot when no reference is wanted', async () => {
    const { host, session } = hostWith([...checkpointSteps(), [S.DESTROY_SNAPSHOT, fx('method-done')], [S.REMOVE_EXPORT, null]]);
    const cp = await host.createBackupCheckpoint(web01(), { consistency: 'auto' });
    assert.deepEqual(await host.removeBackupCheckpoint(cp, { keepReference: false }), []);
    assert.deepEqual(calledScripts(session).slice(-2), ['destroy-snapshot', 'remove-export']);
    assert.deepEqual(paramsOf(session, 10), { snapshotInstanceId: SNAP });
  });

  it('destroys only the reference points holding the RCT ids retention gave up', async () => {
    const [, older] = fx<{ InstanceID: string }[]>('reference-points');
    const { host, session } = hostWith([[S.GET_REFERENCE_POINTS, fx('reference-points')], [S.DESTROY_REFERENCE_POINT, fx('method-done')]]);
    const n = await host.releaseReferences(web01(), [{ diskKey: 'SCSI:0:1', referenceId: 'rctX:7e1f2a3b-0000-4000-8000-000000000002:2' }]);
    assert.equal(n, 1);
    assert.deepEqual(calledScripts(session), ['get-reference-points', 'destroy-reference-point']);
    assert.deepEqual(paramsOf(session, 1), { referencePointId: older!.InstanceID });
  });
});

describe('HyperVHost: RCT incrementals', () => {
  async function checkpoint(extra: Step[]) {
    const h = hostWith([...checkpointSteps(), ...extra]);
    const cp = await h.host.createBackupCheckpoint(web01(), { consistency: 'auto' });
    return { ...h, cp };
  }
  const since = { diskKey: 'SCSI:0:1', referenceId: 'rctX:7e1f2a3b-0000-4000-8000-000000000002:2' };

  it('loops GetVirtualDiskChanges while ProcessedByteLength is short and returns merged byte ranges', async () => {
    const { host, session, cp } = await checkpoint([
      [S.GET_VIRTUAL_DISK_CHANGES, fx('rct-changes-part1')],
      [S.GET_VIRTUAL_DISK_CHANGES, fx('rct-changes-part2')],
    ]);
    const r = await host.getChangedRanges(cp, cp.disks[1]!, since);
    assert.deepEqual(calledScripts(session).slice(-2), ['get-virtual-disk-changes', 'get-virtual-disk-changes']);
    assert.deepEqual(paramsOf(session, 10), { path: DATA_VHDX, limitId: since.referenceId, byteOffset: 0, byteLength: 268435456 });
    assert.deepEqual(paramsOf(session, 11), { path: DATA_VHDX, limitId: since.referenceId, byteOffset: 134217728, byteLength: 134217728 });
    assert.deepEqual(r, {
      available: true, method: 'rct', ranges: [
        { offset: 0, length: 65536 }, { offset: 1048576, length: 2097152 }, { offset: 67108864, length: 4194304 },
        { offset: 134217728, length: 1048576 }, { offset: 268369920, length: 65536 },
      ],
    });
  });

  it('a failed GetVirtualDiskChanges (reset or unknown tracking id) becomes a scan reason, not an error', async () => {
    const { host, cp } = await checkpoint([[S.GET_VIRTUAL_DISK_CHANGES, fx('rct-changes-failed')]]);
    const r = await host.getChangedRanges(cp, cp.disks[1]!, since);
    assert.equal(r.available, false);
    assert.ok(!r.available && r.reason.includes('Failed (return value 32768)') && r.reason.includes(since.referenceId) && r.reason.includes(DATA_VHDX), JSON.stringify(r));
  });

  it('a PowerShell failure during GetVirtualDiskChanges also becomes a scan reason', async () => {
    const { host, cp } = await checkpoint([[S.GET_VIRTUAL_DISK_CHANGES, new Error('The RPC server is unavailable.')]]);
    const r = await host.getChangedRanges(cp, cp.disks[0]!, { diskKey: 'SCSI:0:0', referenceId: 'rctX:x:1' });
    assert.ok(!r.available && r.reason.includes('The RPC server is unavailable.'), JSON.stringify(r));
  });

  it('a previous restore point without an RCT id for the disk means scan', async () => {
    const { host, session, cp } = await checkpoint([]);
    const r = await host.getChangedRanges(cp, cp.disks[0]!, { diskKey: 'SCSI:0:0', referenceId: '' });
    assert.deepEqual(r, { available: false, reason: 'the previous restore point has no RCT id for disk SCSI:0:0 of VM web01' });
    assert.equal(session.invoke.callCount, CHECKPOINT_SCRIPTS.length);
  });

  it('configuration version below 6.2 takes the Checkpoint-VM path and every incremental scans', async () => {
    const raw = { ...fx<RawVm>('describe-vm-web01'), Version: '5.0' };
    const { host, session } = hostWith([
      [S.HOST_INFO, fx('host-info-2022')], [S.LIST_CHECKPOINTS, null], [S.LEGACY_CHECKPOINT, fx('legacy-checkpoint')],
    ]);
    const cp = await host.createBackupCheckpoint(toVmDescription(raw), { consistency: 'auto' });
    assert.deepEqual(calledScripts(session), ['host-info', 'list-checkpoints', 'legacy-checkpoint']);
    assert.equal(cp.mode, 'legacy');
    const r = await host.getChangedRanges(cp, cp.disks[0]!, since);
    assert.ok(!r.available && r.reason.includes('configuration version 5.0') && r.reason.includes('6.2'), JSON.stringify(r));
  });
});

describe('HyperVHost: consistency fallback and WMI job failures', () => {
  it('falls back to crash-consistent when guest VSS fails, recording why', async () => {
    const { host, session, logs } = hostWith(snapshotStartedSteps(
      [S.GET_JOB, fx('job-failed-vss')],
      [S.CREATE_RECOVERY_SNAPSHOT, fx('create-snapshot-started')],
      ...snapshotGrantedSteps(),
    ));
    const cp = await host.createBackupCheckpoint(web01(), { consistency: 'auto' });
    assert.equal(paramsOf(session, 2).consistencyLevel, 1);
    assert.equal(paramsOf(session, 4).consistencyLevel, 2);
    assert.equal(cp.consistency, 'crash');
    assert.match(cp.consistencyNote ?? '', /^guest VSS failed \(.*Production checkpoints cannot be created for 'web01'.*\); took crash-consistent$/s);
    assert.ok(logs.some((l) => l.startsWith('warning: VM web01: application-consistent checkpoint failed')), logs.join('\n'));
  });

  it('asks a VM that is off for a crash-consistent checkpoint at once, saying why', async () => {
    const { host, session } = hostWith(checkpointSteps());
    const cp = await host.createBackupCheckpoint({ ...web01(), state: 'Off' }, { consistency: 'auto' });
    assert.equal(paramsOf(session, 2).consistencyLevel, 2);
    assert.equal(session.invoke.getCalls().filter((c) => c.args[0] === S.CREATE_RECOVERY_SNAPSHOT).length, 1);
    assert.equal(cp.consistency, 'crash');
    assert.equal(cp.consistencyNote, 'VM was off: no guest to quiesce, disks at rest');
  });

  it('does not fall back when application consistency was demanded', async () => {
    const { host, session } = hostWith(snapshotStartedSteps([S.GET_JOB, fx('job-failed-vss')]));
    await rejectsWith(host.createBackupCheckpoint(web01(), { consistency: 'application' }), 'ERR_HOST', 'VM web01', 'Production checkpoints cannot be created');
    assert.equal(session.invoke.callCount, 4);
  });

  it('a failed Msvm_ConcreteJob surfaces ErrorDescription in ERR_HOST naming the VM', async () => {
    const { host } = hostWith(snapshotStartedSteps([S.GET_JOB, fx('job-failed-disk')]));
    const err = await rejectsWith(host.createBackupCheckpoint(web01(), { consistency: 'crash' }), 'ERR_HOST',
      'CreateSnapshot (recovery checkpoint, crash-consistent) of VM web01 failed', 'There is not enough space on the disk. (0x80070070)', 'job state Exception', 'error code 32768');
    assert.equal(err.target, 'web01');
    assert.equal(err.data.jobId, JOB);
  });

  it('a non-job return value is reported with its Hyper-V meaning', async () => {
    const { host } = hostWith([
      [S.HOST_INFO, fx('host-info-2022')], [S.LIST_CHECKPOINTS, null],
      [S.CREATE_RECOVERY_SNAPSHOT, { ReturnValue: 32775, JobId: '', SnapshotInstanceId: '' }],
    ]);
    await rejectsWith(host.createBackupCheckpoint(web01(), { consistency: 'crash' }), 'ERR_HOST', 'VM web01 failed: Invalid state for this operation (return value 32775)');
  });

  it('removes the checkpoint again when naming it fails, so no untagged checkpoint is left', async () => {
    const steps = checkpointSteps().slice(0, 6);
    const { host, session } = hostWith([...steps, [S.TAG_SNAPSHOT, { ReturnValue: 32768, JobId: '' }], [S.DESTROY_SNAPSHOT, fx('method-done')]]);
    await rejectsWith(host.createBackupCheckpoint(web01(), { consistency: 'auto' }), 'ERR_HOST', 'Naming the backup checkpoint of VM web01 failed');
    assert.deepEqual(calledScripts(session).slice(-2), ['tag-snapshot', 'destroy-snapshot']);
    assert.deepEqual(paramsOf(session, 7), { snapshotInstanceId: SNAP });
  });

  it('stops polling when cancelled', async () => {
    const ac = new AbortController();
    const { host, session, sleep } = hostWith(snapshotStartedSteps([S.GET_JOB, fx('job-running')]));
    sleep.callsFake(async () => ac.abort());
    await rejectsWith(host.createBackupCheckpoint(web01(), { consistency: 'crash', signal: ac.signal }), 'ERR_CANCELLED');
    assert.equal(session.invoke.callCount, 4);
  });
});

describe('HyperVHost: checkpoint hygiene', () => {
  it('finds and merges only the recovery checkpoints HVBackup left behind', async () => {
    const { host, session, logs } = hostWith([
      [S.LIST_CHECKPOINTS, fx('checkpoints-leftover')],
      [S.LIST_CHECKPOINTS, fx('checkpoints-leftover')],
      [S.REMOVE_CHECKPOINT, { Removed: 1 }],
    ]);
    const found = await host.findLeftoverCheckpoints(web01());
    assert.deepEqual(found, [{ id: '9d3f2a1b-4c5d-4e6f-8a7b-1c2d3e4f5a6b', description: 'HVBackup:0c7e2f4a-1111-4222-8333-944455556666 (Recovery, created 2026-11-25T02:00:03.441Z)' }]);
    assert.equal(await host.removeLeftoverCheckpoints(web01()), 1);
    assert.deepEqual(calledScripts(session), ['list-checkpoints', 'list-checkpoints', 'remove-checkpoint']);
    assert.deepEqual(paramsOf(session, 2), { vmId: VM_ID, checkpointId: '9d3f2a1b-4c5d-4e6f-8a7b-1c2d3e4f5a6b' });
    assert.ok(logs.some((l) => l.includes('left behind by an earlier backup of VM web01')));
  });

  it('merges our leftover before the next backup checkpoint and leaves another product\'s alone', async () => {
    const steps = checkpointSteps('checkpoints-leftover');
    steps.splice(2, 0, [S.REMOVE_CHECKPOINT, { Removed: 1 }]);
    const { host, session, logs } = hostWith(steps);
    await host.createBackupCheckpoint(web01(), { consistency: 'auto' });
    assert.deepEqual(calledScripts(session).slice(0, 4), ['host-info', 'list-checkpoints', 'remove-checkpoint', 'create-recovery-snapshot']);
    assert.deepEqual(paramsOf(session, 2), { vmId: VM_ID, checkpointId: '9d3f2a1b-4c5d-4e6f-8a7b-1c2d3e4f5a6b' });
    assert.equal(session.invoke.getCalls().filter((c) => c.args[0] === S.REMOVE_CHECKPOINT).length, 1);
    assert.ok(logs.some((l) => l.includes('leaving checkpoint web01 - Backup - (11/20/2026 - 2:00:01 AM) (Recovery')), logs.join('\n'));
  });

  it('refuses a VM with user checkpoints and names them', async () => {
    const { host, session } = hostWith([[S.HOST_INFO, fx('host-info-2022')], [S.LIST_CHECKPOINTS, fx('checkpoints-user')]]);
    const err = await rejectsWith(host.createBackupCheckpoint(web01(), { consistency: 'auto' }), 'ERR_UNSUPPORTED');
    assert.equal(err.message, 'VM web01 has user checkpoints ("before patch Tuesday", "web01 - (11/12/2026 - 9:14:02 AM)", "HVBackup: before upgrade"): merge or delete them, or run with -AllowUserCheckpoints (scan)');
    assert.equal(err.target, 'web01');
    assert.deepEqual(calledScripts(session), ['host-info', 'list-checkpoints'], 'nothing created, nothing removed');
  });

  it('with allowUserCheckpoints backs up by scanning and keeps no reference point', async () => {
    const steps = checkpointSteps('checkpoints-user');
    const { host, session } = hostWith([...steps, [S.DESTROY_SNAPSHOT, fx('method-done')], [S.REMOVE_EXPORT, null]], { allowUserCheckpoints: true });
    const cp = await host.createBackupCheckpoint(web01(), { consistency: 'auto' });
    const r = await host.getChangedRanges(cp, cp.disks[0]!, { diskKey: 'SCSI:0:0', referenceId: 'rctX:x:1' });
    assert.ok(!r.available && r.reason.includes('user checkpoints ("before patch Tuesday"'), JSON.stringify(r));
    assert.deepEqual(await host.removeBackupCheckpoint(cp, { keepReference: true }), []);
    assert.deepEqual(calledScripts(session).slice(-2), ['destroy-snapshot', 'remove-export']);
    assert.ok(!calledScripts(session).includes('remove-checkpoint'), 'user checkpoints untouched');
  });
});

describe('HyperVHost: Windows Server 2012 R2 path', () => {
  it('every step gets the caller\'s signal and a time limit; steps that work as long as their work takes (Checkpoint-VM, Remove-VMSnapshot) get none', async () => {
    const { host, session } = hostWith([
      [S.HOST_INFO, fx('host-info-2012r2')], [S.LIST_CHECKPOINTS, fx('checkpoints-user')],
      [S.LEGACY_CHECKPOINT, fx('legacy-checkpoint')], [S.REMOVE_CHECKPOINT, { Removed: 1 }],
    ], { stepTimeoutMs: 1234 });
    const signal = new AbortController().signal;
    const cp = await host.createBackupCheckpoint({ ...web01(), configVersion: '5.0' }, { consistency: 'auto', signal }) as HyperVCheckpoint;
    await host.removeBackupCheckpoint(cp, { keepReference: true, signal });
    assert.deepEqual(session.invoke.getCalls().map((c) => [scriptName(c.args[0]), c.args[2]?.timeoutMs, c.args[2]?.signal === signal]), [
      ['host-info', 1234, true], ['list-checkpoints', 1234, true], ['legacy-checkpoint', 0, true], ['remove-checkpoint', 0, true],
    ]);
    const polled = hostWith(checkpointSteps());
    await polled.host.createBackupCheckpoint(web01(), { consistency: 'auto' });
    const limits = polled.session.invoke.getCalls().map((c) => c.args[2]?.timeoutMs);
    assert.ok(limits.length > 3 && limits.every((t) => t === STEP_TIMEOUT_MS), `WMI method calls and job polls are limited too: ${limits.join(', ')}`);
  });

  it('uses Checkpoint-VM, reads the frozen parent, merges with Remove-VMSnapshot, and scans', async () => {
    const { host, session } = hostWith([
      [S.HOST_INFO, fx('host-info-2012r2')], [S.LIST_CHECKPOINTS, fx('checkpoints-user')],
      [S.LEGACY_CHECKPOINT, fx('legacy-checkpoint')], [S.REMOVE_CHECKPOINT, { Removed: 1 }],
    ]);
    const vm = { ...web01(), configVersion: '5.0' };
    const cp = await host.createBackupCheckpoint(vm, { consistency: 'auto' }) as HyperVCheckpoint;
    assert.deepEqual(paramsOf(session, 2), { vmId: VM_ID, name: 'HVBackup:job-1' });
    assert.equal(cp.mode, 'legacy');
    assert.equal(cp.consistency, 'crash');
    assert.match(cp.consistencyNote ?? '', /Checkpoint-VM.*Windows Server 2012 R2 Standard 6\.3\.9600/);
    assert.deepEqual(cp.disks.map((d) => [d.key, d.path]), [['IDE:0:0', 'C:\\VMs\\old01\\old01.vhdx']]);
    const r = await host.getChangedRanges(cp, cp.disks[0]!, { diskKey: 'IDE:0:0', referenceId: 'x' });
    assert.ok(!r.available && r.reason.includes('need Windows Server 2016 or later'), JSON.stringify(r));
    assert.deepEqual(await host.removeBackupCheckpoint(cp, { keepReference: true }), []);
    assert.deepEqual(calledScripts(session), ['host-info', 'list-checkpoints', 'legacy-checkpoint', 'remove-checkpoint']);
    assert.deepEqual(paramsOf(session, 3), { vmId: VM_ID, checkpointId: 'abcdef01-2345-4678-89ab-cdef01234567' });
  });
});

describe('HyperVHost: restore registration and version check', () => {
  it('refuses a configuration version newer than the host supports, before any byte is written', async () => {
    const { host, session } = hostWith([[S.HOST_INFO, fx('host-info-2019')]]);
    const err = await rejectsWith(host.checkRestoreCompatibility('web01', '10.0'), 'ERR_UNSUPPORTED');
    assert.equal(err.message, 'VM web01 has configuration version 10.0, which host HV19 (Microsoft Windows Server 2019 Standard 10.0.17763) cannot run (it supports 5.0, 6.2, 7.0, 7.1, 8.0, 8.1, 8.2, 8.3, 9.0): restore it on a host running a newer Windows Server, or export the disks only');
    await host.checkRestoreCompatibility('web01', '9.0');
    await host.checkRestoreCompatibility('web01', '8.0');
    assert.equal(session.invoke.callCount, 1, 'host facts asked once per session');
  });

  it('on 2012 R2 (no Get-VMHostSupportedVersion) only 5.0 is accepted', async () => {
    const { host } = hostWith([[S.HOST_INFO, fx('host-info-2012r2')]]);
    await host.checkRestoreCompatibility('db01', '5.0');
    await rejectsWith(host.checkRestoreCompatibility('db01', '8.0'), 'ERR_UNSUPPORTED', 'VM db01 has configuration version 8.0', 'supports 5.0');
  });

  it('imports beside the original with Compare-VM/Import-VM -Copy -GenerateNewId, disks mapped by controller key', async () => {
    const { host, session } = hostWith([[S.IMPORT_VM, fx('import-ok')]]);
    const vm = await host.registerRestoredVM({
      directory: 'E:\\Restore\\web01-restored', name: 'web01', newId: true,
      configFiles: ['E:\\Restore\\web01-restored\\Virtual Machines\\6B1C3F0E-8E4B-4F5B-9C1A-2D7E5A9B0C11.vmcx', 'E:\\Restore\\web01-restored\\Virtual Machines\\6B1C3F0E-8E4B-4F5B-9C1A-2D7E5A9B0C11.vmgs'],
      disks: [{ key: 'SCSI:0:0', path: 'E:\\Restore\\web01-restored\\web01.vhdx' }],
    });
    assert.deepEqual(paramsOf(session, 0), {
      configPath: 'E:\\Restore\\web01-restored\\Virtual Machines\\6B1C3F0E-8E4B-4F5B-9C1A-2D7E5A9B0C11.vmcx', newId: true, name: 'web01',
      directory: 'E:\\Restore\\web01-restored', vhdDestinationPath: 'E:\\Restore\\web01-restored\\Virtual Hard Disks',
      stagingPath: 'E:\\Restore\\web01-restored\\.hvbackup-import-job-1',
      disks: [{ key: 'SCSI:0:0', path: 'E:\\Restore\\web01-restored\\web01.vhdx' }],
    });
    assert.deepEqual(vm, { id: 'e4d3c2b1-a098-4765-8432-10fedcba9876', name: 'web01', host: 'hyperv', location: 'E:\\Restore\\web01-restored', state: 'Off' });
  });

  it('reports Compare-VM incompatibilities instead of half-importing', async () => {
    const { host } = hostWith([[S.IMPORT_VM, fx('import-incompatible')]]);
    const err = await rejectsWith(host.registerRestoredVM({ directory: 'E:\\R', name: 'web01', newId: false, configFiles: ['E:\\R\\x.vmcx'], disks: [] }),
      'ERR_HOST', "Hyper-V cannot import restored VM web01 from E:\\R\\x.vmcx: Could not find Ethernet switch 'External-LAN'. (33012)");
    assert.equal(err.target, 'E:\\R\\x.vmcx');
  });

  it('refuses a restore without a configuration file', async () => {
    const { host, session } = hostWith([]);
    await rejectsWith(host.registerRestoredVM({ directory: 'E:\\R', name: 'web01', newId: true, configFiles: ['E:\\R\\a.vmgs'], disks: [] }), 'ERR_INVALID_ARGUMENT', 'web01', 'E:\\R');
    assert.equal(session.invoke.callCount, 0);
  });
});

describe('HyperVHost: factory and contract', () => {
  it("getHost('hyperv') builds the driver with the engine's log sink and the given options", async () => {
    const logs: string[] = [];
    const session = scriptedSession([[S.LIST_CHECKPOINTS, fx('checkpoints-leftover')], [S.REMOVE_CHECKPOINT, { Removed: 1 }]]);
    const host = await getHost('hyperv', { onLog: (e) => logs.push(e.message), hyperv: { session, jobId: 'job-9' } });
    assert.equal(host.kind, 'hyperv');
    assert.equal((host as HyperVHost).jobId, 'job-9');
    assert.equal(createHyperVHost({ session, jobId: 'nightly run/1' }).jobId, 'nightly-run-1', 'job id kept to name-safe characters');
    assert.equal(await host.removeLeftoverCheckpoints(web01()), 1);
    assert.ok(logs.some((l) => l.includes('left behind by an earlier backup of VM web01')), logs.join('\n'));
  });

  it('createHyperVHost returns a host of kind hyperv whose checkpoints only it accepts', async () => {
    const host = createHyperVHost({ session: { invoke: async () => null } });
    assert.equal(host.kind, 'hyperv');
    const foreign = { id: 'x', vm: web01(), consistency: 'crash' as const, createdAt: new Date(), disks: [] };
    await rejectsWith(host.getChangedRanges(foreign, new HyperVFrozenDisk('SCSI:0:0', OS_VHDX, 1, 0), undefined), 'ERR_INVALID_ARGUMENT', 'not made by the Hyper-V host');
  });
});
