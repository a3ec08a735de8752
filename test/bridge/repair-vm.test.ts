// repairVM through the bridge server: the method table maps it onto core/api/vm.ts repairVM
// (what Repair-HVVM calls), and its result and errors cross the protocol unchanged.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { API_METHODS } from '../../bridge/methods.ts';
import { BridgeClient } from './bridge-client.ts';

describe('bridge: repairVM', function () {
  this.timeout(60_000);
  let client: BridgeClient;
  let scratch: string;
  beforeEach(() => {
    client = new BridgeClient();
    scratch = mkdtempSync(join(tmpdir(), 'hvb-bridge-repair-'));
  });
  afterEach(async () => {
    await client.close();
    rmSync(scratch, { recursive: true, force: true });
  });

  it('is in the method table as core/api/vm.ts repairVM', async () => {
    assert.deepEqual(API_METHODS.repairVM, ['vm', 'repairVM']);
    const hello = await client.waitFor((m) => m.type === 'hello');
    assert.ok((hello.methods as string[]).includes('repairVM'));
  });

  it('repairs a VM folder through the server and reports stray differencing disks', async () => {
    const dir = join(scratch, 'web01');
    client.send({ id: 's1', method: 'createSampleVM', params: { dir, sizeBytes: 4 * 1024 * 1024, name: 'web01' } });
    const made = await client.final('s1');
    assert.equal(made.type, 'result', JSON.stringify(made));
    const stray = join(dir, 'Virtual Hard Disks', 'web01_old.avhdx');
    writeFileSync(stray, '');
    client.send({ id: 'r1', method: 'repairVM', params: { dir } });
    const res = await client.final('r1');
    assert.deepEqual(res.result, { vm: 'web01', mergedCheckpoints: 0, strayDifferencingDisks: [stray] }, JSON.stringify(res));
    assert.ok(client.messages.some((m) => m.id === 'r1' && m.type === 'log' && String(m.message).includes('web01_old.avhdx')), 'the stray disk is logged as a warning');
  });

  it('answers a folder without a VM with an engine error, not a crash', async () => {
    client.send({ id: 'r2', method: 'repairVM', params: { dir: join(scratch, 'nothing-here') } });
    const res = await client.final('r2');
    assert.equal(res.type, 'error');
    assert.match((res.error as { code: string }).code, /^ERR_/);
    client.send({ id: 'r3', method: 'repairVM', params: {} });
    assert.equal(((await client.final('r3')).error as { code: string }).code, 'ERR_INVALID_ARGUMENT');
  });
});
