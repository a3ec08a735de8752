import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { backupVMs } from '../../core/api/backup.ts';
import { listRestorePoints } from '../../core/api/points.ts';
import { restoreVM } from '../../core/api/restore.ts';
import { compareDisks, createSampleVM, guestWriteVM, startGuestWriter } from '../../core/api/vm.ts';
import { planSlices, planWindow, RangeSet, readRuns } from '../../core/backup/plan.ts';
import { guestWrite, randomGuestWrites } from '../../core/hosts/local/guest.ts';
import { loadVm } from '../../core/hosts/local/vm-folder.ts';
import type { ProgressEvent } from '../../core/progress.ts';
import { Repository } from '../../core/repo/repository.ts';
import { LocalHost } from '../../core/hosts/local/host.ts';
import { verifyRepository } from '../../core/api/verify.ts';
import sinon from 'sinon';
import { open } from 'node:fs/promises';
import { MiB, newRepo, qemuImg, scratch, Shadow, splitSlices } from './testing.ts';
import type { Scratch } from './testing.ts';

describe('backup planning', () => {
  it('never reads zero extents, reads changed slices, reuses the rest from the previous point', () => {
    const extents = [
      { offset: 0, length: 3 * MiB, kind: 'data' as const },
      { offset: 3 * MiB, length: 4 * MiB, kind: 'zero' as const },
      { offset: 7 * MiB, length: 3 * MiB + 100, kind: 'data' as const },
    ];
    const virtualSize = 10 * MiB + 100;
    assert.deepEqual(planSlices({ virtualSize, chunkSize: MiB, extents }), ['read', 'read', 'read', null, null, null, null, 'read', 'read', 'read', 'read']);
    const previous = ['a', 'b', 'c', null, null, null, null, 'h', null, 'j', 'k'];
    const plan = planSlices({ virtualSize, chunkSize: MiB, extents, changed: [{ offset: MiB + 5, length: 10 }, { offset: 10 * MiB, length: 50 }], previous });
    assert.deepEqual(plan, ['a', 'read', 'c', null, null, null, null, 'h', null, 'j', 'read']);
    assert.deepEqual(readRuns(['read', 'read', 'read', null, 'read'], MiB, 5 * MiB - 10, 2 * MiB), [
      { first: 0, count: 2, offset: 0, length: 2 * MiB }, { first: 2, count: 1, offset: 2 * MiB, length: MiB }, { first: 4, count: 1, offset: 4 * MiB, length: MiB - 10 },
    ]);
  });
});

describe('backup planning of split slices (64 KiB pieces)', () => {
  const K = 64 * 1024, CS = 4 * K;
  it('reads only changed pieces; unchanged ones point into the previous whole chunk or are the previous piece as it was; all changed reads the slice', () => {
    const virtualSize = 5 * CS - K; // the last slice has 3 pieces on the disk
    const extents = [{ offset: 0, length: virtualSize, kind: 'data' as const }];
    const prevSplit = { pieces: [{ id: 'x', offset: 0 }, { id: 'n1', offset: 0 }, null, { id: 'x', offset: 3 * K }] };
    const previous = ['a', prevSplit, null, 'd', 'e'];
    const changed = [
      { offset: K + 10, length: 4096 },                    // slice 0, piece 1
      { offset: CS + 2 * K, length: K },                   // slice 1, piece 2
      { offset: 2 * CS + 3 * K, length: 1 },               // zero slice 2, piece 3
      { offset: 3 * CS, length: CS },                      // slice 3, every piece
      { offset: 4 * CS, length: 3 * K - 5 },               // slice 4, its three pieces on the disk
    ];
    const plan = planSlices({ virtualSize, chunkSize: CS, extents, changed, previous, pieces: 4 });
    assert.deepEqual(plan, [
      { split: [{ id: 'a', offset: 0 }, 'read', { id: 'a', offset: 2 * K }, { id: 'a', offset: 3 * K }] },
      { split: [{ id: 'x', offset: 0 }, { id: 'n1', offset: 0 }, 'read', { id: 'x', offset: 3 * K }] },
      { split: [null, null, null, 'read'] },
      'read',
      'read',
    ]);
    assert.deepEqual(planSlices({ virtualSize, chunkSize: CS, extents, changed, previous }), ['read', 'read', 'read', 'read', 'read'], 'no pieces: whole slices');
    assert.deepEqual(readRuns(plan, CS, virtualSize, 4 * MiB), [
      { first: 0, piece: 1, count: 1, offset: K, length: K },
      { first: 1, piece: 2, count: 1, offset: CS + 2 * K, length: K },
      { first: 2, piece: 3, count: 1, offset: 2 * CS + 3 * K, length: K },
      { first: 3, count: 2, offset: 3 * CS, length: 2 * CS - K },
    ]);
    // Pieces outside the data extents are zeros, and are never read.
    const holes = planSlices({ virtualSize: CS, chunkSize: CS, extents: [{ offset: 0, length: 2 * K, kind: 'data' as const }], changed: [{ offset: 0, length: CS }], previous: ['a'], pieces: 4 });
    assert.deepEqual(holes, [{ split: ['read', 'read', null, null] }]);
  });
});

