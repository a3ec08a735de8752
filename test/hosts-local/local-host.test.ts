import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import sinon from 'sinon';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hostname } from 'node:os';
import { isHvError } from '../../core/errors.ts';
import { hostTag } from '../../core/process.ts';
import { spawnSync } from 'node:child_process';
import { decodeVmConfig } from '../../core/hosts/local/config.ts';
import { LocalHost } from '../../core/hosts/local/host.ts';
import { guestWrite } from '../../core/hosts/local/guest.ts';
import { createSampleVm } from '../../core/hosts/local/sample.ts';
import { loadVm, saveVmConfig, withVmLock } from '../../core/hosts/local/vm-folder.ts';
import { childPathFor } from '../../core/hosts/local/checkpoint.ts';
import { repairVm } from '../../core/hosts/local/repair.ts';
import { checkTracking } from '../../core/tracking/index.ts';
import { bitmapRanges, TRACKING_GRANULARITY } from '../../core/tracking/format.ts';
import { checkVhdx, createDifferencingVhdx, createVhdx, openDisk, readVhdxInfo, vhdxTestHooks } from '../../core/vhdx/index.ts';
import { readAt } from '../backup/testing.ts';

const MiB = 1 << 20;

/** Make the VM's checkpoint look like a backup process that died (kill -9) left it. */
async function killOwner(vmDir: string): Promise<void> {
  const vm = await loadVm(vmDir);
  await saveVmConfig(vm, { ...vm.config, backupCheckpoint: { ...vm.config.backupCheckpoint!, owner: { pid: 999_999, host: hostname() } } });
}

describe('local host VM config', () => {
  it('rejects bad configs with ERR_CORRUPT naming the file and the problem', () => {
    const bad = (json: string, re: RegExp) => assert.throws(() => decodeVmConfig(Buffer.from(json), '/vm/Virtual Machines/a.json'),
      (e: unknown) => isHvError(e, 'ERR_CORRUPT') && /a\.json/.test((e as Error).message) && re.test((e as Error).message));
    bad('{', /not valid JSON/);
    bad('{"schema":9,"id":"x","name":"a","generation":2,"disks":[]}', /schema 9/);
    bad('{"schema":1,"id":"x","name":"a","generation":2,"disks":[{"key":"k","path":"../etc/passwd"}]}', /inside the VM folder/);
    bad('{"schema":1,"id":"x","name":"a","generation":2,"disks":[{"key":"k","path":"a"},{"key":"k","path":"b"}]}', /appears twice/);
  });

  it('names a checkpoint child like Hyper-V: <disk>_<GUID>.avhdx beside the disk', () => {
    assert.equal(childPathFor('Virtual Hard Disks/web01.vhdx', 'ab-cd'), 'Virtual Hard Disks/web01_AB-CD.avhdx');
  });
});

