import assert from 'node:assert/strict';
import { watchArchive } from '../../core/api/archive.ts';
import { loadCatalog } from '../../core/archive/catalog-store.ts';
import { shouldExport } from '../../core/archive/watch.ts';
import { addTestPoint, testDisk } from '../../core/archive/testing.ts';
import type { LogEvent } from '../../core/progress.ts';
import { MiB, mediaFiles, newRepo, reopen, scratch, type Scratch } from './helpers.ts';

async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('archive watch (linked archive)', function () {
  this.timeout(60_000);
  let s: Scratch;
  beforeEach(() => { s = scratch(); });
  afterEach(() => s.cleanup());

  it('decides from the catalog and the watch start time', () => {
    const state = { pool: 'p', since: '2026-01-02T00:00:00.000Z' };
    assert.equal(shouldExport({ id: 'a', vm: 'web', finishedAt: '2026-01-02T00:00:01.000Z' }, state, new Set()), true);
    assert.equal(shouldExport({ id: 'a', vm: 'web', finishedAt: '2026-01-02T00:00:01.000Z' }, state, new Set(['a'])), false);
    assert.equal(shouldExport({ id: 'b', vm: 'web', finishedAt: '2026-01-01T00:00:00.000Z' }, state, new Set()), false);
    assert.equal(shouldExport({ id: 'c', vm: 'web', finishedAt: '2026-01-03T00:00:00.000Z' }, state, new Set(), 'db'), false);
  });

  it('exports a new point as it lands, and after a restart exports only what landed meanwhile', async () => {
    const repo = await newRepo(s.repoPath);
    const old = await addTestPoint(repo, { vm: 'web01', createdAt: '2025-12-01T00:00:00.000Z', disk: testDisk(MiB, 2, 1), format: 'raw' });
    const logs: LogEvent[] = [];
    const start = () => {
      const abort = new AbortController();
      const done = watchArchive({ signal: abort.signal, onLog: (e) => logs.push(e) }, { repository: s.repoPath, pool: 'linked', mediaDir: s.mediaDir, capacity: '16M' });
      return { abort, done };
    };
    const exportedIds = async () => {
      const r = await reopen(s.repoPath);
      try { return (await loadCatalog(r, 'linked'))?.points.map((p) => p.id) ?? []; } finally { await r.close(); }
    };

    let w = start();
    await until('the watcher to start', () => logs.some((l) => /watching/.test(l.message)));
    await new Promise((r) => setTimeout(r, 300));
    const now = () => new Date().toISOString();
    const p1 = await addTestPoint(repo, { vm: 'web01', createdAt: now(), disk: testDisk(MiB, 3, 1), format: 'raw' });
    await until('p1 exported', async () => (await exportedIds()).includes(p1.id));
    w.abort.abort();
    const first = await w.done;
    assert.deepEqual(first.exported, [p1.id]);
    assert.equal((await exportedIds()).includes(old.id), false, 'history before the first start is not exported');

    // While the watcher is down, another point lands.
    const p2 = await addTestPoint(repo, { vm: 'web01', createdAt: now(), disk: testDisk(MiB, 3, 1), format: 'raw' });
    const mediaBefore = mediaFiles(s.mediaDir).length;
    w = start();
    await until('p2 exported after restart', async () => (await exportedIds()).includes(p2.id));
    await new Promise((r) => setTimeout(r, 500));
    w.abort.abort();
    const second = await w.done;
    assert.deepEqual(second.exported, [p2.id], 'p1 is not exported twice');
    assert.equal(second.failed.length, 0);
    assert.equal(mediaFiles(s.mediaDir).length, mediaBefore + 1);
    await repo.close();
  });

  it('picks up the first restore point of a new repository (manifests/ created after the watch started)', async () => {
    const repo = await newRepo(s.repoPath);
    const logs: LogEvent[] = [];
    const abort = new AbortController();
    const done = watchArchive({ signal: abort.signal, onLog: (e) => logs.push(e) }, { repository: s.repoPath, pool: 'linked', mediaDir: s.mediaDir, capacity: '16M' });
    await until('the watcher to start', () => logs.some((l) => /watching/.test(l.message)));
    await new Promise((r) => setTimeout(r, 300));
    const p1 = await addTestPoint(repo, { vm: 'web01', createdAt: new Date().toISOString(), disk: testDisk(MiB, 2, 1), format: 'raw' });
    await until('p1 exported', () => logs.some((l) => l.message.includes(`exported restore point ${p1.id}`)));
    abort.abort();
    assert.deepEqual((await done).exported, [p1.id]);
    await repo.close();
  });
});
