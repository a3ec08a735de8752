// The bridge lets go of what it keeps between calls (chunk workers, pack buffers, chunk
// indexes) once it has been idle for --release-idle-after seconds, and the next call starts
// them again. Workers are threads: the engine's thread count shows them go.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { scratch, type Scratch } from '../backup/testing.ts';
import { BridgeClient, fixtureMethods } from './bridge-client.ts';

function threads(pid: number): number {
  return Number(/^Threads:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
}

describe('bridge: release after idle', function () {
  this.timeout(60_000);
  let s: Scratch;
  beforeEach(() => { s = scratch('hvb-bridge-release-'); });
  afterEach(() => s.cleanup());

  it('stops its kept chunk workers once idle that long, and the next backup starts them again', async () => {
    const client = new BridgeClient(['--release-idle-after', '1', '--test-methods', fixtureMethods]);
    try {
      const dir = s.path('web01');
      const repository = s.path('repo');
      const call = async (id: string, method: string, params: Record<string, unknown>) => {
        client.send({ id, method, params });
        const res = await client.final(id);
        assert.equal(res.type, 'result', JSON.stringify(res));
        return res.result as Record<string, unknown>[];
      };
      await call('s', 'createSampleVM', { dir, sizeBytes: 8 * 1024 * 1024, name: 'web01' });
      await call('i', 'initRepository', { path: repository });
      const before = threads(client.proc.pid!);
      const first = await call('b1', 'backupVMs', { repository, sources: [dir] });
      assert.equal(first[0]!.status, 'success');
      const busy = threads(client.proc.pid!);
      assert.ok(busy > before, `the backup's workers are kept (threads ${before} -> ${busy})`);
      // Still kept well before the second is up.
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(threads(client.proc.pid!), busy, 'kept while the engine has been idle less than a second');
      let now = busy;
      for (const deadline = Date.now() + 10_000; now >= busy && Date.now() < deadline; now = threads(client.proc.pid!)) await new Promise((r) => setTimeout(r, 100));
      assert.ok(now < busy, `idle for a second, the engine still ran ${now} threads`);
      const second = await call('b2', 'backupVMs', { repository, sources: [dir] });
      assert.equal(second[0]!.status, 'success');
      assert.equal(second[0]!.method, 'changed-blocks');
      assert.ok(threads(client.proc.pid!) > now, 'the next backup started workers again');
    } finally {
      await client.close();
    }
  });

  it('refuses a --release-idle-after that is not a number of seconds, naming it', async () => {
    const client = new BridgeClient(['--release-idle-after', 'soon']);
    const code = await new Promise<number | null>((resolve) => client.proc.once('close', (c) => resolve(c)));
    assert.equal(code, 1);
    assert.match(client.stderr, /--release-idle-after: seconds \(0 or more\) expected, got "soon"/);
  });
});