describe('backup planning by window', () => {
  it('a window finds every range that overlaps it, also one that starts long before it among shorter ones', () => {
    const changed = new RangeSet([
      { offset: 9 * MiB, length: 1 }, { offset: 0, length: 6 * MiB + 1 }, { offset: 1 * MiB, length: 10 }, { offset: 2 * MiB, length: 0 },
    ]);
    // Window of slices 4..7 (1 MiB slices): the long range from 0 covers 4, 5 and byte 0 of 6.
    assert.deepEqual([...changed.touched(4, 4, MiB)], [1, 1, 1, 0]);
    assert.deepEqual([...changed.touched(8, 4, MiB)], [0, 1, 0, 0]);
    assert.deepEqual([...changed.touched(1, 1, MiB)], [1]);
    const data = new RangeSet([{ offset: 0, length: 12 * MiB }]);
    assert.deepEqual(planWindow({ first: 4, count: 4, chunkSize: MiB, data, changed, previous: ['e', 'f', 'g', 'h'] }), ['read', 'read', 'read', 'h']);
    assert.deepEqual(readRuns(['read', null, 'read'], MiB, 12 * MiB, 4 * MiB, 8), [
      { first: 8, count: 1, offset: 8 * MiB, length: MiB }, { first: 10, count: 1, offset: 10 * MiB, length: MiB },
    ]);
  });
});

