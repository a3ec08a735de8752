// The real backup engine over the Hyper-V driver, with Hyper-V played by a stub session that
// answers by script name: frozen disks are real VHDX files (qemu-img), RCT answers the ranges
// the test wrote, and restore points restore byte-identical.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sinon from 'sinon';
import { restoreVM } from '../../core/api/restore.ts';
import { runBackupJob } from '../../core/backup/engine.ts';
import { restoreVm } from '../../core/restore/restore.ts';
import { HyperVHost } from '../../core/hosts/hyperv/hyperv-host.ts';
import * as S from '../../core/hosts/hyperv/scripts.ts';
import { scriptName } from '../../core/hosts/hyperv/scripts.ts';
import { openRepository } from '../../core/repo/index.ts';
import { MiB, newRepo, qemuImg, scratch } from '../backup/testing.ts';
import type { Scratch } from '../backup/testing.ts';
import { fx } from './testing.ts';

const VM_ID = '6b1c3f0e-8e4b-4f5b-9c1a-2d7e5a9b0c11';

/** Just enough Hyper-V: one VM with one VHDX, recovery snapshots, reference points, RCT. */
function fakeHyperV(s: Scratch, vhdx: string) {
  let snapshots = 0;
  let rctGeneration = 0;
  const state = { changed: [] as { offset: number; length: number }[], rctFails: false, exportDirs: [] as string[] };
  const handlers: Record<string, (p: Record<string, unknown>) => unknown> = {
    'describe-vm': () => ({
      ...fx<object>('describe-vm-web01'), ConfigurationLocation: s.path('web01'), Path: s.path('web01'),
      HardDrives: [{ ControllerType: 1, ControllerNumber: 0, ControllerLocation: 0, Path: vhdx, DiskNumber: null }],
      ConfigurationFiles: [],
    }),
    'host-info': () => fx('host-info-2022'),
    'list-checkpoints': () => null,
    'create-recovery-snapshot': () => ({ ReturnValue: 0, JobId: '', SnapshotInstanceId: `Microsoft:00000000-0000-4000-8000-00000000000${++snapshots}` }),
    'tag-snapshot': () => ({ ReturnValue: 0, JobId: '' }),
    'get-snapshot-disks': () => [{ HostResource: [vhdx], ControllerType: 1, ControllerNumber: 0, ControllerLocation: 0, Size: 64 * MiB, VhdFormat: 'VHDX' }],
    'export-snapshot-config': (p) => {
      const dir = s.path(String(p.folderName));
      mkdirSync(join(dir, 'Virtual Machines'), { recursive: true });
      writeFileSync(join(dir, 'Virtual Machines', `${VM_ID.toUpperCase()}.vmcx`), `config of snapshot ${snapshots}`);
      state.exportDirs.push(dir);
      return { ReturnValue: 0, JobId: '', Directory: dir };
    },
    'list-export': (p) => [join(String(p.directory), 'Virtual Machines', `${VM_ID.toUpperCase()}.vmcx`)],
    'remove-export': (p) => { rmSync(String(p.directory), { recursive: true, force: true }); return null; },
    'get-virtual-disk-changes': (p) => {
      assert.equal(p.limitId, `rctX:disk0:${rctGeneration - 1}`, 'asks for changes since the previous reference point');
      if (state.rctFails) return { ReturnValue: 32768, JobId: '', ProcessedByteLength: 0, ChangedByteOffsets: [], ChangedByteLengths: [] };
      return { ReturnValue: 0, JobId: '', ProcessedByteLength: p.byteLength, ChangedByteOffsets: state.changed.map((c) => c.offset), ChangedByteLengths: state.changed.map((c) => c.length) };
    },
    'convert-to-reference-point': () => ({ ReturnValue: 0, JobId: '', ReferencePointInstanceId: `Microsoft:rp-${rctGeneration}` }),
    'get-reference-points': (p) => [{ InstanceID: p.instanceId, ElementName: '', ReferencePointType: 2, ConsistencyLevel: 1, ResilientChangeTrackingIdentifiers: [`rctX:disk0:${rctGeneration++}`] }],
  };
  const invoke = sinon.stub<[string, Record<string, unknown>], Promise<unknown>>().callsFake(async (script, params) => {
    const h = handlers[scriptName(script)];
    if (!h) throw new Error(`fake Hyper-V has no answer for ${scriptName(script)}`);
    return structuredClone(h(params));
  });
  return { session: { invoke }, state };
}

