// SegmentedStore (core/backup/read-pipeline.ts): what it keeps while segments are in flight.
// A segment is durable only when its writer's pack is stored, often at the end of a backup, so
// whatever a submitted segment's bookkeeping holds is held for the whole backup.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Disk } from '../../core/disk/disk.ts';
import { readRuns, type SlicePlan } from '../../core/backup/plan.ts';
import { SegmentedStore } from '../../core/backup/read-pipeline.ts';
import type { ChunkWriter, PutResult } from '../../core/repo/index.ts';
import { SEGMENT_SLICES, SliceList } from '../../core/repo/manifest-segments.ts';
import type { SubmitRunOptions } from '../../core/repo/chunk-writer.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const CS = 64 * 1024;

describe('SegmentedStore while segments are in flight', () => {
  it('keeps neither a submitted window\'s segment bytes nor its slices\' promises until the segment is durable', async () => {
    const disk = { path: 'fake.vhdx', read: async (buf: Buffer, offset: number) => { buf.fill(1 + ((offset / CS) % 250)); } } as unknown as Disk;
    const id = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    // Data chunks are known at once; the segments' pack is never stored during this test.
    const data = {
      async submitRun(run: Buffer, slices: { offset: number; length: number }[], giveBack?: (b: Buffer) => void) {
        const known = Promise.resolve(slices.map((sl): PutResult => ({ id: id(run.subarray(sl.offset, sl.offset + sl.length)), stored: 0, isNew: true })));
        giveBack?.(run);
        return { done: known, known };
      },
    } as unknown as ChunkWriter;
    const submitted: WeakRef<Buffer>[] = [];
    const segments = {
      async submit(plain: Buffer) {
        submitted.push(new WeakRef(plain));
        return { done: new Promise<PutResult>(() => {}) };
      },
    } as unknown as ChunkWriter;
    const store = new SegmentedStore(disk, data, id, { chunkSize: CS, segmentWriter: segments, batchBytes: 4 * 1024 * 1024 });
    const windows = 8;
    for (let k = 0; k < windows; k++) {
      // Every slice of the window read: a segment of 4096 ids (128 KiB) and 4096 pending slices.
      const plan: SlicePlan[] = new Array(SEGMENT_SLICES).fill('read');
      await store.add({ k, first: k * SEGMENT_SLICES, plan, runs: readRuns(plan, CS, windows * SEGMENT_SLICES * CS, 4 * 1024 * 1024, k * SEGMENT_SLICES) });
    }
    const { segments: ids, durable } = await store.finish();
    durable.catch(() => {});
    assert.equal(ids.length, windows);
    assert.equal(submitted.length, windows, 'every window submitted its segment');
    await new Promise((r) => setTimeout(r, 0));
    gc();
    const kept = submitted.filter((w) => w.deref() !== undefined).length;
    assert.equal(kept, 0, `${kept} of ${windows} submitted segments still held by the store`);
  });

  it('a scan compares at most two batches of changed slices with their previous chunks at once, and stores each slice', async () => {
    const disk = { path: 'fake.vhdx', read: async (buf: Buffer, offset: number) => { buf.fill(1 + ((offset / CS) % 250)); } } as unknown as Disk;
    const id = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    let wholeStored = 0;
    // Nothing is in the repository: the first submit of each batch keeps every slice out (its previous
    // slice held data), the piece pass keeps every piece out, and the last pass stores the slices whole.
    const data = {
      async submitRun(run: Buffer, slices: { offset: number; length: number }[], giveBack?: (b: Buffer) => void, opts: SubmitRunOptions = {}) {
        const results = slices.map((sl, i): PutResult => {
          const sid = id(run.subarray(sl.offset, sl.offset + sl.length));
          if (opts.keepOut?.(sid, i)) return { id: sid, stored: 0, isNew: false, keptOut: true };
          if (sl.length === CS * 4) wholeStored++;
          return { id: sid, stored: sl.length, isNew: true };
        });
        setTimeout(() => giveBack?.(run), 1);
        const known = Promise.resolve(results);
        return { done: known, known };
      },
    } as unknown as ChunkWriter;
    const segments = { async submit() { return { done: Promise.resolve({ id: '', stored: 0, isNew: true }) }; } } as unknown as ChunkWriter;
    let running = 0;
    let most = 0;
    let calls = 0;
    const aliasesFor = async () => {
      calls++;
      most = Math.max(most, ++running);
      await new Promise((r) => setTimeout(r, 5));
      running--;
      return new Map();
    };
    const count = 64;
    const store = new SegmentedStore(disk, data, id, { chunkSize: CS * 4, segmentWriter: segments, batchBytes: 2 * CS * 4, aliasesFor });
    const plan: SlicePlan[] = new Array(count).fill('read');
    // One run per slice (every other slice read), so each 2-slice batch is a batch of its own.
    const runs = readRuns(plan, CS * 4, count * CS * 4, CS * 4, 0);
    const previous = new SliceList(Array.from({ length: count }, (_, j) => 'f'.repeat(63) + (j % 10)));
    await store.add({ k: 0, first: 0, plan, runs, splitFrom: previous });
    await store.finish();
    assert.equal(calls, count / 2, 'every batch\'s changed slices were compared');
    assert.equal(wholeStored, count, 'no piece was known: every slice stored whole');
    assert.ok(most <= 2, `${most} comparisons ran at once`);
    assert.ok(most >= 2, 'comparisons still overlap');
  });
});