describe('backup and restore, end to end (local host)', function () {
  this.timeout(180_000);
  let s: Scratch;
  let repo: string;
  let vmDir: string;
  let disk: string;
  const ctx = {};

  before(async () => {
    s = scratch();
    repo = await newRepo(s.path('repo'));
    vmDir = s.path('vms', 'web01');
    disk = (await createSampleVM(ctx, { dir: vmDir, sizeBytes: 64 * MiB, seed: 3 })).disk;
  });
  after(() => s.cleanup());

  /** After a backup that failed: the VM is on its own disks again (no record, no .avhdx) and no point was added. */
  async function assertMergedNoPoint(pointsBefore: number): Promise<void> {
    assert.equal((await loadVm(vmDir)).config.backupCheckpoint, undefined, 'checkpoint merged after the failure');
    assert.deepEqual(readdirSync(join(vmDir, 'Virtual Hard Disks')).filter((f) => f.endsWith('.avhdx')), []);
    assert.equal((await listRestorePoints(ctx, { repository: repo })).length, pointsBefore, 'no restore point from a failed backup');
  }

  /**
   * The tests below build on web01's earlier points: one that needs a previous point makes a
   * full backup first when it runs alone (through a grep), so it tests what it says either way.
   */
  async function ensurePoint(): Promise<void> {
    if ((await listRestorePoints(ctx, { repository: repo, vmName: 'web01' })).length > 0) return;
    const [full] = await backupVMs(ctx, { repository: repo, sources: [vmDir] });
    assert.equal(full!.status, 'success', JSON.stringify(full!.error));
  }

  /** The failed backup's reference is unknown to the repository: the next backup is still tracked, and restores identical. */
  async function assertNextTracked(seed: number, to: string): Promise<void> {
    await guestWriteVM(ctx, { dir: vmDir, count: 2, seed });
    const [next] = await backupVMs(ctx, { repository: repo, sources: [vmDir] });
    assert.equal(next!.method, 'changed-blocks', next!.methodReason);
    const res = await restoreVM(ctx, { repository: repo, point: next!.pointId!, to: s.path(to) });
    assert.equal(qemuImg('compare', '-f', 'vhdx', '-F', 'vhdx', res.disks[0]!.path, disk).status, 0);
  }

  it('full + 3 incrementals with a guest writing during each: every point restores identical to its checkpoint', async () => {
    const shadow = new Shadow(disk, s.dir);
    const points: { id: string; expected: string }[] = [];
    const events: ProgressEvent[] = [];
    let sinceLast = 0;
    let points0Read = 0;
    let splitSeen = 0;
    for (let round = 0; round < 4; round++) {
      if (round > 0) {
        const pre = randomGuestWrites(100 + round, 8, 65536, 64 * MiB);
        await guestWrite(vmDir, pre);
        await shadow.apply(pre);
      }
      const guest = await startGuestWriter(ctx, { dir: vmDir, seed: round + 1, size: 4096 * (round + 1), pauseMs: 1 });
      const t0 = performance.now();
      const [r] = await backupVMs({ onProgress: (e) => events.push(e) }, { repository: repo, sources: [vmDir] });
      const wall = performance.now() - t0;
      const during = await guest.stop();
      assert.equal(r!.status, 'success', JSON.stringify(r!.error));
      assert.ok(Number.isInteger(r!.durationMs) && r!.durationMs! > 0 && r!.durationMs! <= Math.ceil(wall), `durationMs ${r!.durationMs} within the call's ${wall} ms`);
      assert.equal(r!.method, round === 0 ? 'full' : 'changed-blocks', r!.methodReason);
      const { expected, inCheckpoint } = await shadow.around(during);
      assert.ok(inCheckpoint > 0, 'the guest wrote into the checkpoint while the backup ran');
      // Tracked: only slices touched since the last checkpoint are read (each write touches at most 2 slices).
      if (round > 0) assert.ok(r!.readBytes <= (8 + sinceLast) * 2 * MiB && r!.readBytes < points0Read, `incremental read ${r!.readBytes} bytes`);
      if (round === 0) points0Read = r!.readBytes;
      if (round > 0) splitSeen += (await splitSlices(repo, r!.pointId!)).slices;
      sinceLast = during.length;
      points.push({ id: r!.pointId!, expected });
    }
    assert.ok(splitSeen > 0, 'the guest\'s small writes left slices stored as pieces, which the restores below assemble');
    assert.ok(events.some((e) => e.activity === 'backup' && e.total! > 0 && e.done === e.total && e.completed));
    // Every guest write survived the merges: the VM disk equals the shadow.
    assert.equal(await compareDisks(disk, shadow.path), -1);
    assert.equal((await loadVm(vmDir)).config.backupCheckpoint, undefined);
    assert.deepEqual(readdirSync(join(vmDir, 'Virtual Hard Disks')).filter((f) => f.endsWith('.avhdx')), []);
    for (const [i, p] of points.entries()) {
      const to = s.path(`restore-${i}`);
      const res = await restoreVM(ctx, { repository: repo, point: p.id, to });
      const restored = res.disks[0]!.path;
      const cmp = qemuImg('compare', '-f', 'vhdx', '-F', 'vhdx', restored, p.expected);
      assert.equal(cmp.status, 0, `point ${i}: ${cmp.out}`);
      const chk = qemuImg('check', '-f', 'vhdx', restored);
      assert.equal(chk.status, 0, chk.out);
    }
  });

  it('a change made outside the engine (qemu-io) makes the next backup scan, and it is still correct', async () => {
    await ensurePoint();
    // First absorb what the guest wrote during the last checkpoint (and a few sub-slice writes,
    // so that this point has split slices however the tests before ran), so the scan below sees
    // only the qemu-io change.
    await guestWriteVM(ctx, { dir: vmDir, count: 8, seed: 5 });
    const [before] = await backupVMs(ctx, { repository: repo, sources: [vmDir] });
    assert.equal(before!.method, 'changed-blocks');
    // A scan reads the slices the tracked incrementals kept as pieces as pieces again, and
    // keeps every piece whose bytes the previous point has: they are not stored again.
    const split = (await splitSlices(repo, before!.pointId!)).slices;
    assert.ok(split > 0, 'the tracked incrementals split slices');
    const q = spawnSync('qemu-io', ['-f', 'vhdx', '-c', 'write -P 0xab 5M 128k', '-c', 'write -P 0xcd 40M 4k', disk], { encoding: 'utf8' });
    assert.equal(q.status, 0, q.stderr);
    const [r] = await backupVMs(ctx, { repository: repo, sources: [vmDir] });
    assert.equal(r!.status, 'success', JSON.stringify(r!.error));
    assert.equal(r!.method, 'scan');
    assert.match(r!.methodReason!, /outside change tracking/);
    const [info] = await listRestorePoints(ctx, { repository: repo, vmName: 'web01', latest: true });
    assert.equal(info!.method, 'scan');
    assert.match(info!.methodReason!, /DataWriteGuid/);
    assert.ok(r!.storedBytes < MiB, `a scan stores only new chunks (two slices at most), not the ${split} split slices again (stored ${r!.storedBytes})`);
    assert.ok((await splitSlices(repo, r!.pointId!)).slices >= split, 'the split slices stay split (and slices the change touched split too)');
    const res = await restoreVM(ctx, { repository: repo, point: r!.pointId!, to: s.path('restore-scan') });
    assert.equal(qemuImg('compare', '-f', 'vhdx', '-F', 'vhdx', res.disks[0]!.path, disk).status, 0);
    // The scan started a new reference: the next backup is tracked again.
    await guestWriteVM(ctx, { dir: vmDir, count: 2, seed: 9 });
    const [next] = await backupVMs(ctx, { repository: repo, sources: [vmDir] });
    assert.equal(next!.method, 'changed-blocks', next!.methodReason);
  });

  it('a backup that fails after the checkpoint (cancelled) still merges it, leaves no restore point, and the next one is still tracked', async () => {
    await ensurePoint();
    const abort = new AbortController();
    const onLog = (e: { message: string }) => { if (/checkpoint/.test(e.message)) abort.abort(); };
    const before = (await listRestorePoints(ctx, { repository: repo })).length;
    const [r] = await backupVMs({ signal: abort.signal, onLog }, { repository: repo, sources: [vmDir] });
    assert.equal(r!.status, 'failed');
    assert.equal(r!.error!.code, 'ERR_CANCELLED');
    assert.ok(Number.isInteger(r!.durationMs) && r!.durationMs! >= 0, `a failed VM reports its duration too (${r!.durationMs})`);
    await assertMergedNoPoint(before);
    await assertNextTracked(44, 'restore-after-cancel');
  });

  it('the VM leaves its checkpoint once its disks are read, before the manifest is written; a manifest that fails leaves it merged too', async () => {
    await ensurePoint();
    const saves: { merged: boolean; avhdx: string[] }[] = [];
    let fail = false;
    const real = Repository.prototype.saveManifest;
    const stub = sinon.stub(Repository.prototype, 'saveManifest').callsFake(async function (this: Repository, ...args: Parameters<Repository['saveManifest']>) {
      saves.push({
        merged: (await loadVm(vmDir)).config.backupCheckpoint === undefined,
        avhdx: readdirSync(join(vmDir, 'Virtual Hard Disks')).filter((f) => f.endsWith('.avhdx')),
      });
      if (fail) throw new Error('disk full (test)');
      return real.apply(this, args);
    });
    try {
      await guestWriteVM(ctx, { dir: vmDir, count: 2, seed: 45 });
      const [ok] = await backupVMs(ctx, { repository: repo, sources: [vmDir] });
      assert.equal(ok!.status, 'success', JSON.stringify(ok!.error));
      assert.deepEqual(saves, [{ merged: true, avhdx: [] }], 'merged before the manifest');
      fail = true;
      const before = (await listRestorePoints(ctx, { repository: repo })).length;
      const [bad] = await backupVMs(ctx, { repository: repo, sources: [vmDir] });
      assert.equal(bad!.status, 'failed');
      assert.match(bad!.error!.message, /disk full \(test\)/);
      assert.equal(saves.length, 2);
      await assertMergedNoPoint(before);
    } finally {
      stub.restore();
    }
    await assertNextTracked(46, 'restore-after-failed-manifest');
  });

  it('cancelled while the checkpoint merges and the packs flush: the merge finishes, no point, the lock released, and the next backup is tracked', async () => {
    await ensurePoint();
    const abort = new AbortController();
    const real = LocalHost.prototype.removeBackupCheckpoint;
    let merges = 0;
    const stub = sinon.stub(LocalHost.prototype, 'removeBackupCheckpoint').callsFake(async function (this: LocalHost, ...args: Parameters<LocalHost['removeBackupCheckpoint']>) {
      merges++;
      abort.abort(); // Ctrl+C, just as the disks are read
      return real.apply(this, args);
    });
    try {
      await guestWriteVM(ctx, { dir: vmDir, count: 2, seed: 47 });
      const before = (await listRestorePoints(ctx, { repository: repo })).length;
      const [r] = await backupVMs({ signal: abort.signal }, { repository: repo, sources: [vmDir] });
      assert.equal(r!.status, 'failed');
      assert.equal(r!.error!.code, 'ERR_CANCELLED');
      assert.equal(merges, 1, 'merged once, not again after the cancel');
      await assertMergedNoPoint(before);
      assert.deepEqual(readdirSync(join(repo, 'locks')), [], 'the lock was released');
    } finally {
      stub.restore();
    }
    assert.ok((await verifyRepository(ctx, { repository: repo })).ok);
    await assertNextTracked(48, 'restore-after-cancelled-merge');
  });

  it('a disk that fails to read (EIO) fails the VM with an error naming the disk file and what was read, and the VM is merged', async () => {
    const probe = await open(disk, 'r');
    const proto = Object.getPrototypeOf(probe) as { read: (...a: unknown[]) => Promise<unknown> };
    await probe.close();
    const real = proto.read;
    /** Reads of at least `min` bytes fail as on a failing drive; smaller ones go through. */
    const failReads = (min: number) => sinon.stub(proto, 'read').callsFake(function (this: unknown, ...args: unknown[]) {
      if (typeof args[2] === 'number' && args[2] >= min) return Promise.reject(Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' }));
      return real.apply(this, args);
    });
    const before = (await listRestorePoints(ctx, { repository: repo })).length;
    // Payload reads (a full backup reads MiBs at a time); the metadata reads of the open succeed.
    let stub = failReads(1 << 20);
    try {
      const [r] = await backupVMs(ctx, { repository: repo, sources: [vmDir], full: true });
      stub.restore();
      assert.equal(r!.status, 'failed');
      assert.equal(r!.error!.code, 'ERR_IO', r!.error!.message);
      assert.match(r!.error!.message, /^read \d+ bytes at \d+ of .*web01\.vhdx: EIO/);
      assert.equal(r!.error!.message.match(/bytes at/g)!.length, 1, `named once: ${r!.error!.message}`);
      await assertMergedNoPoint(before);
    } finally {
      stub.restore();
    }
    // The VHDX's own structures (its region table is 64 KiB): the open names the file.
    stub = failReads(64 * 1024);
    try {
      const [r] = await backupVMs(ctx, { repository: repo, sources: [vmDir] });
      stub.restore();
      assert.equal(r!.status, 'failed');
      assert.equal(r!.error!.code, 'ERR_IO', r!.error!.message);
      assert.match(r!.error!.message, /open .*web01\.vhdx: EIO/);
      await assertMergedNoPoint(before);
    } finally {
      stub.restore();
    }
  });

  it('two backups of one VM at once: the second is refused, the running one is not disturbed', async () => {
    const results = await backupVMs(ctx, { repository: repo, sources: [vmDir, vmDir], parallel: 2 });
    assert.deepEqual(results.map((r) => r.status).sort(), ['failed', 'success']);
    const failed = results.find((r) => r.status === 'failed')!;
    assert.ok(['ERR_LOCKED', 'ERR_HOST'].includes(failed.error!.code), failed.error!.message);
    assert.equal((await loadVm(vmDir)).config.backupCheckpoint, undefined);
    const ok = results.find((r) => r.status === 'success')!;
    const res = await restoreVM(ctx, { repository: repo, point: ok.pointId!, to: s.path('restore-concurrent') });
    assert.equal(qemuImg('compare', '-f', 'vhdx', '-F', 'vhdx', res.disks[0]!.path, disk).status, 0);
  });

  it('whatIf plans without touching the VM or the repository', async () => {
    const before = await listRestorePoints(ctx, { repository: repo });
    const cfg = (await loadVm(vmDir)).config;
    const [r] = await backupVMs(ctx, { repository: repo, sources: [vmDir], whatIf: true });
    assert.equal(r!.status, 'planned');
    assert.ok(r!.plan!.some((l) => /checkpoint/.test(l)) && r!.plan!.some((l) => /SCSI:0:0/.test(l)));
    assert.equal((await listRestorePoints(ctx, { repository: repo })).length, before.length);
    assert.deepEqual((await loadVm(vmDir)).config, cfg);
  });

  it('backs up several VMs in parallel; one failing source does not stop the others', async () => {
    const other = s.path('vms', 'db01');
    await createSampleVM(ctx, { dir: other, sizeBytes: 32 * MiB, seed: 8, guestVss: true });
    const results = await backupVMs(ctx, { repository: repo, sources: [vmDir, s.path('vms', 'missing'), other], parallel: 2 });
    assert.deepEqual(results.map((r) => r.status), ['success', 'failed', 'success']);
    assert.equal(results[1]!.error!.code, 'ERR_NOT_FOUND');
    assert.match(results[1]!.error!.message, /missing/);
    assert.equal(results[2]!.method, 'full');
    assert.equal(results[2]!.consistency, 'application');
    const latest = await listRestorePoints(ctx, { repository: repo, latest: true });
    assert.deepEqual(latest.map((p) => p.vmName).sort(), ['db01', 'web01']);
  });

  it('a bare .vhdx file is backed up as a one-disk VM and restores alone with --disk', async () => {
    const bare = s.path('bare', 'data01.vhdx');
    await createSampleVM(ctx, { dir: s.path('bare-src'), sizeBytes: 16 * MiB, seed: 4, name: 'data01' });
    (await import('node:fs')).mkdirSync(s.path('bare'));
    (await import('node:fs')).copyFileSync(s.path('bare-src', 'Virtual Hard Disks', 'data01.vhdx'), bare);
    const [r] = await backupVMs(ctx, { repository: repo, sources: [bare] });
    assert.equal(r!.status, 'success', JSON.stringify(r!.error));
    assert.equal(r!.vmName, 'data01');
    const res = await restoreVM(ctx, { repository: repo, point: r!.pointId!, to: s.path('bare-restore'), disk: 'data01.vhdx' });
    assert.ok(existsSync(s.path('bare-restore', 'data01.vhdx')));
    assert.equal(qemuImg('compare', '-f', 'vhdx', '-F', 'vhdx', res.disks[0]!.path, bare).status, 0);
  });
});
