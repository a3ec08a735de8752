// core/heap.ts: the main thread's young generation stays at its start size once bounded (peak
// RSS of a long backup must not grow with the data), and a serving process's idle collector
// frees what a finished job left. Each case runs in its own Node process, since V8 flags are
// process-wide.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const heapModule = pathToFileURL(join(import.meta.dirname, '..', '..', 'core', 'heap.ts')).href;

/** New-space size (MiB) after allocating many objects that survive a few scavenges each, as a backup's ids and promises do. */
function newSpaceAfterLoad(bound: boolean): number {
  const script = `
    import { getHeapSpaceStatistics } from 'node:v8';
    import { boundYoungGeneration } from ${JSON.stringify(heapModule)};
    if (${bound}) boundYoungGeneration();
    const keep = [];
    for (let i = 0; i < 2e6; i++) { keep.push({ i, id: 'chunk-' + i }); if (keep.length > 200000) keep.splice(0, 100000); }
    const ns = getHeapSpaceStatistics().find((s) => s.space_name === 'new_space');
    console.log(ns.space_size / 1048576);`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return Number(r.stdout.trim());
}

describe('boundYoungGeneration (core/heap.ts)', function () {
  this.timeout(60_000);
  it('keeps new space at its start size under a load that makes V8 grow it', () => {
    const free = newSpaceAfterLoad(false);
    const bounded = newSpaceAfterLoad(true);
    // Measured: 128 MiB unbounded, 2 MiB bounded.
    assert.ok(free >= 16, `without the bound V8 grew new space to ${free} MiB (the load must make it grow for this test to mean anything)`);
    assert.ok(bounded <= 4, `bounded, new space grew to ${bounded} MiB`);
  });
});

/**
 * A job's leftovers as a backup leaves them (48 MiB of buffers it no longer references, in
 * memory it touched: less than the ~64 MiB of new external memory that makes V8 collect on its
 * own, so they stay, as between the bridge's calls), then the process goes idle. Returns the
 * array-buffer MiB before and after, and what the collector did each time it was called.
 */
function leftoversAtIdle(collectAtIdle: boolean): { before: number; after: number; calls: boolean[] } {
  const script = `
    import { idleCollector } from ${JSON.stringify(heapModule)};
    const atIdle = idleCollector();
    let job = [];
    for (let i = 0; i < 12; i++) job.push(Buffer.allocUnsafeSlow(4 << 20).fill(i + 1));
    job = undefined;
    const before = process.memoryUsage().arrayBuffers;
    const calls = ${collectAtIdle} ? [atIdle(), atIdle()] : [];
    await new Promise((r) => setTimeout(r, 50));
    console.log(JSON.stringify({ before: before / 1048576, after: process.memoryUsage().arrayBuffers / 1048576, calls }));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim()) as { before: number; after: number; calls: boolean[] };
}

describe('idleCollector (core/heap.ts)', function () {
  this.timeout(60_000);
  it("frees a finished job's buffers when called at idle, and only once memory has grown again", () => {
    const left = leftoversAtIdle(false);
    const collected = leftoversAtIdle(true);
    assert.ok(left.after >= 40, `without a collection V8 kept only ${left.after} MiB of the 48 MiB left behind (the test needs it to keep them to mean anything)`);
    assert.ok(collected.before >= 40, `the job's buffers were gone before the collector ran (${collected.before} MiB)`);
    assert.ok(collected.after < 16, `collected at idle, ${collected.after} MiB of array buffers remain`);
    // The second call finds nothing grown since the first: no second collection.
    assert.deepEqual(collected.calls, [true, false]);
  });
});

describe('core/heap.ts in a process whose V8 flags are frozen', function () {
  this.timeout(60_000);
  it('sets no flag (setting one would abort the process) and collects nothing', () => {
    const script = `
      import { boundYoungGeneration, idleCollector } from ${JSON.stringify(heapModule)};
      boundYoungGeneration();
      const atIdle = idleCollector(0);
      const grown = Buffer.alloc(32 << 20, 1);
      console.log(JSON.stringify({ collected: atIdle(), held: grown.length }));`;
    const r = spawnSync(process.execPath, ['--freeze-flags-after-init', '--input-type=module', '-e', script], { encoding: 'utf8' });
    assert.equal(r.status, 0, `exit ${r.status} ${r.signal ?? ''}: ${r.stderr.slice(0, 400)}`);
    assert.deepEqual(JSON.parse(r.stdout.trim()), { collected: false, held: 32 << 20 });
  });
});
