// Retention releases Hyper-V reference points: the DiskReferences of removed points that no
// remaining point uses go to host.releaseReferences (Hyper-V DestroyReferencePoint); a host
// failure is a warning and never blocks the removal.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sinon from 'sinon';
import { applyRetention } from '../../core/api/retention.ts';
import { removeRestorePoints } from '../../core/api/repository.ts';
import type { Host } from '../../core/hosts/host.ts';
import { hostFactories } from '../../core/hosts/index.ts';
import type { LogEvent } from '../../core/progress.ts';
import { initRepository, openRepository } from '../../core/repo/local.ts';
import type { RestorePointManifest } from '../../core/repo/manifest-types.ts';
import type { Repository } from '../../core/repo/repository.ts';
import { removeRestorePointsReleasing, unusedReferences } from '../../core/retention/release.ts';

const HV_ID = '6b1c3f0e-8e4b-4f5b-9c1a-2d7e5a9b0c11';

function point(repo: Repository, o: { vm: string; vmId: string; host: 'local' | 'hyperv'; day: number; refs?: string[] }): RestorePointManifest {
  const createdAt = new Date(Date.UTC(2026, 10, o.day, 2)).toISOString();
  const cs = repo.chunkSize;
  return {
    version: 1, id: randomBytes(32).toString('hex'),
    vm: { id: o.vmId, name: o.vm, generation: 2, host: o.host, hostName: 'HV01', ...(o.host === 'hyperv' ? { configVersion: '10.0' } : {}) },
    createdAt, finishedAt: createdAt, consistency: 'application', method: 'full',
    disks: (o.refs ?? ['']).map((ref, i) => ({
      key: `SCSI:0:${i}`, fileName: `d${i}.vhdx`, format: 'vhdx' as const, virtualSize: cs, blockSize: 1024 * 1024, logicalSectorSize: 512, physicalSectorSize: 4096, chunkSize: cs, chunks: [null],
      ...(ref ? { reference: { diskKey: `SCSI:0:${i}`, referenceId: ref } } : {}),
    })),
    configFiles: [],
    stats: { totalBytes: cs, readBytes: 0, newChunks: 0, storedBytes: 0, durationMs: 1 },
  };
}

function stubHyperV() {
  return { kind: 'hyperv' as const, releaseReferences: sinon.stub<Parameters<NonNullable<Host['releaseReferences']>>, Promise<number>>().callsFake(async (_vm, refs) => refs.length) };
}

