import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PROTOCOL_VERSION, decodeClientMessage, splitLines, ProtocolError } from '../../bridge/protocol.ts';
import { BridgeClient } from './bridge-client.ts';

describe('bridge protocol codec', () => {
  it('decodes requests and cancels, numeric ids become strings', () => {
    assert.deepEqual(decodeClientMessage('{"id":7,"method":"listVMs","params":{"path":"/x"}}'), { id: '7', method: 'listVMs', params: { path: '/x' } });
    assert.deepEqual(decodeClientMessage('{"type":"cancel","id":"a"}'), { type: 'cancel', id: 'a' });
  });
  it('rejects garbage with a message that quotes the line', () => {
    assert.throws(() => decodeClientMessage('not json'), (e: unknown) => e instanceof ProtocolError && /not JSON.*not json/.test(e.message));
    assert.throws(() => decodeClientMessage('[1]'), /not a JSON object/);
    assert.throws(() => decodeClientMessage('{"method":"x"}'), /without an id/);
    assert.throws(() => decodeClientMessage('{"id":"q","method":"x","params":[1]}'), (e: unknown) => e instanceof ProtocolError && e.id === 'q' && /params must be an object/.test(e.message));
  });
  it('splits lines and keeps a partial one', () => {
    assert.deepEqual(splitLines('a\r\nb\n\nc'), [['a', 'b'], 'c']);
  });
});

