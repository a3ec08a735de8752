import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applyRetention, collectGarbage } from '../../core/api/retention.ts';
import { addTestPoint, testDisk } from '../../core/archive/testing.ts';
import { namedChunks } from '../../core/repo/manifest.ts';
import { addPointChunks } from '../../core/repo/manifest-chunks.ts';
import { initRepository, openRepository } from '../../core/repo/local.ts';
import type { Repository } from '../../core/repo/repository.ts';
import { isHvError } from '../../core/errors.ts';
import { prng } from '../../core/hosts/local/content.ts';

const CHUNK = 64 * 1024;
const NODE = process.execPath;
const CHILD = join(import.meta.dirname, 'gc-child.ts');

/** Every chunk every manifest references loads and verifies; returns how many chunks the repository holds. */
async function verifyAll(path: string): Promise<{ referenced: Set<string>; stored: number }> {
  const repo = await openRepository(path, { threads: 0 });
  try {
    const referenced = new Set<string>();
    for (const m of await repo.listManifests()) await addPointChunks(repo, m, referenced);
    for (const id of referenced) await repo.loadChunk(id, { verify: true });
    return { referenced, stored: (await repo.listChunkIds()).length };
  } finally {
    await repo.close();
  }
}

function runGcAndKill(path: string, delayMs: number): Promise<'killed' | 'finished'> {
  return new Promise((resolve, reject) => {
    const child = spawn(NODE, [CHILD, path], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let timer: NodeJS.Timeout | undefined;
    child.stdout.on('data', (b: Buffer) => {
      out += b.toString();
      if (!timer && out.includes('ready')) timer = setTimeout(() => child.kill('SIGKILL'), delayMs);
    });
    child.stderr.on('data', (b: Buffer) => { err += b.toString(); });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (signal === 'SIGKILL') resolve('killed');
      else if (code === 0) resolve('finished');
      else reject(new Error(`gc child failed (${code}): ${err}`));
    });
  });
}

describe('retention apply and gc', function () {
  this.timeout(90_000);
  let dir: string;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'hvb-retention-')); });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  async function repoWithDailyPoints(path: string, days: string[], slices = 4): Promise<Repository> {
    const repo = await initRepository(path, { chunkSize: CHUNK });
    for (const day of days) await addTestPoint(repo, { vm: 'web01', createdAt: `${day}T06:00:00.000Z`, disk: testDisk(CHUNK, slices, 1), format: 'raw' });
    return repo;
  }

  it('applies keep-last + daily: dry run changes nothing, apply removes manifests, prune frees their chunks', async () => {
    const path = join(dir, 'repo');
    const days = ['2026-01-01', '2026-01-02', '2026-01-03', '2026-01-04', '2026-01-05'];
    await (await repoWithDailyPoints(path, days)).close();
    const plan = await applyRetention({}, { repository: path, keepLast: 1, daily: 2, whatIf: true, prune: true });
    assert.equal(plan.status, 'planned');
    assert.deepEqual(plan.points.filter((p) => p.action === 'keep').map((p) => p.createdAt.slice(0, 10)), ['2026-01-05', '2026-01-04']);
    assert.equal(plan.gc!.chunksRemoved, 12);
    assert.equal((await verifyAll(path)).stored, 20, 'dry run deleted nothing');
    const r = await applyRetention({}, { repository: path, keepLast: 1, daily: 2, prune: true });
    assert.equal(r.removed, 3);
    assert.deepEqual(r.points.find((p) => p.createdAt.startsWith('2026-01-05'))!.reasons, ['last', 'daily 2026-01-05']);
    assert.deepEqual(r.points.find((p) => p.createdAt.startsWith('2026-01-01'))!.reasons, ['not kept by any rule']);
    assert.equal(r.gc!.chunksRemoved, 12);
    assert.equal(r.gc!.bytesFreed > 12 * CHUNK, true);
    const after = await verifyAll(path);
    assert.equal(after.stored, 8);
    assert.equal(after.referenced.size, 8);
    await assert.rejects(applyRetention({}, { repository: path }), (e) => isHvError(e, 'ERR_INVALID_ARGUMENT'));
  });

  it('gc refuses to delete anything when a manifest does not load', async () => {
    const path = join(dir, 'repo');
    const repo = await repoWithDailyPoints(path, ['2026-01-01']);
    await repo.backend.save(undefined, { type: 'manifests', name: 'ff'.repeat(32) }, Buffer.from('not a manifest'));
    await repo.backend.save(undefined, { type: 'chunks', name: 'ee'.repeat(32) }, Buffer.from('orphan'));
    await repo.close();
    await assert.rejects(collectGarbage({}, { repository: path }), (e) => isHvError(e, 'ERR_CORRUPT') && /nothing deleted/.test(e.message) && e.message.includes('ff'.repeat(32)));
    const r2 = await openRepository(path, { threads: 0 });
    assert.equal((await r2.listChunkIds()).length, 5);
    await r2.close();
  });

  it('gc killed at random moments never breaks the repository; a later gc finishes the job', async () => {
    const path = join(dir, 'repo');
    const repo = await initRepository(path, { chunkSize: CHUNK });
    const keep = await addTestPoint(repo, { vm: 'keep', createdAt: '2026-01-02T00:00:00.000Z', disk: testDisk(CHUNK, 24, 1), format: 'raw' });
    const gone = await addTestPoint(repo, { vm: 'gone', createdAt: '2026-01-01T00:00:00.000Z', disk: testDisk(CHUNK, 200, 1), format: 'raw' });
    await repo.removeRestorePoints([gone.id]);
    await repo.close();
    const kept = namedChunks(keep); // version 1 (inline lists): every chunk it needs
    let stored = (await verifyAll(path)).stored;
    assert.equal(stored, 224);
    const rand = prng(20260126);
    let midway = 0;
    for (let seed = 0; seed < 5; seed++) {
      const outcome = await runGcAndKill(path, Math.floor(rand() * 500));
      const v = await verifyAll(path);
      assert.deepEqual(v.referenced, kept);
      assert.ok(v.stored >= kept.size && v.stored <= stored, `seed ${seed}: ${v.stored} chunks`);
      if (outcome === 'killed' && v.stored > kept.size && v.stored < 224) midway++;
      stored = v.stored;
    }
    assert.ok(midway >= 1, 'no kill landed while gc was deleting');
    const done = await collectGarbage({}, { repository: path });
    assert.equal(done.chunksTotal - done.chunksRemoved, kept.size);
    assert.equal((await verifyAll(path)).stored, kept.size);
    // The index ends as one consolidated object (the kills left older ones, or packs no object listed).
    assert.equal(readdirSync(join(path, 'index')).length, 1);
  });

  it('gc takes the exclusive lock: a live shared lock (a backup running) makes it fail with ERR_LOCKED', async () => {
    const path = join(dir, 'repo');
    const repo = await repoWithDailyPoints(path, ['2026-01-01']);
    const lock = await repo.lock({ exclusive: false, operation: 'backup' });
    try {
      await assert.rejects(collectGarbage({}, { repository: path }), (e) => isHvError(e, 'ERR_LOCKED'));
    } finally {
      await lock.release();
      await repo.close();
    }
  });
});
