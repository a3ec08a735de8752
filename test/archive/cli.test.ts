import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { addTestPoint, testDisk } from '../../core/archive/testing.ts';
import { MiB, mediaFiles, newRepo, run, scratch, type Scratch } from './helpers.ts';

const CLI = join(import.meta.dirname, '..', '..', 'core', 'cli', 'main.ts');
const hvbackup = (...args: string[]) => run(process.execPath, [CLI, ...args]);

describe('archive and retention CLI', function () {
  this.timeout(90_000);
  let s: Scratch;
  before(() => { s = scratch('hvb-archive-cli-'); });
  after(() => s.cleanup());

  it('archive export, catalog --media, restore; retention apply --dry-run; gc', async () => {
    const repo = await newRepo(s.repoPath);
    const disk = testDisk(MiB, 6, 2);
    const old = await addTestPoint(repo, { vm: 'web01', createdAt: '2026-01-01T00:00:00.000Z', disk: testDisk(MiB, 6, 2), format: 'raw', fileName: 'web01.raw' });
    await addTestPoint(repo, { vm: 'web01', createdAt: '2026-01-02T00:00:00.000Z', disk, format: 'raw', fileName: 'web01.raw' });
    await repo.close();

    const exp = hvbackup('archive', 'export', '--repo', s.repoPath, '--pool', 'weekly', '--point', 'latest', '--media-dir', s.mediaDir, '--capacity', '2M', '--json');
    assert.equal(exp.status, 0, exp.stderr);
    const r = JSON.parse(exp.stdout) as { media: unknown[]; chunksWritten: number };
    assert.equal(r.chunksWritten, 3);
    assert.ok(r.media.length >= 2);

    const cat = hvbackup('archive', 'catalog', '--media', ...mediaFiles(s.mediaDir), '--json');
    assert.equal(cat.status, 0, cat.stderr);
    assert.equal((JSON.parse(cat.stdout) as { points: unknown[] }).points.length, 1);
    const shown = hvbackup('archive', 'catalog', '--repo', s.repoPath, '--pool', 'weekly');
    assert.equal(shown.status, 0, shown.stderr);
    assert.match(shown.stdout, /pool weekly: \d+ media, 1 restore points/);

    const to = join(s.dir, 'out');
    const rest = hvbackup('archive', 'restore', '--media', ...mediaFiles(s.mediaDir), '--vm', 'web01', '--to', to);
    assert.equal(rest.status, 0, rest.stderr);
    assert.match(rest.stderr, /insert medium weekly-0001/);
    assert.ok(readFileSync(join(to, 'web01.raw')).equals(disk));

    const bad = hvbackup('archive', 'restore', '--media', ...mediaFiles(s.mediaDir).reverse(), '--vm', 'web01', '--to', join(s.dir, 'o2'));
    assert.equal(bad.status, 2, 'media out of order is a usage error');
    assert.match(bad.stderr, /give the media in order/);

    const plan = hvbackup('retention', 'apply', '--repo', s.repoPath, '--keep-last', '1', '--dry-run');
    assert.equal(plan.status, 0, plan.stderr);
    assert.match(plan.stdout, new RegExp(`remove\\s+web01\\s+2026-01-01T00:00:00.000Z\\s+${old.id.slice(0, 12)}\\s+not kept by any rule`));
    assert.match(plan.stdout, /would remove 1, kept 1/);
    const applied = hvbackup('retention', 'apply', '--repo', s.repoPath, '--keep-last', '1', '--json');
    assert.equal(applied.status, 0, applied.stderr);
    assert.equal((JSON.parse(applied.stdout) as { removed: number }).removed, 1);
    const gc = hvbackup('gc', '--repo', s.repoPath);
    assert.equal(gc.status, 0, gc.stderr);
    assert.match(gc.stdout, /freed 3 of 6 chunks/);
  });
});