describe('bridge server process', function () {
  this.timeout(60_000);
  let client: BridgeClient;
  let scratch: string;
  beforeEach(() => {
    client = new BridgeClient();
    scratch = mkdtempSync(join(tmpdir(), 'hvb-bridge-'));
  });
  afterEach(async () => {
    await client.close();
    rmSync(scratch, { recursive: true, force: true });
  });

  it('says hello with the protocol version and its methods', async () => {
    const hello = await client.waitFor((m) => m.type === 'hello');
    assert.equal(hello.protocol, PROTOCOL_VERSION);
    assert.ok((hello.methods as string[]).includes('backupVMs'));
    assert.ok((hello.methods as string[]).includes('test.echo'));
  });

  it('runs with Node\'s compile cache on, so a session does not strip the engine\'s TypeScript again', async () => {
    // bridge/server.mjs, the entry the module starts, turns it on before the first .ts module
    // loads. An engine started as PowerShell starts it: without the test runner's NODE_COMPILE_CACHE.
    const { NODE_COMPILE_CACHE: _, ...env } = process.env;
    const plain = new BridgeClient(undefined, env);
    try {
      plain.send({ id: 'cc', method: 'test.compileCache', params: {} });
      const res = await plain.final('cc');
      assert.equal(res.type, 'result');
      assert.equal(typeof (res.result as { dir: unknown }).dir, 'string', JSON.stringify(res));
    } finally {
      await plain.close();
    }
  });

  it("collects a call's garbage once idle, before the next call", async () => {
    client.send({ id: 'g1', method: 'test.leaveGarbage', params: {} });
    const left = (await client.final('g1')).result as { arrayBuffersMiB: number };
    assert.ok(left.arrayBuffersMiB >= 40, `the call left ${left.arrayBuffersMiB} MiB`);
    await new Promise((r) => setTimeout(r, 200));
    client.send({ id: 'g2', method: 'test.memory', params: {} });
    const now = (await client.final('g2')).result as { arrayBuffersMiB: number };
    assert.ok(now.arrayBuffersMiB < 16, `idle, the engine still held ${now.arrayBuffersMiB} MiB of array buffers`);
  });

  it('answers a request with its result', async () => {
    client.send({ id: 'r1', method: 'test.echo', params: { a: 1, s: 'héllo' } });
    const res = await client.final('r1');
    assert.deepEqual(res, { id: 'r1', type: 'result', result: { a: 1, s: 'héllo' } });
  });

  it('interleaves progress and log messages before the result, in order', async () => {
    client.send({ id: 'p1', method: 'test.progress', params: { steps: 3, delayMs: 120 } });
    await client.final('p1');
    const mine = client.messages.filter((m) => m.id === 'p1').map((m) => m.type);
    assert.deepEqual(mine, ['log', 'progress', 'log', 'progress', 'log', 'progress', 'result']);
    const last = client.messages.filter((m) => m.id === 'p1' && m.type === 'progress').at(-1)!;
    assert.equal(last.done, 3);
    assert.equal(last.completed, true);
    assert.equal(client.messages.find((m) => m.type === 'log')?.message, 'step 1 of 3');
  });

  it('maps an engine error to code, message, target and data', async () => {
    client.send({ id: 'e1', method: 'test.fail', params: { code: 'ERR_CORRUPT', message: 'chunk 12ab fails its checksum', target: 'data/12/12ab' } });
    const res = await client.final('e1');
    assert.deepEqual(res.error, { code: 'ERR_CORRUPT', message: 'chunk 12ab fails its checksum', target: 'data/12/12ab', data: { hint: 'fixture' } });
  });

  it('cancels a running request: the engine unwinds and answers ERR_CANCELLED', async () => {
    const file = join(scratch, 'partial.bin');
    client.send({ id: 'c1', method: 'test.wait', params: { file } });
    await client.waitFor((m) => m.id === 'c1' && m.type === 'progress');
    assert.ok(existsSync(file));
    client.send({ type: 'cancel', id: 'c1' });
    const res = await client.final('c1');
    assert.equal((res.error as { code: string }).code, 'ERR_CANCELLED');
    assert.equal(existsSync(file), false, 'the cancelled operation left its partial file');
  });

  it('answers with the result when a method finishes cleanly on cancel (a watch)', async () => {
    client.send({ id: 'w1', method: 'test.watch', params: {} });
    await new Promise((resolve) => setTimeout(resolve, 150));
    client.send({ type: 'cancel', id: 'w1' });
    const res = await client.final('w1');
    assert.equal(res.type, 'result');
    assert.equal((res.result as { stopped: boolean }).stopped, true);
  });

  it('dispatches to the real API: a missing repository is ERR_NOT_FOUND naming it', async () => {
    const missing = join(scratch, 'no-repo');
    client.send({ id: 'a1', method: 'getRepositoryStats', params: { path: missing } });
    const res = await client.final('a1');
    const err = res.error as { code: string; message: string };
    assert.equal(err.code, 'ERR_NOT_FOUND');
    assert.ok(err.message.includes(missing), err.message);
  });

  it('rejects an unknown method without dying', async () => {
    client.send({ id: 'u1', method: 'rm -rf', params: {} });
    const res = await client.final('u1');
    assert.equal((res.error as { code: string }).code, 'ERR_INVALID_ARGUMENT');
    assert.match((res.error as { message: string }).message, /unknown method "rm -rf"/);
    client.send({ id: 'u2', method: 'toString', params: {} });
    assert.match(((await client.final('u2')).error as { message: string }).message, /unknown method/);
  });

  it('answers a garbage line with an error and keeps serving', async () => {
    client.send('this is not json {');
    const err = await client.waitFor((m) => m.type === 'error' && m.id === null);
    assert.match((err.error as { message: string }).message, /not JSON/);
    client.send({ id: 'after', method: 'test.echo', params: { ok: 1 } });
    assert.deepEqual((await client.final('after')).result, { ok: 1 });
  });

  it('keeps stdout for protocol: engine console output goes to stderr', async () => {
    client.send({ id: 'n1', method: 'test.noise', params: {} });
    await client.final('n1');
    for (const line of client.rawStdout) assert.doesNotThrow(() => JSON.parse(line), line);
    await client.waitFor(() => client.stderr.includes('raw stdout noise'));
    assert.match(client.stderr, /console noise/);
  });

  it('turns a result JSON cannot carry into an error for that request', async () => {
    client.send({ id: 'b1', method: 'test.bigint', params: {} });
    const res = await client.final('b1');
    assert.equal((res.error as { code: string }).code, 'ERR_INTERNAL');
  });

  for (const signal of ['SIGTERM', 'SIGHUP'] as const) {
    it(`on ${signal} cancels what still runs (it cleans up) and exits 1`, async () => {
      const file = join(scratch, `partial-${signal}.bin`);
      client.send({ id: 's', method: 'test.wait', params: { file } });
      await client.waitFor((m) => m.id === 's' && m.type === 'progress');
      const exited = new Promise<number | null>((resolve) => client.proc.once('exit', (code) => resolve(code)));
      client.proc.kill(signal);
      assert.equal(await exited, 1, client.stderr);
      assert.equal(existsSync(file), false, 'the cancelled operation removed its partial file');
      assert.equal((client.messages.find((m) => m.id === 's' && m.type === 'error')?.error as { code?: string } | undefined)?.code, 'ERR_CANCELLED');
    });
  }

  it('a client gone mid-operation (its stdout read end closed): cancels, cleans up and exits 0, no EPIPE crash', async () => {
    const file = join(scratch, 'partial-gone.bin');
    client.send({ id: 'b', method: 'test.busy', params: { file } });
    await client.waitFor((m) => m.id === 'b' && m.type === 'progress');
    const exited = new Promise<number | null>((resolve) => client.proc.once('exit', (code) => resolve(code)));
    client.proc.stdout.destroy();
    assert.equal(await exited, 0, client.stderr);
    assert.doesNotMatch(client.stderr, /EPIPE|Unhandled/);
    assert.equal(existsSync(file), false, 'the cancelled operation removed its partial file');
  });

  it('exits 0 when stdin closes, cancelling what still runs', async () => {
    const file = join(scratch, 'partial2.bin');
    client.send({ id: 'w', method: 'test.wait', params: { file } });
    await client.waitFor((m) => m.id === 'w' && m.type === 'progress');
    assert.equal(await client.close(), 0);
    assert.equal(existsSync(file), false);
  });
});
