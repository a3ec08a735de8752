import assert from 'node:assert/strict';
import { batchRuns } from '../../core/backup/read-pipeline.ts';
import type { ReadRun } from '../../core/backup/plan.ts';

const K = 256 * 1024;
const run = (first: number, count: number): ReadRun => ({ first, count, offset: first * K, length: count * K });

describe('read pipeline batches', () => {
  it('packs scattered runs into batches of at most the limit, in order, every run once', () => {
    const runs = [run(0, 1), run(5, 2), run(9, 16), run(40, 1), run(50, 1), run(60, 15), run(80, 1)];
    const batches = batchRuns(runs, 16 * K);
    assert.deepEqual(batches.map((b) => b.runs.map((r) => r.first)), [[0, 5], [9], [40, 50], [60, 80]]);
    for (const b of batches) {
      assert.equal(b.bytes, b.runs.reduce((a, r) => a + r.length, 0));
      assert.ok(b.bytes <= 16 * K);
    }
    assert.deepEqual(batches.flatMap((b) => b.runs), runs);
  });

  it('gives a run larger than the limit a batch of its own, and no batch for no runs', () => {
    assert.deepEqual(batchRuns([run(0, 20), run(30, 1)], 16 * K).map((b) => b.runs.length), [1, 1]);
    assert.deepEqual(batchRuns([], 16 * K), []);
  });
});
