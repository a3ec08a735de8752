// BridgeServer's idle hook: the bridge collects a call's garbage there (core/heap.ts
// idleCollector), so it must run only once nothing runs, and after the answer is written: a
// caller never waits for it, and it never pauses a running backup.
import assert from 'node:assert/strict';
import { setImmediate as turn } from 'node:timers/promises';
import { BridgeServer } from '../../bridge/server.ts';
import type { ApiFunction, MethodTable } from '../../bridge/methods.ts';

/** A method that answers when the test says so. */
function gated(): { method: ApiFunction; open: (value: string) => void } {
  let open!: (value: string) => void;
  const gate = new Promise<string>((resolve) => { open = resolve; });
  return { method: () => gate, open };
}

describe('bridge server idle hook', () => {
  it('runs once the last running request has answered, not while another runs', async () => {
    const a = gated();
    const b = gated();
    const methods: MethodTable = { 'test.a': async () => a.method, 'test.b': async () => b.method };
    const events: string[] = [];
    const server = new BridgeServer(methods, (line) => {
      const msg = JSON.parse(line) as { type: string; id?: string };
      if (msg.type === 'result') events.push(`result ${msg.id}`);
    }, { onIdle: () => events.push('idle') });
    server.feed('{"id":"1","method":"test.a","params":{}}\n{"id":"2","method":"test.b","params":{}}\n');
    await turn();
    a.open('done');
    for (let i = 0; i < 5; i++) await turn();
    assert.deepEqual(events, ['result 1'], 'request 2 still runs: not idle');
    b.open('done');
    for (let i = 0; i < 5; i++) await turn();
    assert.deepEqual(events, ['result 1', 'result 2', 'idle']);
  });

  it('is not idle when the next request arrives between an answer and the hook', async () => {
    const a = gated();
    const methods: MethodTable = { 'test.a': async () => a.method, 'test.quick': async () => () => new Promise((r) => setTimeout(() => r('ok'), 20)) };
    const events: string[] = [];
    const server = new BridgeServer(methods, (line) => {
      const msg = JSON.parse(line) as { type: string; id?: string };
      if (msg.type === 'result') {
        events.push(`result ${msg.id}`);
        // The next request is read after the answer is written but before the hook's turn (as
        // stdin data would be): the hook must see it running.
        if (msg.id === '1') queueMicrotask(() => server.feed('{"id":"2","method":"test.quick","params":{}}\n'));
      }
    }, { onIdle: () => events.push('idle') });
    server.feed('{"id":"1","method":"test.a","params":{}}\n');
    await turn();
    a.open('done');
    await new Promise((r) => setTimeout(r, 60));
    assert.deepEqual(events, ['result 1', 'result 2', 'idle']);
  });
});