describe('retention releases Hyper-V reference points', function () {
  this.timeout(60_000);
  let dir: string;
  let path: string;
  let ids: Record<string, string>;
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hvb-release-'));
    path = join(dir, 'repo');
    const repo = await initRepository(path);
    try {
      ids = {};
      // hv01: day 1 (rct a), day 2 and day 3 share reference b (two disks: b0/b1), day 4 (rct c). web01 is local.
      const points = {
        hv1: point(repo, { vm: 'hv01', vmId: HV_ID, host: 'hyperv', day: 1, refs: ['rctX:a0', 'rctX:a1'] }),
        hv2: point(repo, { vm: 'hv01', vmId: HV_ID, host: 'hyperv', day: 2, refs: ['rctX:b0', 'rctX:b1'] }),
        hv3: point(repo, { vm: 'hv01', vmId: HV_ID, host: 'hyperv', day: 3, refs: ['rctX:b0', 'rctX:b1'] }),
        hv4: point(repo, { vm: 'hv01', vmId: HV_ID, host: 'hyperv', day: 4, refs: ['rctX:c0', 'rctX:c1'] }),
        web1: point(repo, { vm: 'web01', vmId: 'vm-web01', host: 'local', day: 1, refs: ['local-1'] }),
        web2: point(repo, { vm: 'web01', vmId: 'vm-web01', host: 'local', day: 2, refs: ['local-2'] }),
      };
      for (const [k, m] of Object.entries(points)) ids[k] = await repo.saveManifest(m);
    } finally {
      await repo.close();
    }
  });
  afterEach(() => { sinon.restore(); rmSync(dir, { recursive: true, force: true }); });

  it('unusedReferences: only references no remaining point of the same VM names, once each', () => {
    const m = (id: string, vmId: string, refs: string[]) => ({ id, vm: { id: vmId, name: vmId, host: 'hyperv' }, disks: refs.map((r) => ({ key: 'k', reference: { diskKey: 'k', referenceId: r } })) }) as unknown as RestorePointManifest;
    const plans = unusedReferences([m('1', 'A', ['x']), m('2', 'A', ['y']), m('3', 'A', ['y']), m('4', 'B', ['z'])], [m('1', 'A', ['x']), m('5', 'A', ['x']), m('6', 'C', ['z'])]);
    assert.deepEqual(plans.map((p) => [p.vm.id, p.refs.map((r) => r.referenceId)]), [['A', ['y']], ['B', ['z']]]);
  });

  it('applyRetention asks the Hyper-V host to release the references only removed points used', async () => {
    const host = stubHyperV();
    const factory = sinon.stub(hostFactories, 'hyperv').resolves(host as unknown as Host);
    // keep the newest hv01 point and day 3 (which still uses reference b): only a goes.
    const r = await applyRetention({}, { repository: path, keepLast: 2 });
    assert.equal(r.removed, 2, JSON.stringify(r.points));
    assert.equal(factory.callCount, 1);
    assert.equal(host.releaseReferences.callCount, 1);
    const [vm, refs] = host.releaseReferences.firstCall.args;
    assert.equal(vm.id, HV_ID);
    assert.equal(vm.name, 'hv01');
    assert.deepEqual(refs.map((x) => x.referenceId), ['rctX:a0', 'rctX:a1']);
    assert.equal(r.referencesReleased, 2);
  });

  it('releases b once its last point goes; local points release nothing', async () => {
    const host = stubHyperV();
    sinon.stub(hostFactories, 'hyperv').resolves(host as unknown as Host);
    const r = await applyRetention({}, { repository: path, keepLast: 1 });
    assert.equal(r.removed, 4);
    assert.equal(host.releaseReferences.callCount, 1, 'one call per VM');
    assert.deepEqual(host.releaseReferences.getCalls().flatMap((c) => c.args[1].map((x) => x.referenceId)).sort(), ['rctX:a0', 'rctX:a1', 'rctX:b0', 'rctX:b1']);
  });

  it('a host failure is a warning: the points are removed all the same', async () => {
    const host = stubHyperV();
    host.releaseReferences.rejects(new Error('WinRM unreachable'));
    sinon.stub(hostFactories, 'hyperv').resolves(host as unknown as Host);
    const logs: LogEvent[] = [];
    const r = await applyRetention({ onLog: (e) => logs.push(e) }, { repository: path, keepLast: 1 });
    assert.equal(r.removed, 4);
    assert.equal(r.referencesReleased, undefined);
    const warn = logs.find((e) => e.level === 'warning' && e.message.includes('could not release'));
    assert.ok(warn, JSON.stringify(logs));
    assert.match(warn.message, /VM hv01: .*rctX:a0.*WinRM unreachable; the restore points are removed all the same/);
    const repo = await openRepository(path);
    try {
      assert.deepEqual((await repo.listManifests()).map((m) => m.id).sort(), [ids.hv4, ids.web2].sort());
    } finally {
      await repo.close();
    }
  });

  it('what-if releases nothing and does not touch the host', async () => {
    const factory = sinon.stub(hostFactories, 'hyperv').rejects(new Error('must not be called'));
    const r = await applyRetention({}, { repository: path, keepLast: 1, whatIf: true });
    assert.equal(r.status, 'planned');
    assert.equal(factory.callCount, 0);
  });

  it('removeRestorePointsReleasing (for removeRestorePoints) takes its own exclusive lock and releases', async () => {
    const host = stubHyperV();
    const repo = await openRepository(path);
    try {
      const r = await removeRestorePointsReleasing({}, repo, [ids.hv1!.slice(0, 12), ids.hv2!], { getHost: async (kind) => (kind === 'hyperv' ? host : { kind }) });
      assert.deepEqual(r.ids, [ids.hv1, ids.hv2]);
      assert.deepEqual(host.releaseReferences.firstCall.args[1].map((x) => x.referenceId), ['rctX:a0', 'rctX:a1'], 'b is still used by day 3');
      assert.equal(r.referencesReleased, 2);
      assert.equal((await repo.listManifests()).length, 4);
    } finally {
      await repo.close();
    }
  });

  it('the removeRestorePoints API (Remove-HVRestorePoint) releases what only the removed points used', async () => {
    const host = stubHyperV();
    sinon.stub(hostFactories, 'hyperv').resolves(host as unknown as Host);
    const r = await removeRestorePoints({}, { repository: path, ids: [ids.hv1!, ids.hv2!, ids.hv3!] });
    assert.deepEqual(r, { ids: [ids.hv1, ids.hv2, ids.hv3], status: 'removed' });
    assert.deepEqual(host.releaseReferences.getCalls().flatMap((c) => c.args[1].map((x) => x.referenceId)).sort(), ['rctX:a0', 'rctX:a1', 'rctX:b0', 'rctX:b1']);
  });
});
