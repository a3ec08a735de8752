import assert from 'node:assert/strict';
import { createReadStream, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { exportArchive, getArchiveCatalog, restoreFromArchive } from '../../core/api/archive.ts';
import { exportPoints } from '../../core/archive/export.ts';
import { DirectoryTarget } from '../../core/archive/media-target.ts';
import { scanMediumStream } from '../../core/archive/scan.ts';
import { addTestPoint, testDisk } from '../../core/archive/testing.ts';
import { isHvError } from '../../core/errors.ts';
import { MiB, mediaFiles, newRepo, run, scratch, type Scratch } from './helpers.ts';

describe('archive media pools', function () {
  this.timeout(60_000);
  let s: Scratch;
  beforeEach(() => { s = scratch(); });
  afterEach(() => s.cleanup());

  it('encrypted repository: media carry config and keys, chunks stay encrypted, restore needs the password', async () => {
    const repo = await newRepo(s.repoPath, { password: 'tape secret' });
    const disk = testDisk(MiB, 6, 2);
    await addTestPoint(repo, { vm: 'secure01', createdAt: '2026-02-01T00:00:00.000Z', disk, format: 'raw', fileName: 'secure01.raw' });
    await repo.close();
    await exportArchive({}, { repository: s.repoPath, password: 'tape secret', pool: 'vault', mediaDir: s.mediaDir, capacity: '2M' });
    const media = mediaFiles(s.mediaDir);
    assert.ok(media.length >= 2);
    for (const f of media) {
      const list = run('tar', ['-tf', f]).stdout.split('\n');
      assert.ok(list.includes('config') && list.some((l) => l.startsWith('keys/')), `${f} lacks config or keys`);
      const readme = run('tar', ['-xOf', f, 'README.txt']).stdout;
      assert.match(readme, /ENCRYPTED/);
    }
    // Plain data must not appear on the media.
    const probe = disk.subarray(0, 64);
    for (const f of media) assert.equal(readFileSync(f).includes(probe), false, `${f} holds plain data`);
    await assert.rejects(restoreFromArchive({}, { media, vmName: 'secure01', to: join(s.dir, 'nopw') }), (e) => isHvError(e, 'ERR_AUTH'));
    await assert.rejects(restoreFromArchive({}, { media, vmName: 'secure01', to: join(s.dir, 'badpw'), password: 'wrong' }), (e) => isHvError(e, 'ERR_AUTH'));
    const r = await restoreFromArchive({}, { media, vmName: 'secure01', to: join(s.dir, 'out'), password: 'tape secret' });
    assert.ok(readFileSync(r.disks[0]!.path).equals(disk));
    // The catalog in the encrypted repository is sealed: it reads back with the password only.
    const cat = await getArchiveCatalog({}, { repository: s.repoPath, password: 'tape secret', pool: 'vault' });
    assert.deepEqual(cat.points.map((p) => p.vm), ['secure01']);
    assert.equal(readFileSync(join(s.repoPath, 'catalog', 'vault')).includes('secure01'), false);
  });

  it('expired media are reused in place and the catalog forgets what they held; protected media never', async () => {
    const repo = await newRepo(s.repoPath);
    const d1 = testDisk(MiB, 4, 1);
    const p1 = await addTestPoint(repo, { vm: 'web01', createdAt: '2026-03-01T00:00:00.000Z', disk: d1, format: 'raw' });
    const target = new DirectoryTarget(s.mediaDir);
    const t0 = new Date('2026-03-01T01:00:00Z');
    const first = await exportPoints({}, repo, target, { pool: 'monthly', capacity: 16 * MiB, retentionDays: 7, now: t0 });
    assert.deepEqual(first.media.map((m) => [m.id, m.reused]), [['monthly-0001', false]]);
    const p2 = await addTestPoint(repo, { vm: 'web01', createdAt: '2026-03-03T00:00:00.000Z', disk: testDisk(MiB, 4, 1), format: 'raw' });
    const second = await exportPoints({}, repo, target, { pool: 'monthly', point: p2.id, now: new Date('2026-03-03T01:00:00Z') });
    assert.deepEqual(second.media.map((m) => [m.id, m.reused]), [['monthly-0002', false]], 'medium 1 is still protected');
    const p3 = await addTestPoint(repo, { vm: 'web01', createdAt: '2026-03-09T00:00:00.000Z', disk: testDisk(MiB, 4, 1), format: 'raw' });
    const third = await exportPoints({}, repo, target, { pool: 'monthly', point: p3.id, now: new Date('2026-03-09T01:00:00Z') });
    assert.deepEqual(third.media.map((m) => [m.id, m.reused]), [['monthly-0001', true]], 'medium 1 expired on 03-08 and is reused');
    await repo.close();
    const cat = await getArchiveCatalog({}, { repository: s.repoPath, pool: 'monthly' });
    assert.deepEqual(cat.points.map((p) => p.id).sort(), [p2.id, p3.id].sort(), `point ${p1.id} went with its medium`);
    assert.deepEqual(mediaFiles(s.mediaDir).map((f) => f.split('/').pop()), ['monthly-0001.tar', 'monthly-0002.tar']);
    const r = await restoreFromArchive({}, { media: mediaFiles(s.mediaDir), vmName: 'web01', point: p1.id, to: join(s.dir, 'gone') }).catch((e: unknown) => e);
    assert.ok(isHvError(r, 'ERR_NOT_FOUND'), String(r));
  });

  it('never overwrites a media file the catalog does not know', async () => {
    const repo = await newRepo(s.repoPath);
    await addTestPoint(repo, { vm: 'web01', createdAt: '2026-03-01T00:00:00.000Z', disk: testDisk(MiB, 2, 1), format: 'raw' });
    await repo.close();
    await exportArchive({}, { repository: s.repoPath, pool: 'p', mediaDir: s.mediaDir, capacity: '8M' });
    writeFileSync(join(s.mediaDir, 'q-0001.tar'), 'precious');
    await assert.rejects(exportArchive({}, { repository: s.repoPath, pool: 'q', mediaDir: s.mediaDir, capacity: '8M' }), (e) => isHvError(e, 'ERR_ALREADY_EXISTS') && /q-0001\.tar/.test(e.message));
    assert.equal(readFileSync(join(s.mediaDir, 'q-0001.tar'), 'utf8'), 'precious');
    assert.equal(existsSync(join(s.mediaDir, 'q-0001.tar.partial')), false);
  });

  it('writes to a tape device as one sequential stream that reads back as a medium', async () => {
    const repo = await newRepo(s.repoPath);
    const disk = testDisk(MiB, 4, 1);
    await addTestPoint(repo, { vm: 'tape01', createdAt: '2026-03-01T00:00:00.000Z', disk, format: 'raw' });
    await repo.close();
    const device = join(s.dir, 'nst0');
    writeFileSync(device, '');
    const r = await exportArchive({}, { repository: s.repoPath, pool: 'lto', device, capacity: 'LTO-8', recordSize: '64K' });
    assert.equal(r.media.length, 1);
    assert.equal(r.media[0]!.file, undefined);
    assert.equal(statSync(device).size % (64 * 1024), 0);
    const scanned = await scanMediumStream(createReadStream(device), device);
    assert.equal(scanned.label.mediumId, 'lto-0001');
    assert.equal(scanned.label.recordSize, 64 * 1024);
    assert.equal(run('tar', ['-b', '128', '-tf', device]).status, 0);
    await assert.rejects(exportArchive({}, { repository: s.repoPath, pool: 'lto2', device: join(s.dir, 'nst9'), capacity: 'LTO-8', full: true }), (e) => isHvError(e, 'ERR_NOT_FOUND') && /nst9/.test(e.message));
  });
});