describe('local host checkpoints', function () {
  this.timeout(90_000);
  let root: string;
  let vmDir: string;
  let diskPath: string;
  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'hvb-lhost-'));
  });
  beforeEach(async () => {
    vmDir = join(root, `vm${Math.random().toString(36).slice(2, 8)}`);
    diskPath = (await createSampleVm({}, { dir: vmDir, sizeBytes: 64 * MiB, seed: 5 })).disk;
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it('redirects guest writes to the .avhdx, keeps the parent frozen, merges them back and tracks them', async () => {
    const host = new LocalHost();
    const vm = await host.describeVM(vmDir);
    const before = await readAt(diskPath, 3 * MiB, 65536);
    const cp = await host.createBackupCheckpoint(vm, { consistency: 'auto' });
    assert.equal(cp.consistency, 'crash');
    const cfg = (await loadVm(vmDir)).config;
    assert.equal(cfg.backupCheckpoint?.state, 'active');
    assert.match(cfg.disks[0]!.path, /_[0-9A-F-]{36}\.avhdx$/);
    const data = Buffer.alloc(65536, 0x5a);
    const [landed] = await guestWrite(vmDir, [{ offset: 3 * MiB, data }]);
    assert.equal(landed!.file, cfg.disks[0]!.path);
    const frozen = await cp.disks[0]!.open();
    const b = Buffer.alloc(65536);
    await frozen.read(b, 3 * MiB);
    await frozen.close();
    assert.ok(b.equals(before), 'the frozen parent does not see the guest write');
    const refs = await host.removeBackupCheckpoint(cp, { keepReference: true });
    const after = await loadVm(vmDir);
    assert.equal(after.config.backupCheckpoint, undefined);
    assert.equal(after.config.disks[0]!.path, 'Virtual Hard Disks/' + vm.name + '.vhdx');
    assert.ok(!existsSync(join(vmDir, cfg.disks[0]!.path)), 'child deleted');
    assert.ok((await readAt(diskPath, 3 * MiB, 65536)).equals(data), 'guest write merged into the parent');
    const check = await checkTracking(diskPath, refs[0]!.referenceId, 64 * MiB);
    assert.ok(check.trusted, !check.trusted ? check.reason : '');
    assert.deepEqual(bitmapRanges(check.record), [{ offset: 3 * MiB, length: TRACKING_GRANULARITY }]);
  });

  it('keeps the replaced tracking record as .hvrct.prev; a checkpoint nobody wrote to merges without writing the parent or the record', async () => {
    const host = new LocalHost();
    const vm = await host.describeVM(vmDir);
    const hvrct = `${diskPath}.hvrct`;
    const recordBefore = readFileSync(hvrct);
    const cp = await host.createBackupCheckpoint(vm, { consistency: 'auto' });
    assert.ok(readFileSync(`${hvrct}.prev`).equals(recordBefore), 'the replaced record, byte for byte');
    const child = join(vmDir, (await loadVm(vmDir)).config.disks[0]!.path);
    const parentBefore = readFileSync(diskPath);
    const guidBefore = (await readVhdxInfo(diskPath)).dataWriteGuid;
    const recordAtCheckpoint = statSync(hvrct);
    const refs = await host.removeBackupCheckpoint(cp, { keepReference: true });
    const after = await loadVm(vmDir);
    assert.equal(after.config.backupCheckpoint, undefined);
    assert.equal(after.config.disks[0]!.path, `Virtual Hard Disks/${vm.name}.vhdx`);
    assert.ok(!existsSync(child), 'child deleted');
    assert.ok(readFileSync(diskPath).equals(parentBefore), 'parent unchanged, byte for byte');
    assert.equal((await readVhdxInfo(diskPath)).dataWriteGuid, guidBefore);
    const recordAfter = statSync(hvrct);
    assert.deepEqual([recordAfter.ino, recordAfter.mtimeMs], [recordAtCheckpoint.ino, recordAtCheckpoint.mtimeMs], 'tracking record not rewritten');
    const check = await checkTracking(diskPath, refs[0]!.referenceId, 64 * MiB);
    assert.ok(check.trusted, !check.trusted ? check.reason : '');
    assert.deepEqual(bitmapRanges(check.record), []);
  });

  it('is application-consistent only when the config declares a guest VSS hook', async () => {
    const dir = join(root, 'vss');
    await createSampleVm({}, { dir, sizeBytes: 16 * MiB, guestVss: true });
    const host = new LocalHost();
    const cp = await host.createBackupCheckpoint(await host.describeVM(dir), { consistency: 'auto' });
    assert.equal(cp.consistency, 'application');
    assert.match(cp.consistencyNote!, /VSS/);
    await host.removeBackupCheckpoint(cp, { keepReference: false });
    const plain = await host.describeVM(vmDir);
    await assert.rejects(host.createBackupCheckpoint(plain, { consistency: 'application' }), (e: unknown) => isHvError(e, 'ERR_HOST'));
  });

  it('repair merges an active leftover checkpoint (killed backup) keeping every guest write', async () => {
    const cp = await new LocalHost().createBackupCheckpoint(await new LocalHost().describeVM(vmDir), { consistency: 'auto' });
    const data = Buffer.alloc(8192, 0x77);
    await guestWrite(vmDir, [{ offset: 10 * MiB, data }]);
    void cp; // the "killed" process never removes it
    const host = new LocalHost();
    await assert.rejects(repairVm({}, vmDir), (e: unknown) => isHvError(e, 'ERR_LOCKED') && /being backed up right now/.test((e as Error).message), 'a live backup\'s checkpoint is not a leftover');
    await killOwner(vmDir);
    const vm = await host.describeVM(vmDir);
    assert.equal((await host.findLeftoverCheckpoints(vm)).length, 1);
    const r = await repairVm({}, vmDir);
    assert.equal(r.mergedCheckpoints, 1);
    assert.deepEqual(await host.findLeftoverCheckpoints(await host.describeVM(vmDir)), []);
    assert.ok((await readAt(diskPath, 10 * MiB, 8192)).equals(data));
  });

  it('repair deletes the empty children of a checkpoint killed while being created', async () => {
    const vm = await loadVm(vmDir);
    const child = childPathFor(vm.config.disks[0]!.path, 'dead-beef');
    await saveVmConfig(vm, { ...vm.config, backupCheckpoint: { marker: 'hvbackup-backup-checkpoint', id: 'dead-beef', state: 'creating', createdAt: new Date().toISOString(), disks: [{ key: 'SCSI:0:0', parent: vm.config.disks[0]!.path, child }] } });
    await createDifferencingVhdx(join(vmDir, child), diskPath);
    await repairVm({}, vmDir);
    assert.ok(!existsSync(join(vmDir, child)));
    assert.equal((await loadVm(vmDir)).config.backupCheckpoint, undefined);
  });

  it('repair finishes a checkpoint whose child was merged before the config pointed back', async () => {
    const host = new LocalHost();
    const cp = await host.createBackupCheckpoint(await host.describeVM(vmDir), { consistency: 'auto' });
    const vm = await loadVm(vmDir);
    rmSync(join(vmDir, vm.config.disks[0]!.path)); // as if the merge deleted it and then the process died
    void cp;
    await killOwner(vmDir);
    await repairVm({}, vmDir);
    const after = await loadVm(vmDir);
    assert.equal(after.config.backupCheckpoint, undefined);
    assert.equal(join(vmDir, after.config.disks[0]!.path), diskPath);
  });

  for (const by of ['the guest\'s next write', 'repair'] as const) {
    it(`a merge killed with the parent's log pending: ${by} replays it and finishes the merge, keeping every write`, async () => {
      // A kill -9 between a merge's log flush and its in-place writes leaves the parent with a
      // log to replay; the child, opened with it as parent, then refuses to open read-only.
      const host = new LocalHost();
      const cp = await host.createBackupCheckpoint(await host.describeVM(vmDir), { consistency: 'auto' });
      const during = Buffer.alloc(8192, 0x3c);
      await guestWrite(vmDir, [{ offset: 20 * MiB, data: during }]);
      vhdxTestHooks.crashAfterLogFlush = true;
      try {
        await assert.rejects(host.removeBackupCheckpoint(cp, { keepReference: false }), /simulated crash/);
      } finally {
        vhdxTestHooks.crashAfterLogFlush = false;
      }
      await killOwner(vmDir);
      await assert.rejects(openDisk(diskPath), (e: unknown) => isHvError(e, 'ERR_LOG_REPLAY_NEEDED'), 'the parent holds a pending log');
      const after = Buffer.alloc(8192, 0x3d);
      if (by === 'repair') assert.equal((await repairVm({}, vmDir)).mergedCheckpoints, 1);
      await guestWrite(vmDir, [{ offset: 30 * MiB, data: after }]);
      const vm = await loadVm(vmDir);
      assert.equal(vm.config.backupCheckpoint, undefined, 'the merge was finished');
      assert.equal(join(vmDir, vm.config.disks[0]!.path), diskPath);
      assert.deepEqual(readdirSync(join(vmDir, 'Virtual Hard Disks')).filter((f) => f.endsWith('.avhdx')), [], 'no child left');
      assert.ok((await readAt(diskPath, 20 * MiB, 8192)).equals(during), 'the write made on the checkpoint is in the parent');
      assert.ok((await readAt(diskPath, 30 * MiB, 8192)).equals(after), 'the write after the kill is in the parent');
      assert.deepEqual((await checkVhdx(diskPath)).problems, []);
    });
  }

  it('breaks a VM lock left by a dead process and lists VMs under a root by name', async () => {
    writeFileSync(join(vmDir, '.hvbackup-vm.lock'), `999999\n${hostname()}\n`);
    assert.equal(await withVmLock(vmDir, async () => 42, 2000), 42);
    const host = new LocalHost({ root });
    const names = (await host.listVMs()).map((v) => v.name);
    const name = (await loadVm(vmDir)).config.name;
    assert.ok(names.includes(name));
    assert.equal((await host.describeVM(name)).location, vmDir);
    await assert.rejects(host.describeVM('no-such-vm'), (e: unknown) => isHvError(e, 'ERR_NOT_FOUND') && /no-such-vm/.test((e as Error).message));
  });

  it("removes lock temp files of this host's dead processes, and leaves another host's", async () => {
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
    const mine = join(vmDir, `.hvbackup-vm.lock.${dead}.${hostTag()}.0a1b2c3d`);
    const theirs = join(vmDir, `.hvbackup-vm.lock.${dead}.otherhost.0a1b2c3d`);
    writeFileSync(mine, `${dead}\n${hostname()}\n`);
    writeFileSync(theirs, `${dead}\notherhost\n`);
    assert.equal(await withVmLock(vmDir, async () => 7, 2000), 7);
    assert.equal(existsSync(mine), false, 'a dead process of this host left it: litter');
    assert.equal(existsSync(theirs), true, 'its pid cannot be checked from here');
    rmSync(theirs);
  });

  it('a bare disk file is a one-disk VM named after the file', async () => {
    const vm = await new LocalHost().describeVM(diskPath);
    assert.equal(vm.name, (await loadVm(vmDir)).config.name);
    assert.equal(vm.disks.length, 1);
    assert.equal(vm.disks[0]!.format, 'vhdx');
    assert.deepEqual(JSON.parse(readFileSync(join(vmDir, 'Virtual Machines', `${vm.name}.json`), 'utf8')).disks.length, 1);
  });
});

