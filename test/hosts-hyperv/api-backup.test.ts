// -AllowUserCheckpoints and -HostStepTimeoutSec plumbing: backupVMs({host: 'hyperv', hyperv: {allowUserCheckpoints, stepTimeoutSeconds}}) and
// `hvbackup backup --host hyperv --allow-user-checkpoints` reach createHyperVHost's options, and the
// driver built from them (over a stubbed PowerShell session) then accepts a VM with user checkpoints.
import assert from 'node:assert/strict';
import sinon from 'sinon';
import { backupVMs } from '../../core/api/backup.ts';
import { main } from '../../core/cli/main.ts';
import { hostFactories } from '../../core/hosts/index.ts';
import { HyperVHost } from '../../core/hosts/hyperv/hyperv-host.ts';
import { scriptName } from '../../core/hosts/hyperv/scripts.ts';
import { MiB, newRepo, scratch } from '../backup/testing.ts';
import type { Scratch } from '../backup/testing.ts';
import { fx } from './testing.ts';

/** Hyper-V answering by script name: web01 with user checkpoints; creating the snapshot fails (test stops there). */
function userCheckpointSession() {
  const handlers: Record<string, () => unknown> = {
    'describe-vm': () => fx('describe-vm-web01'),
    'host-info': () => fx('host-info-2022'),
    'list-checkpoints': () => fx('checkpoints-user'),
  };
  const invoke = sinon.stub<[string, Record<string, unknown>], Promise<unknown>>().callsFake(async (script) => {
    const name = scriptName(script);
    if (name === 'create-recovery-snapshot') throw new Error('test stops at CreateSnapshot');
    const h = handlers[name];
    if (!h) throw new Error(`no answer for ${name}`);
    return structuredClone(h());
  });
  return { invoke };
}

