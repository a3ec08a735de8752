// A long-lived process (the PowerShell module's bridge) keeps each repository's chunk index
// between calls (keepChunkIndexes): the next handle refreshes it instead of reading it whole,
// and must still see what another process changed meanwhile.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import sinon from 'sinon';
import { backupVMs } from '../../core/api/backup.ts';
import { keepChunkIndexes, keepIdleWorkerPools, releaseKeptResources } from '../../core/api/repository.ts';
import { listRestorePoints } from '../../core/api/points.ts';
import { restoreVM } from '../../core/api/restore.ts';
import { verifyRepository } from '../../core/api/verify.ts';
import { createSampleVM } from '../../core/api/vm.ts';
import { LocalBackend } from '../../core/repo/backend-local.ts';
import { openRepository } from '../../core/repo/index.ts';
import type { Handle } from '../../core/repo/backend.ts';
import { MiB, newRepo, qemuImg, scratch, type Scratch } from '../backup/testing.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));

/** Objects of `type` read while `fn` runs, each counted once (load reads through openReader). */
async function objectReads(type: Handle['type'], fn: () => Promise<unknown>): Promise<number> {
  const load = sinon.spy(LocalBackend.prototype, 'load');
  const open = sinon.spy(LocalBackend.prototype, 'openReader');
  try {
    await fn();
    const names = [...load.getCalls(), ...open.getCalls()].map((c) => c.args[1] as Handle).filter((h) => h.type === type).map((h) => h.name);
    return new Set(names).size;
  } finally {
    load.restore();
    open.restore();
  }
}

/** Index objects read (whole) while `fn` runs. */
const indexReads = (fn: () => Promise<unknown>) => objectReads('index', fn);

