// Index objects of format 5 (core/repo/pack-format.ts, pack-writer.ts, chunk-index.ts,
// prune.ts): one HVBMIDX1 object lists many packs; one-pack HVBPIDX1 objects of older
// repositories still load, and GC consolidates them; a handle's index is refreshed with only
// what is new, and rebuilt once something it read is gone.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { backupVMs } from '../../core/api/backup.ts';
import { restoreVM } from '../../core/api/restore.ts';
import { collectGarbage } from '../../core/api/retention.ts';
import { verifyRepository } from '../../core/api/verify.ts';
import { createSampleVM, guestWriteVM } from '../../core/api/vm.ts';
import { isHvError } from '../../core/errors.ts';
import { initRepository, openRepository } from '../../core/repo/local.ts';
import { addPointChunks } from '../../core/repo/manifest-chunks.ts';
import { decodeIndexObject, decodePackIndex, decodePackTrailer, encodeIndexObject, encodePackIndex, PACK_TRAILER_SIZE, type PackEntry } from '../../core/repo/pack-format.ts';
import { INDEX_PACKS } from '../../core/repo/pack-writer.ts';
import { pruneChunks, pruneLimits } from '../../core/repo/prune.ts';
import type { Repository } from '../../core/repo/repository.ts';
import { pruneUnreferenced } from '../support/prune.ts';
import { makeManifest, storeDisk } from '../../core/repo/testing.ts';
import { qemuImg } from '../backup/testing.ts';

const CHUNK = 64 * 1024;
const MiB = 1024 * 1024;

function hex(seed: string): string {
  return createHash('sha256').update(seed).digest('hex');
}

function entriesFor(seed: string, n: number): PackEntry[] {
  return Array.from({ length: n }, (_, i) => ({ id: hex(`${seed}/${i}`), offset: i * 100, length: 100, plainLength: 4096 + i }));
}

function corrupt(what: string, re: RegExp) {
  return (e: unknown) => isHvError(e, 'ERR_CORRUPT') && e.message.includes(what) && re.test(e.message);
}

function indexFiles(path: string): { name: string; kind: string }[] {
  if (!existsSync(join(path, 'index'))) return [];
  return readdirSync(join(path, 'index')).sort().map((name) => ({ name, kind: readFileSync(join(path, 'index', name)).subarray(0, 8).toString('latin1') }));
}

function packNames(path: string): string[] {
  return readdirSync(join(path, 'packs'), { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => e.name).sort();
}

/** Pack name → how many index objects list it (unencrypted repository). */
function listings(path: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const { name } of indexFiles(path)) {
    for (const p of decodeIndexObject(readFileSync(join(path, 'index', name)), name, name).each()) out.set(p.name, (out.get(p.name) ?? 0) + 1);
  }
  return out;
}

/**
 * Turn a repository's index into what HVBackup of format 4 left: one HVBPIDX1 object per
 * pack, named after it, with the bytes of the pack's trailer; config version 4.
 */
function toFormat4(path: string): void {
  for (const { name } of indexFiles(path)) rmSync(join(path, 'index', name));
  for (const name of packNames(path)) {
    const pack = readFileSync(join(path, 'packs', name.slice(0, 2), name));
    const at = decodePackTrailer(pack.subarray(pack.length - PACK_TRAILER_SIZE), pack.length, name);
    writeFileSync(join(path, 'index', name), pack.subarray(at.offset, at.offset + at.length));
  }
  const file = join(path, 'config');
  writeFileSync(file, readFileSync(file, 'utf8').replace('"version": 5', '"version": 4'));
}

