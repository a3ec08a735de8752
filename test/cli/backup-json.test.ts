import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { scratch } from '../backup/testing.ts';
import type { Scratch } from '../backup/testing.ts';

const main = join(import.meta.dirname, '..', '..', 'core', 'cli', 'main.ts');

/** Run the CLI as a scheduled job would; returns its --json result line and its wall time. */
function backup(vm: string, repo: string): { result: { method: string; durationMs: number; status: string }; wallMs: number } {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [main, 'backup', vm, '--repo', repo, '--json'], { encoding: 'utf8', env: { ...process.env, HVBACKUP_PASSWORD: '' } });
  const wallMs = performance.now() - t0;
  assert.equal(r.status, 0, r.stderr);
  const last = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
  assert.equal(last.event, 'result');
  return { result: last.results[0], wallMs };
}

describe('CLI: backup --json reports the engine time per VM', function () {
  this.timeout(120_000);
  let s: Scratch;
  before(() => { s = scratch('hvb-cli-json-'); });
  after(() => s.cleanup());

  it('durationMs of the full and of the tracked incremental, each within the process wall time', () => {
    const vm = s.path('vms', 'json01');
    const repo = s.path('repo');
    const run = (...args: string[]) => {
      const r = spawnSync(process.execPath, [main, ...args], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
    };
    run('vm', 'sample', vm, '--size', '0.03125');
    run('repo', 'init', repo);
    const full = backup(vm, repo);
    run('vm', 'guest-write', vm, '--count', '4', '--seed', '3');
    const tracked = backup(vm, repo);
    assert.deepEqual([full.result.method, tracked.result.method], ['full', 'changed-blocks']);
    for (const r of [full, tracked]) {
      assert.equal(r.result.status, 'success');
      assert.ok(Number.isInteger(r.result.durationMs) && r.result.durationMs > 0 && r.result.durationMs < r.wallMs, `durationMs ${r.result.durationMs}, wall ${r.wallMs} ms`);
    }
  });
});
