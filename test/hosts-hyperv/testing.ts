// Test helpers for the Hyper-V driver: fixtures (JSON shaped like the scripts' answers on a
// real host) and a sinon-stubbed PsSession that answers a scripted sequence of calls.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import sinon from 'sinon';
import { HyperVHost } from '../../core/hosts/hyperv/hyperv-host.ts';
import type { HyperVHostOptions } from '../../core/hosts/hyperv/hyperv-host.ts';
import { scriptName } from '../../core/hosts/hyperv/scripts.ts';
import type { InvokeOptions, PsSession } from '../../core/hosts/hyperv/session.ts';

const fixtures = join(import.meta.dirname, '..', 'fixtures', 'hyperv');

export function fx<T = unknown>(name: string): T {
  return JSON.parse(readFileSync(join(fixtures, `${name}.json`), 'utf8')) as T;
}

/** One expected call: the script constant and what the session answers (an Error rejects). */
export type Step = [script: string, answer: unknown];

export interface ScriptedSession extends PsSession {
  invoke: sinon.SinonStub<[string, Record<string, unknown>, InvokeOptions?], Promise<unknown>>;
}

/** A session answering `steps` in order; any further call fails the test. */
export function scriptedSession(steps: Step[]): ScriptedSession {
  const invoke = sinon.stub<[string, Record<string, unknown>, InvokeOptions?], Promise<unknown>>();
  invoke.callsFake(async (script) => { throw new Error(`unexpected PowerShell call #${invoke.callCount}: ${scriptName(script)}`); });
  steps.forEach(([, answer], i) => {
    if (answer instanceof Error) invoke.onCall(i).rejects(answer);
    else invoke.onCall(i).resolves(structuredClone(answer));
  });
  return { invoke };
}

export function hostWith(steps: Step[], opts: HyperVHostOptions = {}) {
  const session = scriptedSession(steps);
  const sleep = sinon.stub<[number], Promise<void>>().resolves();
  const logs: string[] = [];
  const host = new HyperVHost({ session, jobId: 'job-1', pollIntervalMs: 250, sleep, onLog: (e) => logs.push(`${e.level}: ${e.message}`), ...opts });
  return { host, session, sleep, logs };
}

/** The scripts called, by name, in order. */
export function calledScripts(session: ScriptedSession): string[] {
  return session.invoke.getCalls().map((c) => scriptName(c.args[0]));
}

export function paramsOf(session: ScriptedSession, i: number): Record<string, unknown> {
  const call = session.invoke.getCall(i);
  assert.ok(call, `no call #${i}`);
  return call.args[1];
}

export async function rejectsWith(p: Promise<unknown>, code: string, ...fragments: (string | RegExp)[]): Promise<Error & { code: string; target?: string; data: Record<string, unknown> }> {
  let err: unknown;
  try { await p; } catch (e) { err = e; }
  assert.ok(err instanceof Error, 'expected the call to fail');
  const e = err as Error & { code: string; target?: string; data: Record<string, unknown> };
  assert.equal(e.code, code, e.message);
  for (const f of fragments) {
    if (typeof f === 'string') assert.ok(e.message.includes(f), `message lacks "${f}": ${e.message}`);
    else assert.match(e.message, f);
  }
  return e;
}