describe('index objects: format', () => {
  const packs = [
    { name: hex('pack a'), entries: entriesFor('a', 3) },
    { name: hex('pack b'), entries: [] },
    { name: hex('pack c'), entries: entriesFor('c', 1) },
  ];

  it('a multi-pack object round-trips, holds each pack\'s index as in its trailer, and ends with its SHA-256; a one-pack object reads as its own pack', () => {
    const buf = encodeIndexObject(packs);
    assert.equal(buf.subarray(0, 8).toString('latin1'), 'HVBMIDX1');
    assert.equal(buf.readUInt32LE(8), 3);
    assert.equal(buf.toString('hex', 12, 44), packs[0]!.name);
    const first = encodePackIndex(packs[0]!.entries);
    assert.equal(buf.readUInt32LE(44), first.length);
    assert.ok(buf.subarray(48, 48 + first.length).equals(first), 'the pack\'s plain index, byte for byte');
    assert.ok(createHash('sha256').update(buf.subarray(0, buf.length - 32)).digest().equals(buf.subarray(buf.length - 32)));
    const obj = decodeIndexObject(buf, 'name-unused', 'x');
    assert.equal(obj.packs, 3);
    assert.deepEqual([...obj.each()], packs);
    const one = decodeIndexObject(first, packs[0]!.name, 'y');
    assert.equal(one.packs, 1);
    assert.deepEqual([...one.each()], [packs[0]]);
    assert.deepEqual([...decodeIndexObject(encodeIndexObject([]), 'e', 'e').each()], []);
    assert.throws(() => encodeIndexObject([{ name: 'not hex', entries: [] }]), (e: unknown) => isHvError(e, 'ERR_INTERNAL'));
  });

  it('refuses a damaged object as ERR_CORRUPT naming it: a flipped bit anywhere, a cut, another magic, a pack twice, bytes after the packs', () => {
    const good = encodeIndexObject(packs);
    const what = '<index/abc>';
    for (const at of [5, 20, 46, 60, good.length - 40, good.length - 1]) {
      const bad = Buffer.from(good);
      bad[at]! ^= 0x01;
      assert.throws(() => decodeIndexObject(bad, 'abc', what), corrupt(what, at < 8 ? /HVBPIDX1 or HVBMIDX1/ : /SHA-256/), `bit flipped at ${at}`);
    }
    assert.throws(() => decodeIndexObject(good.subarray(0, good.length - 1), 'abc', what), corrupt(what, /SHA-256/));
    assert.throws(() => decodeIndexObject(Buffer.alloc(10), 'abc', what), corrupt(what, /HVBPIDX1 or HVBMIDX1/));
    // Well hashed but wrong inside: what a bug in a writer would leave.
    const rehash = (body: Buffer) => Buffer.concat([body, createHash('sha256').update(body).digest()]);
    const twice = encodeIndexObject([packs[0]!, packs[2]!]);
    twice.write(packs[0]!.name, 12 + 36 + encodePackIndex(packs[0]!.entries).length, 32, 'hex');
    assert.throws(() => decodeIndexObject(rehash(twice.subarray(0, twice.length - 32)), 'abc', what), corrupt(what, /twice/));
    assert.throws(() => decodeIndexObject(rehash(Buffer.concat([good.subarray(0, good.length - 32), Buffer.from([0])])), 'abc', what), corrupt(what, /after its 3 packs/));
    const long = Buffer.from(good.subarray(0, good.length - 32));
    long.writeUInt32LE(4, 8);
    assert.throws(() => decodeIndexObject(rehash(long), 'abc', what), corrupt(what, /ends inside pack 3/));
  });
});

