// The hand-restore steps in docs/repository-format.md must work on a real repository.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initRepository, openRepository } from '../../core/repo/local.ts';
import { encodeObject } from '../../core/repo/object-format.ts';
import { makeManifest, segmentDisk, storeDisk } from '../../core/repo/testing.ts';
import { docBlock } from '../support/format-doc.ts';
import { setIndexMemoryRecords } from '../../core/repo/chunk-index.ts';
import { setIndexTableRecords } from '../../core/repo/index-table.ts';

const CHUNK = 64 * 1024;

describe('Repository format document', () => {
  let dir: string;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'hvb-fmtdoc-')); });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('restores a disk by hand with the documented Python (packs and a loose chunk; inline list and segments) and reads a chunk from its pack with the documented shell', async () => {
    const repoPath = join(dir, 'repo');
    await (await initRepository(repoPath, { chunkSize: CHUNK })).close();
    // Format 4 first: the disk's chunks get one-pack index objects; after the upgrade, the
    // segments a multi-pack one. The documented readers must take both kinds.
    const configFile = join(repoPath, 'config');
    writeFileSync(configFile, readFileSync(configFile, 'utf8').replace('"version": 5', '"version": 4'));
    const repo = await openRepository(repoPath, { threads: 0 });
    const loose = randomBytes(33_333);
    const head = Buffer.concat([Buffer.from('boot sector '.repeat(6000)), randomBytes(100_000)]);
    const data = Buffer.concat([head, Buffer.alloc(6 * CHUNK - head.length), loose]);
    // The last slice as archive media hold chunks: a loose chunks/<id> object, which readers still take.
    const looseId = repo.chunkId(loose);
    await repo.backend.save(undefined, { type: 'chunks', name: looseId }, encodeObject(loose));
    await repo.chunkIndex({ refresh: true });
    const disk = await storeDisk(repo, data, { key: 'scsi0-0' });
    assert.equal(disk.chunks.at(-1), looseId);
    const id = await repo.saveManifest(makeManifest({ disks: [disk] }));
    assert.equal(await repo.upgradeFormat(), true);
    // The same disk in a version-2 manifest: segments of 2 slices, one of them all zeros (null), the last one partial.
    const segmented = await segmentDisk(repo, disk, 2);
    assert.deepEqual(segmented.segments!.map((x) => x === null), [false, false, true, false]);
    const id2 = await repo.saveManifest(makeManifest({ disks: [segmented] }));
    const kinds = readdirSync(join(repoPath, 'index')).map((n) => readFileSync(join(repoPath, 'index', n)).subarray(0, 8).toString('latin1')).sort();
    assert.ok(kinds.includes('HVBPIDX1') && kinds.includes('HVBMIDX1'), `index objects of both kinds: ${kinds.join(', ')}`);
    const chunkId = disk.chunks[0]!;
    const where = await repo.locateChunk(chunkId);
    assert.equal(where.handle.type, 'packs');
    assert.equal((await repo.locateChunk(looseId)).handle.type, 'chunks');
    const blobs = new Map<string, Buffer>();
    for (const c of disk.chunks) if (c) blobs.set(c, await repo.loadStoredChunk(c));
    await repo.close();

    writeFileSync(join(dir, 'restore.py'), docBlock('Restoring a disk by hand', 'python'));
    const out = join(dir, 'disk.raw');
    const py = spawnSync('python3', [join(dir, 'restore.py'), repoPath, id, 'scsi0-0', out], { encoding: 'utf8' });
    assert.equal(py.status, 0, py.stderr);
    assert.ok(readFileSync(out).equals(data), 'restored bytes differ');
    const out2 = join(dir, 'disk2.raw');
    const py2 = spawnSync('python3', [join(dir, 'restore.py'), repoPath, id2, 'scsi0-0', out2], { encoding: 'utf8' });
    assert.equal(py2.status, 0, py2.stderr);
    assert.ok(readFileSync(out2).equals(data), 'restored bytes of the version-2 manifest differ');

    // The documented index reader finds every packed chunk's blob, byte for byte.
    const packed = [...blobs.keys()].filter((c) => c !== looseId);
    writeFileSync(join(dir, 'index.py'), `${docBlock('## Packs', 'python')}
import sys
loc = read_index(sys.argv[1])
for cid in sys.argv[2:]:
    sys.stdout.write(blob(loc, cid).hex() + '\\n')
`);
    const ix = spawnSync('python3', [join(dir, 'index.py'), repoPath, ...packed], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
    assert.equal(ix.status, 0, ix.stderr);
    assert.deepEqual(ix.stdout.trim().split('\n'), packed.map((c) => blobs.get(c)!.toString('hex')));

    const pack = where.handle.name;
    const sh = docBlock('By hand (unencrypted)', 'sh')
      .replace(/^id=.*$/m, `id=${chunkId}`)
      .replace(/^pack=.*$/m, `pack=repo/packs/${pack.slice(0, 2)}/${pack}; off=${where.offset}; len=${where.length}`);
    const r = spawnSync('sh', ['-c', sh], { cwd: dir, encoding: 'utf8', env: { ...process.env } });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^${chunkId}`));
  });
  it('looks every chunk up in an index table with the documented Python, where the engine reads it from', async () => {
    const repoPath = join(dir, 'repo');
    const repo = await initRepository(repoPath, { chunkSize: CHUNK });
    setIndexMemoryRecords(5);
    setIndexTableRecords(10);
    try {
      const ids: string[] = [];
      for (let round = 0; round < 3; round++) {
        const w = repo.chunkWriter({ packSize: 3 * CHUNK });
        for (let i = 0; i < 50; i++) {
          const d = randomBytes(CHUNK);
          ids.push(repo.chunkId(d));
          await w.submit(d);
        }
        await w.flush();
      }
      const lock = await repo.lock({ exclusive: false, operation: 'test' });
      await repo.chunkIndex({ refresh: true });
      await lock.release();
      const [table] = readdirSync(join(repoPath, 'tables'));
      assert.ok(table, 'a table was stored');
      writeFileSync(join(dir, 'lookup.py'), docBlock('Looking a chunk up in an unencrypted', 'python'));
      // A python3 start each: every 15th of 150 ids, from all three index objects.
      for (const id of ids.filter((_, i) => i % 15 === 0)) {
        const where = await repo.locateChunk(id);
        const py = spawnSync('python3', [join(dir, 'lookup.py'), repoPath, table, id], { encoding: 'utf8' });
        assert.equal(py.status, 0, py.stderr);
        assert.equal(py.stdout.trim(), `${join(repoPath, 'packs', where.handle.name.slice(0, 2), where.handle.name)} ${where.offset} ${where.length}`);
      }
      const absent = spawnSync('python3', [join(dir, 'lookup.py'), repoPath, table, randomBytes(32).toString('hex')], { encoding: 'utf8' });
      assert.notEqual(absent.status, 0);
      assert.match(absent.stderr, /not in this table/);
    } finally {
      setIndexMemoryRecords(undefined);
      setIndexTableRecords(undefined);
      await repo.close();
    }
  });
});