describe('backupVMs on Hyper-V: allowUserCheckpoints reaches the driver', function () {
  this.timeout(60_000);
  let s: Scratch;
  let repo: string;
  let session: ReturnType<typeof userCheckpointSession>;
  let factory: sinon.SinonStub;
  before(async () => {
    s = scratch('hvb-api-backup-');
    repo = await newRepo(s.path('repo'));
  });
  after(() => s.cleanup());
  beforeEach(() => {
    session = userCheckpointSession();
    factory = sinon.stub(hostFactories, 'hyperv').callsFake(async (o: Record<string, unknown>) => new HyperVHost({ ...o, session, jobId: 'job-1', sleep: async () => undefined }));
  });
  afterEach(() => sinon.restore());

  const scripts = () => session.invoke.getCalls().map((c) => scriptName(c.args[0]));

  it('without it, a VM with user checkpoints is refused before any checkpoint is made', async () => {
    const [r] = await backupVMs({}, { repository: repo, sources: ['web01'], host: 'hyperv' });
    assert.equal(r!.status, 'failed');
    assert.equal(r!.error?.code, 'ERR_UNSUPPORTED');
    assert.match(r!.error!.message, /has user checkpoints .*-AllowUserCheckpoints/);
    assert.equal(factory.firstCall.args[0].allowUserCheckpoints, undefined);
    assert.ok(!scripts().includes('create-recovery-snapshot'));
  });

  it('with hyperv.allowUserCheckpoints the driver goes on to the checkpoint (and warns it will scan)', async () => {
    const warnings: string[] = [];
    const [r] = await backupVMs({ onLog: (e) => { if (e.level === 'warning') warnings.push(e.message); } }, { repository: repo, sources: ['web01'], host: 'hyperv', hyperv: { allowUserCheckpoints: true } });
    assert.equal(factory.firstCall.args[0].allowUserCheckpoints, true);
    assert.equal(typeof factory.firstCall.args[0].onLog, 'function', 'the log sink reaches the driver too');
    assert.equal(r!.status, 'failed');
    assert.match(r!.error!.message, /test stops at CreateSnapshot/);
    assert.ok(scripts().includes('create-recovery-snapshot'), scripts().join(', '));
    assert.ok(warnings.some((w) => w.includes('has user checkpoints') && w.includes('scanning')), warnings.join('\n'));
  });

  it('refuses option values that are not booleans or objects', async () => {
    await assert.rejects(backupVMs({}, { repository: repo, sources: ['web01'], host: 'hyperv', hyperv: { allowUserCheckpoints: 'yes' as unknown as boolean } }), { code: 'ERR_INVALID_ARGUMENT' });
    await assert.rejects(backupVMs({}, { repository: repo, sources: ['web01'], host: 'vmware' as 'hyperv' }), { code: 'ERR_INVALID_ARGUMENT' });
    assert.equal(factory.callCount, 0);
  });

  it('hyperv.stepTimeoutSeconds reaches the driver as every step\'s time limit; 0 means none; other values are refused', async () => {
    await backupVMs({}, { repository: repo, sources: ['web01'], host: 'hyperv', hyperv: { stepTimeoutSeconds: 42 } });
    assert.equal(factory.firstCall.args[0].stepTimeoutMs, 42_000);
    assert.ok(session.invoke.getCalls().length > 0 && session.invoke.getCalls().every((c) => (c.args as unknown[])[2] && ((c.args as unknown[])[2] as { timeoutMs?: number }).timeoutMs === 42_000), 'each step got 42 s');
    await backupVMs({}, { repository: repo, sources: ['web01'], host: 'hyperv', hyperv: { stepTimeoutSeconds: 0 } });
    assert.equal(factory.secondCall.args[0].stepTimeoutMs, 0);
    for (const bad of [-1, 1.5, '60', 86_401]) {
      await assert.rejects(backupVMs({}, { repository: repo, sources: ['web01'], host: 'hyperv', hyperv: { stepTimeoutSeconds: bad as number } }), (e: Error & { code?: string }) => e.code === 'ERR_INVALID_ARGUMENT' && e.message.includes('stepTimeoutSeconds'));
    }
    assert.equal(factory.callCount, 2);
  });

  describe('CLI: hvbackup backup --host hyperv --allow-user-checkpoints', () => {
    let out: sinon.SinonStub;
    beforeEach(() => {
      out = sinon.stub(process.stdout, 'write').returns(true);
      sinon.stub(process.stderr, 'write').returns(true);
    });
    afterEach(() => { process.exitCode = undefined; });

    it('passes the flag to the driver', async () => {
      const code = await main(['backup', 'web01', '--repo', repo, '--host', 'hyperv', '--allow-user-checkpoints', '--json']);
      sinon.restore();
      assert.equal(code, 1, 'the stubbed backup fails at CreateSnapshot');
      assert.equal(factory.firstCall.args[0].allowUserCheckpoints, true);
      const result = JSON.parse(String(out.getCalls().map((c) => c.args[0]).join('').trim().split('\n').at(-1)));
      assert.match(result.results[0].error.message, /test stops at CreateSnapshot/);
    });

    it('--host hyperv alone keeps refusing user checkpoints; the flag without --host hyperv is a usage error', async () => {
      assert.equal(await main(['backup', 'web01', '--repo', repo, '--host', 'hyperv', '--json']), 1);
      assert.equal(factory.firstCall.args[0].allowUserCheckpoints, undefined);
      assert.equal(await main(['backup', 'web01', '--repo', repo, '--allow-user-checkpoints']), 2);
      assert.equal(await main(['backup', 'web01', '--repo', repo, '--host', 'esx']), 2);
      sinon.restore();
      assert.equal(factory.callCount, 1);
    });

    it('--host-step-timeout passes its seconds to the driver; without --host hyperv, or not a whole number, it is a usage error', async () => {
      assert.equal(await main(['backup', 'web01', '--repo', repo, '--host', 'hyperv', '--host-step-timeout', '90', '--allow-user-checkpoints', '--json']), 1);
      assert.equal(factory.firstCall.args[0].stepTimeoutMs, 90_000);
      assert.equal(factory.firstCall.args[0].allowUserCheckpoints, true);
      assert.equal(await main(['backup', 'web01', '--repo', repo, '--host-step-timeout', '90']), 2);
      assert.equal(await main(['backup', 'web01', '--repo', repo, '--host', 'hyperv', '--host-step-timeout', '5m']), 2);
      sinon.restore();
      assert.equal(factory.callCount, 1);
    });
  });
});
