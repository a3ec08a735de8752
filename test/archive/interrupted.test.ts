import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { exportArchive, restoreFromArchive } from '../../core/api/archive.ts';
import { loadCatalog } from '../../core/archive/catalog-store.ts';
import { publishSealedMedia } from '../../core/archive/media-recovery.ts';
import { catalogFromMedia, scanMediaFiles } from '../../core/archive/media-set.ts';
import { addTestPoint, testDisk } from '../../core/archive/testing.ts';
import { MiB, mediaFiles, newRepo, reopen, scratch, type Scratch } from './helpers.ts';

const CHILD = join(import.meta.dirname, 'export-child.ts');

/** Kills the export `delayMs` after it starts writing its `nth` medium (or at once when nth is 0). */
function exportAndKill(repo: string, media: string, nth: number, delayMs: number): Promise<'killed' | 'finished'> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD, repo, media], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let timer: NodeJS.Timeout | undefined;
    child.stdout.on('data', (b: Buffer) => {
      out += b.toString();
      if (!timer && (out.match(/writing medium/g) ?? []).length >= nth) timer = setTimeout(() => child.kill('SIGKILL'), delayMs);
    });
    child.stderr.on('data', (b: Buffer) => { err += b.toString(); });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (signal === 'SIGKILL') resolve('killed');
      else if (code === 0) resolve('finished');
      else reject(new Error(`export child failed (${code}): ${err}`));
    });
  });
}

describe('archive export interrupted', function () {
  this.timeout(90_000);
  let s: Scratch;
  beforeEach(() => { s = scratch('hvb-archive-kill-'); });
  afterEach(() => s.cleanup());

  it('a killed export leaves a catalog that matches its media; the next export completes the pool', async () => {
    const repo = await newRepo(s.repoPath);
    const disk = testDisk(MiB, 24, 1);
    const p = await addTestPoint(repo, { vm: 'big01', createdAt: '2026-04-01T00:00:00.000Z', disk, format: 'raw', fileName: 'big01.raw' });
    await repo.close();
    let killedMidway = 0;
    for (const [nth, delay] of [[0, 0], [2, 0], [3, 7], [4, 1], [5, 3]] as const) {
      const outcome = await exportAndKill(s.repoPath, s.mediaDir, nth, delay);
      const r = await reopen(s.repoPath);
      const cat = await loadCatalog(r, 'crash');
      await r.close();
      if (outcome === 'finished') break;
      if (!cat) continue;
      // What the next export does first: publish media the catalog names but the kill left as .partial.
      await publishSealedMedia({}, s.mediaDir, cat);
      // Every medium the catalog names exists and reads back as the catalog says.
      const files = cat.media.map((m) => join(s.mediaDir, m.file!));
      for (const f of files) assert.ok(existsSync(f), `${basename(f)} is in the catalog but not on disk`);
      const rebuilt = catalogFromMedia(await scanMediaFiles({}, files));
      assert.deepEqual(rebuilt.media, cat.media);
      assert.deepEqual(cat.points, [], 'no point is listed before its set is complete');
      if (cat.media.length > 0) killedMidway++;
    }
    const done = await exportArchive({}, { repository: s.repoPath, pool: 'crash', mediaDir: s.mediaDir, capacity: '2M' });
    assert.deepEqual([...done.points.map((x) => x.id), ...done.skippedPoints], [p.id], 'exported now, or by a child that finished');
    const media = mediaFiles(s.mediaDir);
    const r = await restoreFromArchive({}, { media, vmName: 'big01', to: join(s.dir, 'out') });
    assert.ok(readFileSync(r.disks[0]!.path).equals(disk));
    const repo2 = await reopen(s.repoPath);
    assert.deepEqual(catalogFromMedia(await scanMediaFiles({}, media)), await loadCatalog(repo2, 'crash'));
    await repo2.close();
    assert.ok(killedMidway >= 1, 'no kill landed after a medium was finished');
  });

  it('a medium the catalog names but a crash left as .partial is published by the next export; a foreign file is not', async () => {
    const repo = await newRepo(s.repoPath);
    await addTestPoint(repo, { vm: 'a', createdAt: '2026-04-01T00:00:00.000Z', disk: testDisk(MiB, 3, 1), format: 'raw' });
    await repo.close();
    await exportArchive({}, { repository: s.repoPath, pool: 'crash', mediaDir: s.mediaDir, capacity: '2M' });
    const files = mediaFiles(s.mediaDir);
    const last = files.at(-1)!;
    renameSync(last, `${last}.partial`); // the kill came after the catalog save, before the rename
    writeFileSync(join(s.mediaDir, 'crash-0099.tar.partial'), 'an unfinished medium the catalog never named');
    const repo2 = await reopen(s.repoPath);
    await addTestPoint(repo2, { vm: 'a', createdAt: '2026-04-02T00:00:00.000Z', disk: testDisk(MiB, 3, 1), format: 'raw' });
    await repo2.close();
    const logs: string[] = [];
    const r = await exportArchive({ onLog: (e) => logs.push(e.message) }, { repository: s.repoPath, pool: 'crash', mediaDir: s.mediaDir });
    assert.equal(r.points.length, 1);
    assert.ok(existsSync(last) && !existsSync(`${last}.partial`), 'the sealed medium was published');
    assert.ok(logs.some((l) => l.includes('interrupted export')));
    assert.equal(readFileSync(join(s.mediaDir, 'crash-0099.tar.partial'), 'utf8'), 'an unfinished medium the catalog never named');
    const media = mediaFiles(s.mediaDir);
    const repo3 = await reopen(s.repoPath);
    assert.deepEqual(catalogFromMedia(await scanMediaFiles({}, media)), await loadCatalog(repo3, 'crash'));
    await repo3.close();
  });
});