describe('index objects: writers, loading, GC', function () {
  this.timeout(120_000);
  let dir: string;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'hvb-idx-')); });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it(`a writer stores an index object every ${INDEX_PACKS} packs and one at its flush, each pack listed once with its trailer's entries`, async () => {
    const path = join(dir, 'repo');
    const repo = await initRepository(path, { chunkSize: CHUNK });
    try {
      const n = INDEX_PACKS + 6;
      const data = Array.from({ length: n }, () => randomBytes(CHUNK));
      // One chunk per pack.
      const w = repo.chunkWriter({ packSize: CHUNK });
      for (const d of data) await w.submit(d);
      await w.flush();
      const packs = packNames(path);
      assert.equal(packs.length, n);
      const objects = indexFiles(path);
      assert.ok(objects.every((o) => o.kind === 'HVBMIDX1'));
      const sizes = objects.map((o) => decodeIndexObject(readFileSync(join(path, 'index', o.name)), o.name, o.name).packs).sort((a, b) => a - b);
      assert.deepEqual(sizes, [6, INDEX_PACKS]);
      assert.deepEqual([...listings(path).keys()].sort(), packs);
      assert.ok([...listings(path).values()].every((c) => c === 1));
      const again = await openRepository(path, { threads: 0 });
      try {
        for (const d of data) assert.ok((await again.loadChunk(again.chunkId(d))).equals(d));
      } finally {
        await again.close();
      }
    } finally {
      await repo.close();
    }
  });

  it('a repository of one-pack index objects (format 4) restores every point; GC makes it format 5 with one consolidated object, and every point restores the same', async () => {
    const path = join(dir, 'repo');
    await (await initRepository(path)).close();
    const vm = join(dir, 'vm');
    await createSampleVM({}, { dir: vm, sizeBytes: 40 * MiB, seed: 11 });
    const points: string[] = [];
    for (let i = 0; i < 3; i++) {
      if (i > 0) await guestWriteVM({}, { dir: vm, count: 24, size: 256 * 1024, seed: 100 + i });
      const [r] = await backupVMs({}, { repository: path, sources: [vm] });
      assert.equal(r!.status, 'success', JSON.stringify(r!.error));
      points.push(r!.pointId!);
    }
    const restore = async (tag: string) => Promise.all(points.map(async (p, i) => (await restoreVM({}, { repository: path, point: p, to: join(dir, `${tag}-${i}`) })).disks[0]!.path));
    const before = await restore('before');
    toFormat4(path);
    const packs = packNames(path);
    assert.ok(packs.length >= 6, `${packs.length} packs`);
    assert.deepEqual(indexFiles(path).map((o) => o.name), packs, 'one object per pack, named after it');
    const check = async (tag: string) => {
      const paths = await restore(tag);
      paths.forEach((p, i) => assert.equal(qemuImg('compare', '-f', 'vhdx', '-F', 'vhdx', before[i]!, p).status, 0, `${tag}: point ${i} restores differently`));
    };
    await check('format4');
    assert.equal(JSON.parse(readFileSync(join(path, 'config'), 'utf8')).version, 4, 'reading does not upgrade');

    const gc = await collectGarbage({}, { repository: path });
    assert.equal(gc.chunksRemoved, 0);
    assert.equal(JSON.parse(readFileSync(join(path, 'config'), 'utf8')).version, 5);
    assert.deepEqual(indexFiles(path).map((o) => o.kind), ['HVBMIDX1'], 'one consolidated object');
    assert.deepEqual(packNames(path), packs, 'no pack touched');
    assert.deepEqual([...listings(path).keys()].sort(), packs);
    await check('consolidated');
    assert.equal((await verifyRepository({}, { repository: path })).ok, true);
    // Consolidated already: a second GC writes nothing.
    const names = indexFiles(path).map((o) => o.name);
    await collectGarbage({}, { repository: path });
    assert.deepEqual(indexFiles(path).map((o) => o.name), names);
  });

  it('GC splits the consolidated index into objects of at most pruneLimits.indexEntries entries, and a pack listed twice (old object beside a consolidated one) is read once', async () => {
    const path = join(dir, 'repo');
    const repo = await initRepository(path, { chunkSize: CHUNK });
    const limit = pruneLimits.indexEntries;
    try {
      const data: Buffer[] = [];
      for (let i = 0; i < 5; i++) {
        const set = Array.from({ length: 3 }, () => randomBytes(CHUNK));
        data.push(...set);
        await repo.saveManifest(makeManifest({ disks: [await storeDisk(repo, Buffer.concat(set))] }));
      }
      assert.equal(packNames(path).length, 5);
      const old = indexFiles(path)[0]!;
      const oldBytes = readFileSync(join(path, 'index', old.name));
      pruneLimits.indexEntries = 7;
      const gc = () => pruneUnreferenced(repo, 'test gc');
      await gc();
      const objects = indexFiles(path);
      const counts = objects.map((o) => [...decodeIndexObject(readFileSync(join(path, 'index', o.name)), o.name, o.name).each()].reduce((a, p) => a + p.entries.length, 0)).sort();
      assert.deepEqual(counts, [3, 6, 6], 'packs of 3 entries, at most 7 entries per object');
      assert.ok([...listings(path).values()].every((c) => c === 1));
      // As a GC killed after writing consolidated objects, before removing the old ones, leaves it.
      writeFileSync(join(path, 'index', old.name), oldBytes);
      assert.ok([...listings(path).values()].some((c) => c === 2));
      const again = await openRepository(path, { threads: 0 });
      try {
        // Every index object read (no index table standing in for them: the spill suite stores some).
        const index = await again.chunkIndex({ reread: true });
        assert.equal(index.size, 15);
        assert.equal(index.packs.size, 5);
        assert.equal([...index.packs.values()].flat().length, 15, 'each pack\'s entries once');
        for (const d of data) assert.ok((await again.loadChunk(again.chunkId(d))).equals(d));
      } finally {
        await again.close();
      }
      assert.equal((await verifyRepository({}, { repository: path })).ok, true);
      await gc();
      assert.deepEqual(indexFiles(path).map((o) => o.name).includes(old.name), false, 'the next GC removes the old object');
      assert.ok([...listings(path).values()].every((c) => c === 1));
    } finally {
      pruneLimits.indexEntries = limit;
      await repo.close();
    }
  });

  it('a refresh reads only new index objects and loose chunks, keeps this process\'s packs, and rebuilds once an object it read is gone', async () => {
    const path = join(dir, 'repo');
    await (await initRepository(path, { chunkSize: CHUNK })).close();
    const one = await openRepository(path, { threads: 0 });
    const two = await openRepository(path, { threads: 0 });
    try {
      const mine = Array.from({ length: 2 }, () => randomBytes(CHUNK));
      await one.saveManifest(makeManifest({ disks: [await storeDisk(one, Buffer.concat(mine))] }));
      // A pack of this process that no index object lists yet (its writer not flushed).
      const w = one.chunkWriter({ packSize: CHUNK });
      const own = randomBytes(CHUNK);
      await (await w.submit(own)).done;
      const first = await one.chunkIndex();
      // Loads are counted through the backend: a refresh must not read objects again.
      let loads = 0;
      const backend = one.backend as { load: Repository['backend']['load'] };
      const load = backend.load.bind(one.backend);
      backend.load = (signal, h, range) => {
        if (h.type === 'index') loads++;
        return load(signal, h, range);
      };
      const theirs = Array.from({ length: 2 }, () => randomBytes(CHUNK));
      const pointB = await two.saveManifest(makeManifest({ disks: [await storeDisk(two, Buffer.concat(theirs))] }));
      assert.equal(first.has(two.chunkId(theirs[0]!)), false);
      const lock = await one.lock({ exclusive: false, operation: 'backup' });
      const second = await one.chunkIndex();
      await lock.release();
      assert.equal(second, first, 'refreshed in place');
      assert.equal(loads, 1, 'only the new object was read');
      for (const d of [...mine, ...theirs, own]) assert.ok(second.has(one.chunkId(d)));
      await w.flush();

      // The other process removes its point and collects garbage: its index object is replaced.
      await two.removeRestorePoints([pointB]);
      const lockGc = await two.lock({ exclusive: true, operation: 'gc' });
      try {
        const referenced = new Set<string>();
        for (const m of await two.listManifests()) await addPointChunks(two, m, referenced);
        await pruneChunks(two, referenced);
      } finally {
        await lockGc.release();
      }
      const third = await one.chunkIndex({ refresh: true });
      assert.notEqual(third, first, 'rebuilt');
      for (const d of mine) assert.ok(third.has(one.chunkId(d)));
      for (const d of theirs) assert.equal(third.has(one.chunkId(d)), false, 'a chunk GC removed is not assumed present');
      assert.deepEqual([...third.objects.keys()], readdirSync(join(path, 'index')));
    } finally {
      await one.close();
      await two.close();
    }
  });

  it('a refresh that finds a new index object gone before it could size it (a GC consolidating) reads the index afresh', async () => {
    const path = join(dir, 'repo');
    await (await initRepository(path, { chunkSize: CHUNK })).close();
    const one = await openRepository(path, { threads: 0 });
    const two = await openRepository(path, { threads: 0 });
    try {
      const mine = randomBytes(CHUNK);
      await one.saveManifest(makeManifest({ disks: [await storeDisk(one, mine)] }));
      const first = await one.chunkIndex();
      const theirs = randomBytes(CHUNK);
      await two.saveManifest(makeManifest({ disks: [await storeDisk(two, theirs)] }));
      // Listed, then gone: the stat of the new object says not found.
      const backend = one.backend as { stat: Repository['backend']['stat'] };
      const stat = backend.stat.bind(one.backend);
      backend.stat = (signal, h) => stat(signal, h.type === 'index' ? { ...h, name: '0'.repeat(64) } : h);
      const lock = await one.lock({ exclusive: false, operation: 'backup' });
      const second = await one.chunkIndex();
      await lock.release();
      assert.notEqual(second, first, 'rebuilt');
      assert.ok(second.has(one.chunkId(mine)) && second.has(one.chunkId(theirs)));
    } finally {
      await one.close();
      await two.close();
    }
  });

  it('a flush stores the index object of every pack of the process waiting for one, also another writer\'s a chunk was deduplicated against', async () => {
    const path = join(dir, 'repo');
    const repo = await initRepository(path, { chunkSize: CHUNK });
    try {
      const shared = randomBytes(CHUNK);
      const a = repo.chunkWriter({ packSize: CHUNK });
      const put = await (await a.submit(shared)).done;
      assert.equal(put.isNew, true);
      assert.equal(indexFiles(path).length, 0, 'A\'s pack is durable, its index object not stored yet');
      const b = repo.chunkWriter();
      const other = randomBytes(CHUNK);
      const dones = [(await b.submit(shared)).done, (await b.submit(other)).done];
      await b.flush();
      const got = await Promise.all(dones);
      assert.equal(got[0]!.isNew, false, 'B found the chunk in A\'s pack');
      // What B's manifest may name is listed now, though A never flushed.
      await repo.saveManifest(makeManifest({ disks: [await storeDisk(repo, Buffer.concat([shared, other]))] }));
      assert.deepEqual([...listings(path).keys()].sort(), packNames(path));
      const fresh = await openRepository(path, { threads: 0 });
      try {
        assert.ok((await fresh.loadChunk(fresh.chunkId(shared))).equals(shared));
      } finally {
        await fresh.close();
      }
      await a.flush();
      assert.equal(indexFiles(path).length, 1, 'nothing was left for A\'s flush');
    } finally {
      await repo.close();
    }
  });

  it('a backup killed before its index object leaves packs no object lists: the store reads as before, and GC rescues or deletes them', async () => {
    const path = join(dir, 'repo');
    const repo = await initRepository(path, { chunkSize: CHUNK });
    try {
      const kept = Array.from({ length: 3 }, () => randomBytes(CHUNK));
      await repo.saveManifest(makeManifest({ disks: [await storeDisk(repo, Buffer.concat(kept))] }));
      const objects = indexFiles(path).map((o) => o.name);
      // A writer whose packs are durable, killed before its flush stored their index object.
      const lost = Array.from({ length: 3 }, () => randomBytes(CHUNK));
      const w = repo.chunkWriter({ packSize: CHUNK });
      const done = [];
      for (const d of lost) done.push((await w.submit(d)).done);
      await Promise.all(done);
      assert.deepEqual(indexFiles(path).map((o) => o.name), objects, 'no index object yet: the packs wait for the flush');
      assert.equal(packNames(path).length, 4);
      const unlisted = packNames(path).filter((p) => !listings(path).has(p));
      assert.equal(unlisted.length, 3);
      const fresh = await openRepository(path, { threads: 0 });
      try {
        for (const d of lost) await assert.rejects(fresh.loadChunk(fresh.chunkId(d)), (e: unknown) => isHvError(e, 'ERR_NOT_FOUND'));
        const v = await verifyRepository({}, { repository: path });
        assert.equal(v.ok, true, 'packs no index lists are garbage, not damage');
        // A point naming a chunk of one of them (as if it had been written regardless) makes GC list that pack again; the others go.
        const disk = await storeDisk(fresh, Buffer.concat(kept));
        disk.chunks.push(fresh.chunkId(lost[0]!));
        disk.virtualSize += CHUNK;
        await fresh.saveManifest(makeManifest({ disks: [disk] }));
        const lock = await fresh.lock({ exclusive: true, operation: 'gc' });
        let res;
        try {
          const referenced = new Set<string>();
          for (const m of await fresh.listManifests()) await addPointChunks(fresh, m, referenced);
          res = await pruneChunks(fresh, referenced);
        } finally {
          await lock.release();
        }
        assert.equal(res.packsRescued, 1);
        assert.equal(res.packsRemoved, 2);
        assert.ok((await fresh.loadChunk(fresh.chunkId(lost[0]!))).equals(lost[0]!));
      } finally {
        await fresh.close();
      }
      assert.equal(packNames(path).length, 2);
      assert.deepEqual([...listings(path).keys()].sort(), packNames(path));
      for (const p of packNames(path)) {
        const pack = readFileSync(join(path, 'packs', p.slice(0, 2), p));
        const at = decodePackTrailer(pack.subarray(pack.length - PACK_TRAILER_SIZE), pack.length, p);
        assert.ok(decodePackIndex(pack.subarray(at.offset, at.offset + at.length), p).length > 0);
      }
    } finally {
      await repo.close();
    }
  });
});