describe('HyperVHost under the backup engine', function () {
  this.timeout(120_000);
  let s: Scratch;
  let vhdx: string;
  before(async () => {
    s = scratch('hvb-hyperv-engine-');
    await newRepo(s.path('repo'));
    mkdirSync(s.path('web01'));
    vhdx = s.path('web01', 'web01.vhdx');
    execFileSync('qemu-img', ['create', '-q', '-f', 'vhdx', vhdx, '64M']);
    execFileSync('qemu-io', ['-f', 'vhdx', '-c', 'write -P 0x11 0 8M', '-c', 'write -P 0x22 40M 2M', vhdx], { stdio: 'ignore' });
  });
  after(() => s.cleanup());

  async function backup(host: HyperVHost, full = false) {
    const repo = await openRepository(s.path('repo'));
    try {
      const [r] = await runBackupJob({}, { repo, host, sources: ['web01'], full });
      assert.equal(r!.status, 'success', JSON.stringify(r!.error));
      return { result: r!, manifest: await repo.loadManifest(r!.pointId!) };
    } finally {
      await repo.close();
    }
  }

  async function restoresIdentical(pointId: string, name: string) {
    const to = s.path(name);
    await restoreVM({}, { repository: s.path('repo'), point: pointId, to, disk: 'SCSI:0:0' });
    const cmp = qemuImg('compare', '-f', 'vhdx', '-F', 'vhdx', vhdx, join(to, 'web01.vhdx'));
    assert.equal(cmp.status, 0, cmp.out);
  }

  it('full, then RCT changed blocks, then a scan when RCT fails: every point restores identical', async () => {
    const { session, state } = fakeHyperV(s, vhdx);
    const host = new HyperVHost({ session, jobId: 'e2e', sleep: async () => undefined });

    const full = await backup(host);
    assert.equal(full.manifest.method, 'full');
    assert.equal(full.manifest.consistency, 'application');
    assert.deepEqual(full.manifest.disks.map((d) => [d.key, d.reference?.referenceId]), [['SCSI:0:0', 'rctX:disk0:0']]);
    assert.deepEqual(full.manifest.configFiles.map((f) => f.path), [`Virtual Machines/${VM_ID.toUpperCase()}.vmcx`], 'the exported checkpoint config, not the live files');
    assert.deepEqual(state.exportDirs.map((d) => d.endsWith('hvbackup-export-e2e-6b1c3f0e-8e4b-4f5b-9c1a-2d7e5a9b0c11')), [true]);
    await restoresIdentical(full.result.pointId!, 'restore-full');

    execFileSync('qemu-io', ['-f', 'vhdx', '-c', 'write -P 0x33 1M 192k', '-c', 'write -P 0x44 50M 4k', vhdx], { stdio: 'ignore' });
    state.changed = [{ offset: MiB, length: 192 * 1024 }, { offset: 50 * MiB, length: 4096 }];
    const incr = await backup(host);
    assert.equal(incr.manifest.method, 'changed-blocks');
    assert.equal(incr.manifest.disks[0]!.reference?.referenceId, 'rctX:disk0:1');
    assert.ok(incr.result.readBytes < 64 * MiB / 4 && incr.result.readBytes > 0, `read ${incr.result.readBytes} bytes for two small changes`);
    await restoresIdentical(incr.result.pointId!, 'restore-incr');

    execFileSync('qemu-io', ['-f', 'vhdx', '-c', 'write -P 0x55 20M 64k', vhdx], { stdio: 'ignore' });
    state.rctFails = true;
    const scan = await backup(host);
    assert.equal(scan.manifest.method, 'scan');
    assert.match(scan.manifest.methodReason ?? '', /SCSI:0:0: RCT unavailable for .*web01\.vhdx .*rctX:disk0:1.*Failed \(return value 32768\)/);
    await restoresIdentical(scan.result.pointId!, 'restore-scan');

    const calls = session.invoke.getCalls().map((c) => scriptName(c.args[0]));
    assert.equal(calls.filter((c) => c === 'convert-to-reference-point').length, 3, 'each checkpoint became a reference point');
    assert.equal(calls.filter((c) => c === 'remove-export').length, 3, 'each export folder was removed');
  });

  it('the restore engine hands Import-VM the staged exported config and the restored disks by controller key', async () => {
    const { session } = fakeHyperV(s, vhdx);
    const host = new HyperVHost({ session, jobId: 'e2e-restore', sleep: async () => undefined });
    const { result, manifest } = await backup(host, true);
    assert.equal(manifest.method, 'full');
    let seen: Record<string, unknown> | undefined;
    session.invoke.withArgs(S.IMPORT_VM).callsFake(async (_script, p) => {
      // What Import-VM needs must exist while it runs: the staged .vmcx and the restored disk.
      const disks = p.disks as { key: string; path: string }[];
      seen = { ...p, configText: readFileSync(String(p.configPath), 'utf8'), disksExist: disks.map((d) => existsSync(d.path)) };
      return fx('import-ok');
    });
    const repo = await openRepository(s.path('repo'));
    try {
      const to = s.path('restored-copy');
      await restoreVm({}, { repo, host, manifest: await repo.loadManifest(result.pointId!), to, newName: 'web01-copy' });
      assert.ok(seen, 'Import-VM was called');
      assert.equal(seen.newId, true);
      assert.equal(seen.name, 'web01-copy');
      assert.match(String(seen.configPath), new RegExp(`Virtual Machines[\\\\/]${VM_ID.toUpperCase()}\\.vmcx$`));
      assert.match(String(seen.configText), /^config of snapshot \d+$/);
      assert.deepEqual(seen.disks, [{ key: 'SCSI:0:0', path: join(to, 'Virtual Hard Disks', 'web01.vhdx') }]);
      assert.deepEqual(seen.disksExist, [true]);
      const cmp = qemuImg('compare', '-f', 'vhdx', '-F', 'vhdx', vhdx, join(to, 'Virtual Hard Disks', 'web01.vhdx'));
      assert.equal(cmp.status, 0, cmp.out);
    } finally {
      await repo.close();
    }
  });
});