describe('a volume that fills up (ENOSPC) while a disk is written', function () {
  this.timeout(60_000);
  let dir: string;
  let stub: sinon.SinonStub | undefined;
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hvb-full-'));
    const probe = await open(join(dir, 'probe'), 'w');
    const proto = Object.getPrototypeOf(probe) as { write: (...a: unknown[]) => Promise<unknown> };
    await probe.close();
    const real = proto.write;
    // Payload writes (a MiB) fill the volume after 4 MiB; from then on every write of 64 KiB or
    // more fails as on a full volume (a new VHDX's region tables and metadata among them), and
    // small ones (headers, configs) still go through.
    let written = 0;
    let full = false;
    stub = sinon.stub(proto, 'write').callsFake(function (this: unknown, ...args: unknown[]) {
      const b = args[0];
      if (Buffer.isBuffer(b) && (full ? b.length >= 64 << 10 : b.length >= 1 << 20 && (written += b.length) > 4 << 20)) {
        full = true;
        return Promise.reject(Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' }));
      }
      return real.apply(this, args);
    });
  });
  afterEach(() => {
    stub?.restore();
    rmSync(dir, { recursive: true, force: true });
  });

  it('vm sample: an error naming the disk file and the write, and no half-made VM left behind', async () => {
    const vm = join(dir, 'new-vm');
    await assert.rejects(createSampleVm({}, { dir: vm, sizeBytes: 16 << 20 }), (err: unknown) => {
      assert.ok(isHvError(err, 'ERR_IO'), String(err));
      assert.match((err as Error).message, /^write \d+ bytes at \d+ of .*new-vm\.vhdx: ENOSPC/);
      return true;
    });
    assert.equal(existsSync(vm), false, 'the folder this call made is gone');
    const empty = join(dir, 'empty');
    mkdirSync(empty);
    // Full from the start: creating the file fails, and the part written is removed.
    await assert.rejects(createSampleVm({}, { dir: empty, sizeBytes: 16 << 20 }), (err: unknown) => isHvError(err, 'ERR_IO') && /^create .*empty\.vhdx: ENOSPC/.test((err as Error).message));
    assert.deepEqual(readdirSync(empty), [], 'a folder that was there stays, empty as it was');
    // The VHDX layer alone: a file it could not finish creating is removed.
    await assert.rejects(createVhdx(join(dir, 'alone.vhdx'), { size: 16 << 20 }), (err: unknown) => isHvError(err, 'ERR_IO'));
    assert.equal(existsSync(join(dir, 'alone.vhdx')), false);
  });
});
