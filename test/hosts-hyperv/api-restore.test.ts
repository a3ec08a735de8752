// restoreVM (core/api/restore.ts) on Hyper-V: a whole-VM restore of a Hyper-V restore point goes
// to the Hyper-V driver (getHost('hyperv'), replaced here through hostFactories), which must
// accept the VM's configuration version before any byte is written.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import sinon from 'sinon';
import { backupVMs } from '../../core/api/backup.ts';
import { restoreVM } from '../../core/api/restore.ts';
import { createSampleVM } from '../../core/api/vm.ts';
import type { Host } from '../../core/hosts/host.ts';
import { hostFactories } from '../../core/hosts/index.ts';
import * as S from '../../core/hosts/hyperv/scripts.ts';
import { openRepository } from '../../core/repo/index.ts';
import { MiB, newRepo, scratch } from '../backup/testing.ts';
import type { Scratch } from '../backup/testing.ts';
import { fx, hostWith, rejectsWith } from './testing.ts';

/** A Hyper-V host double: only what restore uses, every method a sinon stub. */
function stubHost() {
  return {
    kind: 'hyperv' as const,
    checkRestoreCompatibility: sinon.stub<[string, string | undefined, unknown?], Promise<void>>().resolves(),
    registerRestoredVM: sinon.stub().callsFake(async (r: { name: string; directory: string }) => ({ id: 'new-id', name: r.name, host: 'hyperv', location: r.directory })),
  };
}

describe('restoreVM on Hyper-V (API host selection)', function () {
  this.timeout(120_000);
  let s: Scratch;
  let repo: string;
  let hvPoint: string;
  let localPoint: string;
  let factory: sinon.SinonStub;

  before(async () => {
    s = scratch('hvb-api-restore-');
    repo = await newRepo(s.path('repo'));
    const vmDir = s.path('vms', 'web01');
    await createSampleVM({}, { dir: vmDir, sizeBytes: 4 * MiB, seed: 5 });
    const [r] = await backupVMs({}, { repository: repo, sources: [vmDir] });
    assert.equal(r!.status, 'success', JSON.stringify(r!.error));
    localPoint = r!.pointId!;
    // The same bytes as a Hyper-V restore point of a configuration-11.0 VM.
    const rp = await openRepository(repo);
    try {
      const m = await rp.loadManifest(localPoint);
      hvPoint = await rp.saveManifest({ ...m, id: '', vm: { ...m.vm, host: 'hyperv', configVersion: '11.0' } });
    } finally {
      await rp.close();
    }
  });
  after(() => s.cleanup());
  afterEach(() => sinon.restore());

  it('refuses a configuration version the Hyper-V host cannot run before writing anything', async () => {
    const { host, session } = hostWith([[S.HOST_INFO, fx('host-info-2022')]]);
    factory = sinon.stub(hostFactories, 'hyperv').resolves(host);
    const to = s.path('out-refused');
    await rejectsWith(restoreVM({}, { repository: repo, point: hvPoint, to }), 'ERR_UNSUPPORTED', 'VM web01 has configuration version 11.0', 'HV01');
    assert.equal(factory.callCount, 1, "getHost('hyperv') was used");
    assert.equal(session.invoke.callCount, 1, 'only the host query ran');
    assert.equal(existsSync(to), false, 'nothing was written');
  });

  it('checks compatibility first, then writes the disks and registers the VM with Hyper-V', async () => {
    const host = stubHost();
    factory = sinon.stub(hostFactories, 'hyperv').resolves(host as unknown as Host);
    const to = s.path('out-hyperv');
    host.checkRestoreCompatibility.callsFake(async () => { assert.equal(existsSync(to), false, 'checked before any byte is written'); });
    const r = await restoreVM({}, { repository: repo, point: hvPoint, to, newName: 'web01-r' });
    assert.equal(r.status, 'success');
    assert.deepEqual(host.checkRestoreCompatibility.firstCall.args.slice(0, 2), ['web01', '11.0']);
    assert.ok(host.checkRestoreCompatibility.calledBefore(host.registerRestoredVM));
    const reg = host.registerRestoredVM.firstCall.args[0] as { name: string; newId: boolean; disks: { path: string }[] };
    assert.equal(reg.name, 'web01-r');
    assert.equal(reg.newId, true);
    assert.ok(reg.disks.every((d) => existsSync(d.path)), 'disks written before registration');
  });

  it('uses the local host for a single-disk restore, a local point, or host: "local"', async () => {
    factory = sinon.stub(hostFactories, 'hyperv').rejects(new Error('Hyper-V must not be used'));
    const one = await restoreVM({}, { repository: repo, point: hvPoint, to: s.path('out-disk'), disk: 'web01.vhdx' });
    assert.equal(one.status, 'success');
    await restoreVM({}, { repository: repo, point: localPoint, to: s.path('out-local') });
    assert.ok(existsSync(join(s.path('out-local'), 'Virtual Machines', 'web01.json')));
    await restoreVM({}, { repository: repo, point: hvPoint, to: s.path('out-forced'), host: 'local' });
    assert.ok(existsSync(join(s.path('out-forced'), 'Virtual Machines', 'web01.json')));
    assert.equal(factory.callCount, 0);
    await rejectsWith(restoreVM({}, { repository: repo, point: hvPoint, to: s.path('x'), host: 'vmware' as 'local' }), 'ERR_INVALID_ARGUMENT', 'host');
  });

  it('host: "hyperv" forces the Hyper-V driver for a local point', async () => {
    const host = stubHost();
    factory = sinon.stub(hostFactories, 'hyperv').resolves(host as unknown as Host);
    await restoreVM({}, { repository: repo, point: localPoint, to: s.path('out-forced-hv'), host: 'hyperv' });
    assert.equal(factory.callCount, 1);
    assert.equal(host.registerRestoredVM.callCount, 1);
  });
});
