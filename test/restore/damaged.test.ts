// restore --allow-damaged: a chunk or segment that does not load becomes zeros in a disk
// that is still a valid VHDX, every such range is listed, and every other byte is the
// point's own. Without the flag the restore fails on it, as before. And a destination that
// fills up fails with an error naming the file, leaving nothing behind.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import sinon from 'sinon';
import { restoreVM } from '../../core/api/restore.ts';
import { createSampleVM } from '../../core/api/vm.ts';
import { isHvError } from '../../core/errors.ts';
import { guestWrite } from '../../core/hosts/local/guest.ts';
import { openRepository } from '../../core/repo/index.ts';
import { PIECE_SIZE } from '../../core/repo/manifest-segments.ts';
import type { SliceRef } from '../../core/repo/manifest-types.ts';
import { flipChunkBit } from '../../core/repo/testing.ts';
import { damageChunk, diskSlices, MiB, newRepo, pointRecorder, qemuImg, scratch, type Scratch } from '../backup/testing.ts';

const CS = 256 * 1024;
const P = PIECE_SIZE;
const E1 = 100, E2 = 140;

describe('restore --allow-damaged: zeros where a chunk does not load, and the ranges listed', function () {
  this.timeout(120_000);
  let s: Scratch;
  let repo: string;
  let points: { id: string; expected: string }[];
  let full: SliceRef[];
  let split: SliceRef[];
  /** A data slice the incremental splits (piece 1 changed), and one it leaves alone. */
  let A: number, B: number;
  const ctx = {};

  const slicesOf = (id: string) => diskSlices(repo, id);
  const damage = (id: string) => damageChunk(repo, id);

  function raw(vhdx: string): Buffer {
    const out = `${vhdx}.raw`;
    const q = qemuImg('convert', '-f', 'vhdx', '-O', 'raw', vhdx, out);
    assert.equal(q.status, 0, q.out);
    return readFileSync(out);
  }

  /** Restore point `i` allowing damage: the disk must be the expected one with exactly `zeroed` zeroed, and valid. */
  async function restoreExpecting(i: number, name: string, zeroed: { offset: number; length: number }[]) {
    const res = await restoreVM(ctx, { repository: repo, point: points[i]!.id, to: s.path(name), allowDamaged: true });
    assert.equal(res.status, zeroed.length > 0 ? 'partial' : 'success');
    assert.deepEqual((res.damaged ?? []).map((d) => ({ offset: d.offset, length: d.length })), zeroed);
    const chk = qemuImg('check', '-f', 'vhdx', res.disks[0]!.path);
    assert.equal(chk.status, 0, chk.out);
    const want = raw(points[i]!.expected);
    for (const z of zeroed) want.fill(0, z.offset, z.offset + z.length);
    assert.ok(raw(res.disks[0]!.path).equals(want), 'every byte outside the listed ranges is the point\'s, and inside them zeros');
    return res;
  }

  before(async () => {
    s = scratch('hvb-damaged-');
    repo = await newRepo(s.path('repo'));
    const vmDir = s.path('vms', 'vm');
    // 48 MiB: the restore's two 8 MiB write batches are each used again, so a range left
    // unwritten would hold an earlier batch's bytes, not zeros.
    const { disk } = await createSampleVM(ctx, { dir: vmDir, sizeBytes: 48 * MiB, seed: 41 });
    // Two equal slices (one chunk), both split by the incremental: the chunk is decoded once
    // and kept for the second (restore's windowChunkPlan).
    const same = randomBytes(CS);
    // The upper half all data, so the batches are filled whole before B is written from one.
    await guestWrite(vmDir, [{ offset: 24 * MiB, data: randomBytes(24 * MiB) }, { offset: E1 * CS, data: same }, { offset: E2 * CS, data: same }]);
    const recorder = pointRecorder(ctx, repo, vmDir, disk, s);
    points = recorder.points;
    const backUp = recorder.backUp;
    await backUp('p0');
    full = await slicesOf(points[0]!.id);
    const data = full.flatMap((r, i) => (typeof r === 'string' && full.indexOf(r) === i && full.lastIndexOf(r) === i && i !== E1 && i !== E2 ? [i] : []));
    [A, B] = [data[3]!, 46 * MiB / CS];
    assert.ok(data.includes(B), 'B holds a chunk of its own');
    assert.equal(full[E1], full[E2]);
    await guestWrite(vmDir, [
      { offset: A * CS + P + 4096, data: Buffer.alloc(4096, 0xa1) },
      { offset: E1 * CS + P, data: Buffer.alloc(4096, 0xe1) },
      { offset: E2 * CS + 2 * P, data: Buffer.alloc(4096, 0xe2) },
    ]);
    assert.equal((await backUp('p1')).method, 'changed-blocks');
    split = await slicesOf(points[1]!.id);
    assert.ok(typeof split[A] === 'object' && split[A] !== null, 'slice A is split');
  });
  after(() => s.cleanup());

  it('a destination that fills up (ENOSPC): an error naming the disk file, and nothing left behind', async () => {
    const probe = await open(s.path('probe'), 'w');
    const proto = Object.getPrototypeOf(probe) as { write: (...a: unknown[]) => Promise<unknown> };
    await probe.close();
    const real = proto.write;
    // Data writes (a MiB or more at a time) fail as on a full volume; small ones go through.
    const stub = sinon.stub(proto, 'write').callsFake(function (this: unknown, ...args: unknown[]) {
      if (Buffer.isBuffer(args[0]) && (args[0] as Buffer).length >= MiB) return Promise.reject(Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28 }));
      return real.apply(this, args);
    });
    try {
      await assert.rejects(restoreVM(ctx, { repository: repo, point: points[1]!.id, to: s.path('full-volume') }), (err: unknown) => {
        assert.ok(isHvError(err, 'ERR_IO'), String(err));
        assert.match((err as Error).message, /^restore disk .* to .*full-volume.*vm\.vhdx: ENOSPC/);
        return true;
      });
    } finally {
      stub.restore();
    }
    assert.deepEqual(readdirSync(s.path('full-volume')), [], 'the staging folder is gone');
  });

  it('a sound point restores whole with the flag too', async () => {
    await restoreExpecting(1, 'sound', []);
  });

  it('a whole slice\'s chunk: one slice of zeros, named by chunk; without the flag the restore fails', async () => {
    await damage(full[B] as string);
    try {
      await assert.rejects(restoreVM(ctx, { repository: repo, point: points[0]!.id, to: s.path('strict') }), (err: unknown) => isHvError(err, 'ERR_CORRUPT'));
      const res = await restoreExpecting(0, 'whole', [{ offset: B * CS, length: CS }]);
      assert.equal(res.damaged![0]!.chunk, full[B]);
      assert.match(res.damaged![0]!.problem, /does not match its id|corrupt/);
    } finally {
      await damage(full[B] as string); // the same bit back
    }
  });

  it('the chunk a split slice\'s unchanged pieces point into: only those pieces are zeros', async () => {
    await damage(full[A] as string);
    try {
      // Pieces 0, 2 and 3 of A take their bytes from the full point's chunk; piece 1 is the incremental's own.
      await restoreExpecting(1, 'pieces', [{ offset: A * CS, length: P }, { offset: A * CS + 2 * P, length: 2 * P }]);
      // In the full point the same chunk is the whole slice.
      await restoreExpecting(0, 'pieces-full', [{ offset: A * CS, length: CS }]);
    } finally {
      await damage(full[A] as string);
    }
  });

  it('a chunk two split slices point into: its pieces in both are zeros, though it is decoded once', async () => {
    await damage(full[E1] as string);
    try {
      // In the full point the two slices name it whole: both are zeros (a repeated chunk that fails is reported each time).
      await restoreExpecting(0, 'shared-full', [{ offset: E1 * CS, length: CS }, { offset: E2 * CS, length: CS }]);
      await restoreExpecting(1, 'shared', [
        { offset: E1 * CS, length: P }, { offset: E1 * CS + 2 * P, length: 2 * P },
        { offset: E2 * CS, length: 2 * P }, { offset: E2 * CS + 3 * P, length: P },
      ]);
    } finally {
      await damage(full[E1] as string);
    }
  });

  it('a segment that does not load: its whole window is zeros, named by segment', async () => {
    const r = await openRepository(repo, { threads: 0 });
    let segment: string;
    let size: number;
    try {
      const m = await r.loadManifest(points[1]!.id);
      segment = m.disks[0]!.segments![0]!;
      size = m.disks[0]!.virtualSize;
      await flipChunkBit(r, segment);
    } finally {
      await r.close();
    }
    try {
      const res = await restoreExpecting(1, 'segment', [{ offset: 0, length: size }]);
      assert.equal(res.damaged![0]!.segment, 0);
    } finally {
      const again = await openRepository(repo, { threads: 0 });
      try {
        await flipChunkBit(again, segment);
      } finally {
        await again.close();
      }
    }
    await restoreExpecting(1, 'segment-mended', []);
  });
});
