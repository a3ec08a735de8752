// core/heap.ts: the main thread's young generation stays at its start size once bounded (peak
// RSS of a long backup must not grow with the data). Each case runs in its own Node process,
// since V8 flags are process-wide.
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
