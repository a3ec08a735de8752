import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, truncateSync, writeFileSync, copyFileSync, statSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import tar from 'tar-stream';
import { exportArchive, importArchive, restoreFromArchive, getArchiveCatalog } from '../../core/api/archive.ts';
import { loadCatalog } from '../../core/archive/catalog-store.ts';
import { catalogFromMedia, scanMediaFiles } from '../../core/archive/media-set.ts';
import { scanMediumFile, scanMediumStream } from '../../core/archive/scan.ts';
import { createReadStream } from 'node:fs';
import { addTestPoint, changeSlices, testDisk } from '../../core/archive/testing.ts';
import { isHvError } from '../../core/errors.ts';
import type { RestorePointManifest } from '../../core/repo/manifest-types.ts';
import { MiB, mediaFiles, newRepo, reopen, run, scratch, type Scratch } from './helpers.ts';

const CAP = '4M';

describe('archive export and media', function () {
  this.timeout(60_000);
  let s: Scratch;
  let disk: Buffer;
  let point: RestorePointManifest;
  let media: string[];
  const ctx = {};

  before(async () => {
    s = scratch();
    const repo = await newRepo(s.repoPath);
    disk = testDisk(MiB, 20, 2);
    // Segments of 8 slices: the disk's list is 3 segment chunks (8, 8 and 4 slices), which the media must carry.
    point = await addTestPoint(repo, { vm: 'web01', createdAt: '2026-01-05T10:00:00.000Z', disk, format: 'raw', fileName: 'web01.raw', configFile: { path: 'Virtual Machines/web01.json', data: Buffer.from('{"name":"web01"}') }, segmentSlices: 8 });
    assert.equal(point.disks[0]!.segments!.length, 3);
    await repo.close();
    await exportArchive(ctx, { repository: s.repoPath, pool: 'weekly', mediaDir: s.mediaDir, capacity: CAP });
    media = mediaFiles(s.mediaDir);
  });
  after(() => s.cleanup());

  it('spans 3+ media of fixed capacity in whole records, one chunk split across two media', async () => {
    assert.ok(media.length >= 3, `expected 3+ media, got ${media.length}`);
    for (const f of media) {
      const size = statSync(f).size;
      assert.ok(size <= 4 * MiB, `${f} is ${size} bytes`);
      assert.equal(size % (256 * 1024), 0, `${f} is not whole 256 KiB records`);
    }
    const scans = await Promise.all(media.map((f) => scanMediumFile(f)));
    const firstParts = scans.flatMap((sc, i) => sc.entries.filter((e) => /\.part1of2$/.test(e.name)).map((e) => ({ i, name: e.name })));
    assert.ok(firstParts.length >= 1, 'no chunk split across media');
    for (const p of firstParts) {
      const second = p.name.replace('part1of2', 'part2of2');
      assert.ok(scans[p.i + 1]!.entries.some((e) => e.name === second), `${second} is not on the next medium`);
    }
    assert.deepEqual(scans.map((sc) => sc.label.volume), scans.map((_, i) => i + 1));
  });

  it('every medium lists with tar -tvf and extracts with tar -xf (GNU tar), chunks as stored', async () => {
    // Media hold each chunk loose, exactly as the repository stores it (a blob cut out of its pack).
    const repo = await reopen(s.repoPath);
    const stored = new Map<string, Buffer>();
    for (const id of await repo.listChunkIds()) stored.set(id, await repo.loadStoredChunk(id));
    await repo.close();
    const storedChunk = (id: string) => {
      const b = stored.get(id);
      assert.ok(b, `chunk ${id} on the media is not in the repository`);
      return b;
    };
    let compared = 0;
    for (const f of media) {
      const list = run('tar', ['-tvf', f]);
      assert.equal(list.status, 0, list.stderr);
      assert.match(list.stdout, /HVBACKUP-LABEL\.json/);
      assert.match(list.stdout, /README\.txt/);
      assert.match(list.stdout, /HVBACKUP-END\.json/);
      const out = join(s.dir, 'x', statSync(f).ino.toString());
      mkdirSync(out, { recursive: true });
      const x = run('tar', ['-xf', f, '-C', out]);
      assert.equal(x.status, 0, x.stderr);
      assert.ok(readFileSync(join(out, 'README.txt'), 'utf8').includes('tar -xf'));
      assert.ok(existsSync(join(out, 'config')));
      for (const name of readdirSync(join(out, 'chunks')).filter((n) => !n.includes('.part'))) {
        assert.ok(readFileSync(join(out, 'chunks', name)).equals(storedChunk(name)), `chunk ${name} differs from the repository's`);
        compared++;
      }
    }
    // Split chunks joined by hand equal the stored object.
    const outs = readdirSync(join(s.dir, 'x')).map((d) => join(s.dir, 'x', d, 'chunks'));
    const parts = outs.flatMap((d) => readdirSync(d).filter((n) => n.endsWith('.part1of2')).map((n) => ({ d, n })));
    for (const { d, n } of parts) {
      const id = n.slice(0, 64);
      const second = outs.find((o) => existsSync(join(o, `${id}.part2of2`)))!;
      const joined = Buffer.concat([readFileSync(join(d, n)), readFileSync(join(second, `${id}.part2of2`))]);
      assert.ok(joined.equals(storedChunk(id)), `split chunk ${id} differs from the repository's`);
      compared++;
    }
    assert.equal(compared, stored.size, 'every stored chunk is on the media once');
  });

  it('README.txt on the media restores the disk by hand with tar, sh, python3 and zstd alone', async () => {
    const out = join(s.dir, 'by-hand');
    mkdirSync(out);
    for (const f of media) assert.equal(run('tar', ['-xf', f, '-C', out]).status, 0);
    const readme = readFileSync(join(out, 'README.txt'), 'utf8');
    const join2 = readme.split('\n').filter((l) => /Join split chunks:|^\s+for i in/.test(l)).map((l) => l.replace(/^.*Join split chunks:\s*/, '').trim()).join('\n');
    const sh = run('sh', ['-c', join2.replace(/\\\n/g, ' ')], out);
    assert.equal(sh.status, 0, sh.stderr);
    const lines = readme.split('\n');
    const py = lines.slice(lines.findIndex((l) => l.includes('import json')), lines.findLastIndex((l) => l.includes('out.write(')) + 1).map((l) => l.slice(7)).join('\n');
    writeFileSync(join(out, 'restore.py'), py);
    const r = run('python3', ['restore.py', `manifests/${point.id}`], out);
    assert.equal(r.status, 0, r.stderr);
    assert.ok(readFileSync(join(out, 'web01.raw.raw')).equals(disk), 'hand-restored disk differs');
  });

  it('restores byte-identical disks and config files from the media alone', async () => {
    const logs: string[] = [];
    const to = join(s.dir, 'restored');
    const r = await restoreFromArchive({ onLog: (e) => logs.push(e.message) }, { media, vmName: 'web01', to });
    assert.equal(r.pointId, point.id);
    assert.ok(readFileSync(join(to, 'web01.raw')).equals(disk));
    assert.equal(readFileSync(join(to, 'config', 'Virtual Machines', 'web01.json'), 'utf8'), '{"name":"web01"}');
    assert.deepEqual(r.mediaNeeded, media.map((f) => f.split('/').pop()!.replace('.tar', '')));
    assert.ok(logs.some((l) => /insert medium weekly-0001/.test(l)));
  });

  it('rebuilds the catalog from the media alone, equal to the one the export stored', async () => {
    const repo = await reopen(s.repoPath);
    const stored = await loadCatalog(repo, 'weekly');
    await repo.close();
    const rebuilt = catalogFromMedia(await scanMediaFiles(ctx, media));
    assert.deepEqual(rebuilt, stored);
    const summary = await importArchive(ctx, { media });
    assert.deepEqual(summary, await getArchiveCatalog(ctx, { repository: s.repoPath, pool: 'weekly' }));
    assert.deepEqual(summary.points.map((p) => p.id), [point.id]);
    // A lost catalog is rebuilt into the repository from the media.
    const r2 = await reopen(s.repoPath);
    await r2.backend.remove(undefined, { type: 'catalog', name: 'weekly' });
    await r2.close();
    await assert.rejects(getArchiveCatalog(ctx, { repository: s.repoPath, pool: 'weekly' }), (e) => isHvError(e, 'ERR_NOT_FOUND'));
    await importArchive(ctx, { media, repository: s.repoPath });
    const r3 = await reopen(s.repoPath);
    assert.deepEqual(await loadCatalog(r3, 'weekly'), stored);
    await r3.close();
  });

  it('a truncated medium is an error naming the medium, never a short success', async () => {
    for (const cut of ['mid-entry', 'entry boundary'] as const) {
      const bad = join(s.dir, `truncated-${cut.replace(' ', '-')}.tar`);
      copyFileSync(media[1]!, bad);
      const sc = await scanMediumFile(media[1]!);
      const chunk = sc.entries.find((e) => e.name.startsWith('chunks/'))!;
      truncateSync(bad, cut === 'mid-entry' ? chunk.offset + 1000 : chunk.offset + Math.ceil(chunk.length / 512) * 512);
      const named = (e: unknown) => isHvError(e, 'ERR_CORRUPT') && e.message.includes(bad.split('/').pop()!) && /truncated/.test(e.message);
      await assert.rejects(scanMediumFile(bad), named, `file walk, ${cut}`);
      await assert.rejects(scanMediumStream(createReadStream(bad), bad), named, `stream, ${cut}`);
      await assert.rejects(restoreFromArchive(ctx, { media: [media[0]!, bad, media[2]!], vmName: 'web01', to: join(s.dir, `t-${cut}`) }), (e) => isHvError(e, 'ERR_CORRUPT'));
      assert.equal(existsSync(join(s.dir, `t-${cut}`)), false);
    }
  });

  it('walking a media file by position and streaming it (tape) find the same entries; a bad header checksum is refused', async () => {
    for (const f of media) {
      const walked = await scanMediumFile(f);
      const streamed = await scanMediumStream(createReadStream(f), f);
      assert.deepEqual(walked, streamed);
    }
    const bad = join(s.dir, 'bad-header.tar');
    const buf = readFileSync(media[0]!);
    const second = (await scanMediumFile(media[0]!)).entries[1]!.offset - 512;
    buf[second + 5] ^= 0x20;
    writeFileSync(bad, buf);
    await assert.rejects(scanMediumFile(bad), (e) => isHvError(e, 'ERR_CORRUPT') && /bad-header\.tar/.test(e.message) && /checksum/.test(e.message));
    await assert.rejects(scanMediumStream(createReadStream(bad), bad), (e) => isHvError(e, 'ERR_CORRUPT') && /bad-header\.tar/.test(e.message));
  });

  it('media given out of order are refused, naming the medium and the volumes', async () => {
    await assert.rejects(restoreFromArchive(ctx, { media: [media[1]!, media[0]!, ...media.slice(2)], vmName: 'web01', to: join(s.dir, 'r2') }),
      (e) => isHvError(e, 'ERR_INVALID_ARGUMENT') && /weekly-0001\.tar/.test(e.message) && /volume 1/.test(e.message) && /after volume 2/.test(e.message));
  });

  it('refuses a hand-made tar whose entry names escape the destination, writing nothing', async () => {
    const label = (await scanMediumFile(media[0]!)).label;
    for (const evil of ['../escaped.txt', '/tmp/hvb-absolute-escape.txt', 'C:/escape.txt', 'chunks\\..\\..\\escape.txt']) {
      const pack = tar.pack();
      pack.entry({ name: 'HVBACKUP-LABEL.json' }, JSON.stringify(label));
      pack.entry({ name: evil }, 'owned');
      pack.finalize();
      const chunks: Buffer[] = [];
      for await (const c of pack) chunks.push(c as Buffer);
      const file = join(s.dir, 'evil.tar');
      writeFileSync(file, Buffer.concat(chunks));
      const to = join(s.dir, 'evil-out');
      await assert.rejects(restoreFromArchive(ctx, { media: [file], vmName: 'web01', to }), (e) => isHvError(e, 'ERR_CORRUPT') && /evil\.tar/.test(e.message) && /escape/.test(e.message), evil);
      await assert.rejects(importArchive(ctx, { media: [file] }), /escape/);
      await assert.rejects(scanMediumStream(createReadStream(file), file), /escape/);
      assert.equal(existsSync(to), false);
      assert.equal(existsSync(join(s.dir, 'escaped.txt')), false);
      assert.equal(existsSync('/tmp/hvb-absolute-escape.txt'), false);
    }
    // A long escaping name travels in a pax extended header: refused both ways too.
    const pack = tar.pack();
    pack.entry({ name: 'HVBACKUP-LABEL.json' }, JSON.stringify(label));
    pack.entry({ name: `../${'a'.repeat(120)}` }, 'owned');
    pack.finalize();
    const parts: Buffer[] = [];
    for await (const c of pack) parts.push(c as Buffer);
    const paxFile = join(s.dir, 'pax-evil.tar');
    writeFileSync(paxFile, Buffer.concat(parts));
    await assert.rejects(scanMediumFile(paxFile), (e) => isHvError(e, 'ERR_CORRUPT') && /pax-evil\.tar/.test(e.message));
    await assert.rejects(scanMediumStream(createReadStream(paxFile), paxFile), (e) => isHvError(e, 'ERR_CORRUPT') && /escape/.test(e.message));
    assert.equal(existsSync(join(s.dir, 'a'.repeat(120))), false);
  });

  it('exports a later point incrementally: only chunks the pool lacks; --full writes them all', async () => {
    const repoPath = join(s.dir, 'repo2');
    const repo = await newRepo(repoPath);
    const d1 = testDisk(MiB, 8, 1);
    const p1 = await addTestPoint(repo, { vm: 'db01', createdAt: '2026-01-01T00:00:00.000Z', disk: d1, format: 'raw', fileName: 'db01.raw' });
    const d2 = changeSlices(d1, MiB, [2, 5]);
    const p2 = await addTestPoint(repo, { vm: 'db01', createdAt: '2026-01-02T00:00:00.000Z', disk: d2, format: 'raw', fileName: 'db01.raw' });
    const dir = join(s.dir, 'media2');
    const first = await exportArchive(ctx, { repository: repoPath, pool: 'daily', mediaDir: dir, capacity: '64M', point: p1.id });
    assert.equal(first.chunksWritten, 8);
    const second = await exportArchive(ctx, { repository: repoPath, pool: 'daily', mediaDir: dir, vmName: 'db01' });
    assert.deepEqual(second.points.map((p) => p.id), [p2.id], 'only the point not yet in the pool');
    assert.equal(second.chunksWritten, 2);
    assert.equal(second.chunksAlreadyInPool, 6);
    const d3 = changeSlices(d2, MiB, [7]);
    const p3 = await addTestPoint(repo, { vm: 'db01', createdAt: '2026-01-03T00:00:00.000Z', disk: d3, format: 'raw', fileName: 'db01.raw' });
    await repo.close();
    const full = await exportArchive(ctx, { repository: repoPath, pool: 'daily', mediaDir: dir, point: p3.id, full: true });
    assert.equal(full.chunksWritten, 8);
    const files = mediaFiles(dir);
    assert.equal(files.length, 3);
    const r2 = await restoreFromArchive(ctx, { media: files, vmName: 'db01', point: p2.id.slice(0, 12), to: join(s.dir, 'r-p2') });
    assert.ok(readFileSync(r2.disks[0]!.path).equals(d2));
    assert.deepEqual(r2.mediaNeeded, ['daily-0001', 'daily-0002']);
    const r3 = await restoreFromArchive(ctx, { media: [files[2]!], vmName: 'db01', to: join(s.dir, 'r-p3') });
    assert.equal(r3.pointId, p3.id, 'a full set restores from its own media');
    assert.ok(readFileSync(r3.disks[0]!.path).equals(d3));
  });

  it('restores a VHDX disk from media alone: valid (qemu-img check) and identical (qemu-img compare)', async () => {
    const repoPath = join(s.dir, 'repo-vhdx');
    const repo = await newRepo(repoPath);
    const raw = testDisk(MiB, 24, 3);
    await addTestPoint(repo, { vm: 'app01', createdAt: '2026-01-09T00:00:00.000Z', disk: raw, format: 'vhdx', fileName: 'app01.vhdx' });
    await repo.close();
    const dir = join(s.dir, 'media-vhdx');
    await exportArchive(ctx, { repository: repoPath, pool: 'vhdx', mediaDir: dir, capacity: '4M' });
    const to = join(s.dir, 'r-vhdx');
    const r = await restoreFromArchive(ctx, { media: mediaFiles(dir), vmName: 'app01', to });
    const vhdx = r.disks[0]!.path;
    assert.equal(vhdx, join(to, 'app01.vhdx'));
    const check = run('qemu-img', ['check', '-f', 'vhdx', vhdx]);
    assert.equal(check.status, 0, check.stdout + check.stderr);
    const rawFile = join(s.dir, 'app01.raw');
    writeFileSync(rawFile, raw);
    const cmp = run('qemu-img', ['compare', '-f', 'vhdx', '-F', 'raw', vhdx, rawFile]);
    assert.equal(cmp.status, 0, cmp.stdout + cmp.stderr);
    assert.equal(existsSync(`${vhdx}.partial`), false);
  });
});