/** Another process: back up the VM at `vm` into `repo` (the CLI: its chunk workers must not inherit an --input-type). */
function backupElsewhere(repo: string, vm: string): void {
  const r = spawnSync(process.execPath, [`${root}core/cli/main.ts`, 'backup', vm, '--repo', repo], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
}

/** Another process: remove every restore point of the repository, then collect garbage. */
function removeAllElsewhere(repo: string): void {
  const script = `
    import { listRestorePoints } from ${JSON.stringify(`${root}core/api/points.ts`)};
    import { removeRestorePoints } from ${JSON.stringify(`${root}core/api/repository.ts`)};
    import { collectGarbage } from ${JSON.stringify(`${root}core/api/retention.ts`)};
    const points = await listRestorePoints({}, { repository: ${JSON.stringify(repo)} });
    if (points.length > 0) await removeRestorePoints({}, { repository: ${JSON.stringify(repo)}, ids: points.map((p) => p.id) });
    await collectGarbage({}, { repository: ${JSON.stringify(repo)} });`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
}

describe('chunk indexes kept between handles in a long-lived process (keepChunkIndexes)', () => {
  let s: Scratch;
  before(() => {
    s = scratch('hvb-kept-index-');
    keepChunkIndexes(2);
  });
  after(() => {
    keepChunkIndexes(0);
    s.cleanup();
  });

  it('the next call refreshes the kept index (no index object read again), and sees another process remove every chunk, so a backup stores them anew and restores identical', async () => {
    const repo = await newRepo(s.path('repo'));
    const vm = s.path('vm');
    await createSampleVM({}, { dir: vm, sizeBytes: 32 * MiB, seed: 7 });
    const first = (await backupVMs({}, { repository: repo, sources: [vm] }))[0]!;
    assert.equal(first.status, 'success', first.error?.message);

    // Kept: the second backup lists index/ and reads none of the objects it knows.
    let again!: Awaited<ReturnType<typeof backupVMs>>;
    assert.equal(await indexReads(async () => { again = await backupVMs({}, { repository: repo, sources: [vm], full: true }); }), 0);
    assert.equal(again[0]!.status, 'success');
    // Only the point's own metadata is new (the config holds the checkpoint record).
    assert.ok(again[0]!.storedBytes < first.storedBytes / 20, `${again[0]!.storedBytes} of ${first.storedBytes} bytes stored again`);

    const chunkIds: string[] = [];
    {
      const r = await openRepository(repo, { threads: 0 });
      for await (const c of r.listChunks()) chunkIds.push(c.id);
      await r.close();
    }
    assert.ok(chunkIds.length > 0);

    removeAllElsewhere(repo);

    // A handle made now starts from the kept index, which still lists every chunk: it must not believe it.
    const r = await openRepository(repo, { threads: 0 });
    assert.equal((await r.hasChunks(chunkIds)).size, 0, 'the kept index was refreshed: the chunks GC deleted are gone from it');
    await r.close();

    const third = (await backupVMs({}, { repository: repo, sources: [vm] }))[0]!;
    assert.equal(third.status, 'success', third.error?.message);
    assert.ok(third.storedBytes > first.storedBytes / 2, `the chunks are stored again (${third.storedBytes} of ${first.storedBytes} bytes)`);
    const restored = await restoreVM({}, { repository: repo, point: third.pointId!, to: s.path('restored') });
    const cmp = qemuImg('compare', '-q', '-f', 'vhdx', '-F', 'vhdx', restored.disks[0]!.path, `${vm}/Virtual Hard Disks/${restored.disks[0]!.path.split('/').pop()}`);
    assert.equal(cmp.status, 0, cmp.out);
    const v = await verifyRepository({}, { repository: repo });
    assert.ok(v.ok, JSON.stringify(v.problems));
  });

  it('restore-point summaries are kept too: the next backup reads none it knows, a point another process adds is read once, points removed elsewhere leave the list', async () => {
    const repo = await newRepo(s.path('repo-summaries'));
    const vm = s.path('vm-summaries');
    const other = s.path('vm-other');
    await createSampleVM({}, { dir: vm, sizeBytes: 16 * MiB, seed: 11 });
    await createSampleVM({}, { dir: other, sizeBytes: 16 * MiB, seed: 12 });
    for (let i = 0; i < 3; i++) assert.equal((await backupVMs({}, { repository: repo, sources: [vm] }))[0]!.status, 'success');
    const ids = (await listRestorePoints({}, { repository: repo })).map((p) => p.id);
    assert.equal(ids.length, 3);

    let next!: Awaited<ReturnType<typeof backupVMs>>;
    assert.equal(await objectReads('points', async () => { next = await backupVMs({}, { repository: repo, sources: [vm] }); }), 0, 'no summary read again');
    assert.equal(next[0]!.status, 'success');
    assert.equal(next[0]!.method, 'changed-blocks', 'the previous point was found among the kept summaries');

    backupElsewhere(repo, other);
    let listed!: Awaited<ReturnType<typeof listRestorePoints>>;
    assert.equal(await objectReads('points', async () => { listed = await listRestorePoints({}, { repository: repo }); }), 1, 'only the new point\'s summary is read');
    assert.deepEqual(listed.map((p) => p.vmName).sort(), ['vm-other', 'vm-summaries', 'vm-summaries', 'vm-summaries', 'vm-summaries']);
    assert.deepEqual((await listRestorePoints({}, { repository: repo, latest: true })).map((p) => [p.vmName, p.id]).sort(),
      [['vm-other', listed.find((p) => p.vmName === 'vm-other')!.id], ['vm-summaries', next[0]!.pointId!]]);

    removeAllElsewhere(repo);
    assert.deepEqual(await listRestorePoints({}, { repository: repo }), [], 'points removed by another process are not listed from the cache');
    const after = (await backupVMs({}, { repository: repo, sources: [vm] }))[0]!;
    assert.equal(after.status, 'success');
    assert.equal(after.method, 'full', 'no previous point left: a full backup, not an incremental on a removed point');
  });

  it('is not kept when packs of the handle still wait for an index object (a failed backup): another process\'s GC deletes them, and the next handle must not list them', async () => {
    const repo = await newRepo(s.path('repo-unindexed'));
    const r1 = await openRepository(repo);
    const w = r1.chunkWriter();
    // More than two packs (8 MiB each; two workers fill two at once) of chunks: a pack is
    // stored, and no flush ever indexes it.
    const done: Promise<{ id: string }>[] = [];
    for (let i = 0; i < 80; i++) done.push((await w.submit(randomBytes(256 * 1024))).done);
    const stored = await Promise.race(done);
    assert.ok((await r1.chunkIndex()).unindexed.packs >= 1);
    await r1.close();

    removeAllElsewhere(repo);

    const r2 = await openRepository(repo, { threads: 0 });
    assert.equal((await r2.hasChunks([stored.id])).size, 0, 'GC deleted the unindexed pack: the next handle does not list its chunks');
    await r2.close();
  });

  it('releaseKeptResources lets go of the kept workers, pack and read buffers and index; the next backup reads its index again and is still tracked', async () => {
    keepIdleWorkerPools(2);
    try {
      await releaseKeptResources(); // what earlier tests kept
      const repo = await newRepo(s.path('repo-release'));
      const vm = s.path('vm-release');
      await createSampleVM({}, { dir: vm, sizeBytes: 32 * MiB, seed: 9 });
      const first = (await backupVMs({}, { repository: repo, sources: [vm] }))[0]!;
      assert.equal(first.status, 'success', first.error?.message);
      const released = await releaseKeptResources();
      assert.ok(released.workers >= 1, JSON.stringify(released));
      assert.ok(released.packBufferBytes >= 8 * MiB, JSON.stringify(released));
      assert.ok(released.readBufferBytes >= 4 * MiB, `the disk's read buffers were kept for the next backup: ${JSON.stringify(released)}`);
      assert.equal(released.indexes, 1);
      assert.deepEqual(await releaseKeptResources(), { workers: 0, packBufferBytes: 0, readBufferBytes: 0, indexes: 0 }, 'nothing left to release');
      let next!: Awaited<ReturnType<typeof backupVMs>>;
      assert.ok(await indexReads(async () => { next = await backupVMs({}, { repository: repo, sources: [vm] }); }) >= 1, 'the index is read again');
      assert.equal(next[0]!.status, 'success', next[0]!.error?.message);
      assert.equal(next[0]!.method, 'changed-blocks');
    } finally {
      keepIdleWorkerPools(0);
      await releaseKeptResources();
    }
  });
});
