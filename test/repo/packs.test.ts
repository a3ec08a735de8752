// Pack files (core/repo/pack-format.ts, pack-writer.ts) and pruning at the storage level
// (core/repo/prune.ts): the format's own checks, where a backup's chunks land, and that
// prune frees what no restore point needs without losing, even when killed, what one does.
import { ForwardingBackend } from '../../core/repo/backend-forwarding.ts';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sinon from 'sinon';
import { backupVMs } from '../../core/api/backup.ts';
import { getRepositoryStats } from '../../core/api/repository.ts';
import { verifyRepository } from '../../core/api/verify.ts';
import { createSampleVM } from '../../core/api/vm.ts';
import { isHvError } from '../../core/errors.ts';
import type { Backend, FileType, Handle, LoadOptions, ObjectInfo, SaveData, SaveOptions } from '../../core/repo/backend.ts';
import { LocalBackend } from '../../core/repo/backend-local.ts';
import { initRepository, openRepository } from '../../core/repo/local.ts';
import { pointChunks } from '../../core/repo/manifest-chunks.ts';
import { decodeIndexObject, decodePackIndex, decodePackTrailer, encodePackIndex, encodePackTrailer, PACK_TRAILER_SIZE, type PackEntry } from '../../core/repo/pack-format.ts';
import { DEFAULT_PACK_SIZE, PackWriter, type PackReservation } from '../../core/repo/pack-writer.ts';
import { MemoryBackend } from '../../core/repo/backend-memory.ts';
import { ChunkIndex } from '../../core/repo/chunk-index.ts';
import { plainCodec } from '../../core/repo/crypto/index.ts';
import { pruneChunks } from '../../core/repo/prune.ts';
import { Repository } from '../../core/repo/repository.ts';
import { pruneUnreferenced } from '../support/prune.ts';
import { makeManifest, storeDisk } from '../../core/repo/testing.ts';

const CHUNK = 64 * 1024;
const MiB = 1024 * 1024;
const CHEAP_KDF = { kdf: { N: 2 ** 10, r: 8, p: 1 } };

function hexId(): string {
  return randomBytes(32).toString('hex');
}

function corrupt(what: string, re: RegExp) {
  return (e: unknown) => isHvError(e, 'ERR_CORRUPT') && e.message.includes(what) && re.test(e.message);
}

describe('pack format', () => {
  const entries: PackEntry[] = [
    { id: hexId(), offset: 0, length: 100, plainLength: 65536 },
    { id: hexId(), offset: 100, length: 65537, plainLength: 65536 },
    { id: hexId(), offset: 65637, length: 1, plainLength: 0 },
  ];

  it('encodes and decodes a pack index round trip, bounded by the pack size', () => {
    const buf = encodePackIndex(entries);
    assert.equal(buf.subarray(0, 8).toString('latin1'), 'HVBPIDX1');
    assert.equal(buf.length, 12 + entries.length * 44 + 32);
    assert.ok(createHash('sha256').update(buf.subarray(0, buf.length - 32)).digest().equals(buf.subarray(buf.length - 32)), 'ends with the SHA-256 of the rest');
    assert.deepEqual(decodePackIndex(buf, 'x'), entries);
    assert.deepEqual(decodePackIndex(buf, 'x', 65638), entries);
    assert.deepEqual(decodePackIndex(encodePackIndex([]), 'x', 0), []);
    assert.throws(() => encodePackIndex([{ ...entries[0]!, id: 'ABC' }]), (e: unknown) => isHvError(e, 'ERR_INTERNAL'));
  });

  it('decodePackIndex refuses wrong magic, wrong length, an empty blob and an entry beyond the pack, naming the object', () => {
    const good = encodePackIndex(entries);
    const what = '<index/abc>';
    const badMagic = Buffer.from(good);
    badMagic[3]! ^= 1;
    assert.throws(() => decodePackIndex(badMagic, what), corrupt(what, /HVBPIDX1/));
    assert.throws(() => decodePackIndex(good.subarray(0, 5), what), corrupt(what, /HVBPIDX1/));
    assert.throws(() => decodePackIndex(good.subarray(0, good.length - 1), what), corrupt(what, /3 entries need/));
    assert.throws(() => decodePackIndex(Buffer.concat([good, Buffer.alloc(44)]), what), corrupt(what, /3 entries need/));
    const moreCount = Buffer.from(good);
    moreCount.writeUInt32LE(4, 8);
    assert.throws(() => decodePackIndex(moreCount, what), corrupt(what, /4 entries need/));
    assert.throws(() => decodePackIndex(good, what, 65637), corrupt(what, new RegExp(`entry 2 \\(${entries[2]!.id}\\) ends at 65638, beyond the pack's 65637 bytes`)));
    assert.throws(() => decodePackIndex(encodePackIndex([{ ...entries[0]!, length: 0 }]), what), corrupt(what, /length 0/));
    // Any flipped bit in an id, offset or length is caught by the hash (unencrypted indexes have no other check).
    for (const at of [12, 12 + 40, 12 + 44 * 2 + 33, good.length - 1]) {
      const flipped = Buffer.from(good);
      flipped[at]! ^= 0x04;
      assert.throws(() => decodePackIndex(flipped, what), corrupt(what, /SHA-256/));
    }
  });

  it('decodePackTrailer finds the sealed index and refuses a file without the magic or an index larger than the pack', () => {
    const what = '<packs/abc>';
    const t = encodePackTrailer(500);
    assert.equal(t.length, PACK_TRAILER_SIZE);
    assert.equal(t.subarray(4).toString('latin1'), 'HVBPACK1');
    assert.deepEqual(decodePackTrailer(t, 2000, what), { offset: 2000 - PACK_TRAILER_SIZE - 500, length: 500 });
    const noMagic = Buffer.from(t);
    noMagic[PACK_TRAILER_SIZE - 1]! ^= 0x20;
    assert.throws(() => decodePackTrailer(noMagic, 2000, what), corrupt(what, /not a pack/));
    assert.throws(() => decodePackTrailer(randomBytes(PACK_TRAILER_SIZE), 2000, what), corrupt(what, /not a pack/));
    assert.throws(() => decodePackTrailer(t.subarray(1), 2000, what), corrupt(what, /not a pack/));
    assert.throws(() => decodePackTrailer(t, 500, what), corrupt(what, /larger than the pack/));
  });
});

/** Every pack file of a local repository: name and bytes. */
function packFiles(path: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const dir = join(path, 'packs');
  if (!existsSync(dir)) return out;
  for (const e of readdirSync(dir, { recursive: true, withFileTypes: true })) if (e.isFile()) out.set(e.name, readFileSync(join(e.parentPath, e.name)));
  return out;
}

function indexNames(path: string): string[] {
  return existsSync(join(path, 'index')) ? readdirSync(join(path, 'index')).sort() : [];
}

/** Every file of packs/ and index/ with its bytes, to compare before and after. */
function storeSnapshot(path: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const [name, b] of packFiles(path)) out.set(`packs/${name}`, b.toString('base64'));
  for (const name of indexNames(path)) out.set(`index/${name}`, readFileSync(join(path, 'index', name)).toString('base64'));
  return out;
}

/** Which packs each index/ object lists, with their entries (either kind of object). */
function indexObjects(path: string, repo: Repository): Map<string, Map<string, PackEntry[]>> {
  const out = new Map<string, Map<string, PackEntry[]>>();
  for (const name of indexNames(path)) {
    const plain = repo.codec.open('index', name, readFileSync(join(path, 'index', name)));
    out.set(name, new Map([...decodeIndexObject(plain, name, `<index/${name}>`).each()].map((p) => [p.name, p.entries])));
  }
  return out;
}

/** The index object listing `pack` (the test fails unless exactly one does). */
function objectOf(path: string, repo: Repository, pack: string): string {
  const named = [...indexObjects(path, repo)].filter(([, packs]) => packs.has(pack)).map(([name]) => name);
  assert.equal(named.length, 1, `pack ${pack} is listed by ${named.length} index objects`);
  return named[0]!;
}

/**
 * Check every pack of a local repository against the format: blobs back to back from
 * offset 0, then the sealed index, then the trailer; every pack is listed by exactly one
 * index object, with the entries of its trailer, and every pack listed exists. Returns the
 * entries per pack.
 */
function checkPacks(path: string, repo: Repository): Map<string, PackEntry[]> {
  const out = new Map<string, PackEntry[]>();
  const packs = packFiles(path);
  const listed = new Map<string, PackEntry[]>();
  for (const [object, inIt] of indexObjects(path, repo)) {
    for (const [pack, entries] of inIt) {
      assert.ok(!listed.has(pack), `pack ${pack} is listed again by index object ${object}`);
      listed.set(pack, entries);
    }
  }
  assert.deepEqual([...packs.keys()].sort(), [...listed.keys()].sort(), 'every pack is listed by an index object and every pack listed exists');
  for (const [name, pack] of packs) {
    const at = decodePackTrailer(pack.subarray(pack.length - PACK_TRAILER_SIZE), pack.length, name);
    const sealed = pack.subarray(at.offset, at.offset + at.length);
    const entries = decodePackIndex(repo.codec.open('index', name, Buffer.from(sealed)), name, at.offset);
    assert.deepEqual(listed.get(name), entries, `the index in pack ${name}'s trailer differs from what its index object lists`);
    let end = 0;
    for (const e of entries) {
      assert.equal(e.offset, end, `pack ${name}: blob ${e.id} is not right after the previous one`);
      end += e.length;
    }
    assert.equal(end, at.offset, `pack ${name}: the blobs do not end where the index starts`);
    out.set(name, entries);
  }
  return out;
}

async function storeChunks(repo: Repository, data: Buffer[]): Promise<string[]> {
  const w = repo.chunkWriter();
  const done = [];
  for (const d of data) done.push((await w.submit(d)).done);
  await w.flush();
  return Promise.all(done.map(async (p) => (await p).id));
}

async function addPoint(repo: Repository, data: Buffer[]): Promise<string> {
  return repo.saveManifest(makeManifest({ disks: [await storeDisk(repo, Buffer.concat(data))] }));
}

/** What GC does (test/support/prune.ts). */
const prune = (repo: Repository) => pruneUnreferenced(repo);

function chunks(n: number): Buffer[] {
  return Array.from({ length: n }, () => randomBytes(CHUNK));
}

async function assertLoads(repo: Repository, data: Buffer[]): Promise<void> {
  for (const d of data) assert.ok((await repo.loadChunk(repo.chunkId(d))).equals(d), `chunk ${repo.chunkId(d)} does not load as stored`);
}

async function assertGone(repo: Repository, data: Buffer[]): Promise<void> {
  for (const d of data) {
    const id = repo.chunkId(d);
    await assert.rejects(repo.loadChunk(id), (e: unknown) => isHvError(e, 'ERR_NOT_FOUND') && e.message.includes(`<chunks/${id}>`));
  }
}

describe('packs: where chunks are stored', function () {
  this.timeout(60_000);
  let dir: string;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'hvb-packs-')); });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('gc with packs gone names the first 20 in warnings and counts the rest in one line; the rewritten index leaves them all out', async () => {
    const path = join(dir, 'repo');
    const repo = await initRepository(path, { chunkSize: CHUNK });
    try {
      const data = chunks(50);
      // Small packs: a few chunks each, more than 20 packs.
      const w = repo.chunkWriter({ packSize: CHUNK + 4096 });
      for (const d of data) await w.submit(d);
      await w.flush();
      const packs = [...packFiles(path).keys()];
      assert.ok(packs.length > 20, `${packs.length} packs`);
      rmSync(join(path, 'packs'), { recursive: true });
      const r = await pruneChunks(repo, new Set());
      const named = r.warnings.filter((m) => m.includes('which does not exist'));
      assert.equal(named.length, 20, r.warnings.join('\n'));
      for (const m of named) assert.ok(packs.some((p) => m.includes(`<packs/${p}>`)), m);
      assert.ok(r.warnings.some((m) => m.startsWith(`${packs.length - 20} more packs that index objects name do not exist (${packs.length} in all`)), r.warnings.join('\n'));
      assert.equal(r.warnings.length, 21);
      const index = await repo.chunkIndex({ reread: true });
      assert.equal(index.packs.size, 0, 'no pack is listed any more');
    } finally {
      await repo.close();
    }
  });

  it("a backup's chunks land in a few packs, not one file per chunk, listed by one index object per writer flush with their trailers' entries", async () => {
    const path = join(dir, 'repo');
    await (await initRepository(path)).close();
    await createSampleVM({}, { dir: join(dir, 'vm'), sizeBytes: 64 * MiB, seed: 5 });
    const [r] = await backupVMs({}, { repository: path, sources: [join(dir, 'vm')] });
    assert.equal(r!.status, 'success', JSON.stringify(r!.error));
    assert.ok(!existsSync(join(path, 'chunks')), 'no loose chunks/ objects');
    const repo = await openRepository(path, { threads: 0 });
    try {
      const byPack = checkPacks(path, repo);
      const ids = [...byPack.values()].flat().map((e) => e.id);
      const manifest = await repo.loadManifest(r!.pointId!);
      const referenced = await pointChunks(repo, manifest);
      assert.deepEqual(new Set(ids), referenced, 'the packs hold exactly the chunks of the point');
      assert.equal(ids.length, referenced.size, 'each chunk once');
      const packBytes = [...packFiles(path).values()].reduce((a, b) => a + b.length, 0);
      assert.ok(ids.length >= 20, `only ${ids.length} chunks: the sample disk is too small to show packing`);
      // Packs of about DEFAULT_PACK_SIZE: a handful of files for all the chunks.
      assert.ok(byPack.size <= Math.ceil(packBytes / DEFAULT_PACK_SIZE) + 1, `${byPack.size} packs for ${packBytes} bytes`);
      assert.ok(byPack.size * 10 <= ids.length, `${byPack.size} packs for ${ids.length} chunks`);
      assert.deepEqual(readdirSync(join(path, 'packs')).every((d) => /^[0-9a-f]{2}$/.test(d)), true);
      for (const [name] of byPack) assert.ok(existsSync(join(path, 'packs', name.slice(0, 2), name)));
      // The data and metadata writers flush side by side, then one index object lists both's packs.
      assert.ok(byPack.size >= 3, `${byPack.size} packs: too few to tell one index object per pack from one per backup`);
      assert.equal(indexNames(path).length, 1, `${indexNames(path).length} index objects for ${byPack.size} packs`);
      for (const name of indexNames(path)) assert.equal(readFileSync(join(path, 'index', name)).subarray(0, 8).toString('latin1'), 'HVBMIDX1');
      assert.equal((await verifyRepository({}, { repository: path })).ok, true);
    } finally {
      await repo.close();
    }
  });

  for (const encrypted of [false, true]) {
    it(`chunk workers seal straight into the packs (no copy on the main thread): blobs back to back, concurrent submits share two open packs, one flush leaves one small pack${encrypted ? ' (encrypted)' : ''}`, async () => {
      const path = join(dir, 'repo');
      await (await initRepository(path, encrypted ? { password: 'pw', ...CHEAP_KDF } : {})).close();
      const repo = await openRepository(path, encrypted ? { password: 'pw' } : {});
      const reserve = sinon.spy(PackWriter.prototype, 'reserve');
      const add = sinon.spy(PackWriter.prototype, 'add');
      try {
        // Text (compressed) and random (stored raw) chunks, 64 submits in flight at once.
        const text = (i: number) => Buffer.from(`${i} INFO GET /api/items/${i} 200\n`.repeat(4000)).subarray(0, CHUNK);
        const small = Array.from({ length: 64 }, (_, i) => (i % 2 ? randomBytes(CHUNK) : text(i)));
        const w = repo.chunkWriter();
        const done = [];
        for (const d of small) done.push((await w.submit(d)).done);
        await w.flush();
        await Promise.all(done);
        assert.ok(reserve.callCount >= 1, 'sealed in place');
        assert.equal(add.callCount, 0, 'nothing copied into a pack on the main thread');
        assert.equal(checkPacks(path, repo).size, 1, '4 MiB in one flush: one pack, though two were filled at once');
        // More than two packs' worth, in runs of 16 chunks (as a backup reads): full packs of
        // about the target, every blob back to back within a run and across runs.
        const big = Array.from({ length: 80 }, (_, i) => (i % 3 ? randomBytes(4 * CHUNK) : Buffer.concat([text(i), text(i + 1), text(i + 2), text(i + 3)])));
        for (let r = 0; r < big.length; r += 16) {
          const run = Buffer.from(new ArrayBuffer(16 * 4 * CHUNK));
          big.slice(r, r + 16).forEach((d, k) => d.copy(run, k * 4 * CHUNK));
          const { done: runDone } = await w.submitRun(run, Array.from({ length: 16 }, (_, k) => ({ offset: k * 4 * CHUNK, length: 4 * CHUNK })));
          done.push(runDone);
        }
        await w.flush();
        await Promise.all(done);
        const byPack = checkPacks(path, repo);
        assert.ok(byPack.size >= 3 && byPack.size <= 5, `${byPack.size} packs for 4 + 20 MiB`);
        for (const d of [...small, ...big]) assert.ok((await repo.loadChunk(repo.chunkId(d))).equals(d));
      } finally {
        reserve.restore();
        add.restore();
        await repo.close();
      }
    });
  }

  it('PackWriter lends at most two open packs at once: a third reservation waits for one to come back, and a commit must be back to back', async () => {
    const w = new PackWriter(new MemoryBackend(), plainCodec(), new ChunkIndex());
    const a = (await w.reserve(CHUNK + 64))!;
    const b = (await w.reserve(CHUNK + 64))!;
    assert.ok(a && b, 'this Node has shared memory');
    // ok(), not equal(): a failure would print 13 MiB buffers.
    assert.ok(a.region.buffer !== b.region.buffer, 'two reservations at once fill two packs');
    let third: PackReservation | undefined;
    const waiting = w.reserve(CHUNK + 64).then((r) => { third = r; });
    await new Promise((r) => setTimeout(r, 50));
    assert.ok(third === undefined, 'no third open pack');
    a.cancel();
    await waiting;
    assert.ok(third!.region.buffer === a.region.buffer, 'the pack given back is lent again');
    await assert.rejects(third!.commit([{ id: hexId(), offset: 1, length: 10, plainLength: 10 }]), (e: unknown) => isHvError(e, 'ERR_INTERNAL') && /right after/.test(e.message));
    b.cancel();
    await w.flush();
  });

  it('an encrypted pack seals its index in the trailer and in index/, and names no chunk id or pack in plain', async () => {
    const path = join(dir, 'enc');
    const repo = await initRepository(path, { password: 'pw', keyOptions: CHEAP_KDF, chunkSize: CHUNK });
    try {
      const data = chunks(5);
      const ids = await storeChunks(repo, data);
      const byPack = checkPacks(path, repo);
      assert.equal(byPack.size, 1);
      assert.deepEqual([...byPack.values()][0]!.map((e) => e.id).sort(), [...ids].sort());
      for (const [, pack] of packFiles(path)) {
        for (const id of ids) assert.ok(!pack.includes(Buffer.from(id, 'hex')), 'a chunk id in plain inside a pack');
        assert.ok(!pack.includes('HVBPIDX1'), 'the pack index is in plain');
      }
      assert.equal(indexNames(path).length, 1);
      const object = readFileSync(join(path, 'index', indexNames(path)[0]!));
      assert.ok(!object.includes('HVBPIDX1') && !object.includes('HVBMIDX1'), 'the index object is in plain');
      assert.ok(!object.includes(Buffer.from([...byPack.keys()][0]!, 'hex')), 'the index object names its pack in plain');
      await assertLoads(repo, data);
    } finally {
      await repo.close();
    }
  });
});

describe('packs: prune', function () {
  this.timeout(60_000);
  let dir: string;
  let path: string;
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hvb-prune-'));
    path = join(dir, 'repo');
    await (await initRepository(path, { chunkSize: CHUNK })).close();
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /**
   * Three packs: `unused` (chunks only point A needs), `mixed` (two chunks only A needs, two
   * B needs too) and `kept` (only B's). Point A is then removed.
   */
  async function threePacks(repo: Repository) {
    const a = chunks(4);
    const mixedA = chunks(2);
    const mixedB = chunks(2);
    const b = chunks(2);
    const before = new Set(packFiles(path).keys());
    const names: string[] = [];
    for (const set of [a, [...mixedA, ...mixedB], b]) {
      await storeChunks(repo, set);
      const added = [...packFiles(path).keys()].filter((n) => !before.has(n) && !names.includes(n));
      assert.equal(added.length, 1);
      names.push(added[0]!);
    }
    const pointA = await addPoint(repo, [...a, ...mixedA]);
    const pointB = await addPoint(repo, [...mixedB, ...b]);
    assert.equal(packFiles(path).size, 3, 'the points added no pack: their chunks were stored already');
    const [unused, mixed, kept] = names as [string, string, string];
    return { a, mixedA, mixedB, b, unused, mixed, kept, pointA, pointB };
  }

  it('after removing a restore point: deletes packs whose blobs are all unused, rewrites a mixed pack with the used blobs, frees the bytes', async () => {
    const repo = await openRepository(path, { threads: 0 });
    try {
      const t = await threePacks(repo);
      const storedBefore = new Map<string, Buffer>();
      for (const d of [...t.mixedB, ...t.b]) storedBefore.set(repo.chunkId(d), await repo.loadStoredChunk(repo.chunkId(d)));
      const keptBytes = readFileSync(join(path, 'packs', t.kept.slice(0, 2), t.kept));
      const stats0 = await getRepositoryStats({}, { path });
      await repo.removeRestorePoints([t.pointA]);
      const stats1 = await getRepositoryStats({}, { path });
      const sizeOf = (snap: Map<string, string>) => [...snap.values()].reduce((a, b) => a + Buffer.from(b, 'base64').length, 0);
      const packBytes1 = sizeOf(storeSnapshot(path));

      const res = await prune(repo);
      assert.deepEqual({ ...res, bytesFreed: 0 }, { chunksTotal: 10, chunksReferenced: 4, chunksRemoved: 6, bytesFreed: 0, packsRemoved: 1, packsRewritten: 1, packsRescued: 0, warnings: [] });

      const after = checkPacks(path, repo);
      const names = [...after.keys()];
      assert.ok(!names.includes(t.unused) && !names.includes(t.mixed), 'the unused and the mixed pack are gone');
      assert.ok(names.includes(t.kept));
      assert.ok(readFileSync(join(path, 'packs', t.kept.slice(0, 2), t.kept)).equals(keptBytes), 'a pack whose blobs are all used is left alone');
      assert.equal(names.length, 2);
      const rewritten = names.find((n) => n !== t.kept)!;
      assert.deepEqual(after.get(rewritten)!.map((e) => e.id).sort(), t.mixedB.map((d) => repo.chunkId(d)).sort());

      // A fresh handle reads only what is stored now.
      const again = await openRepository(path, { threads: 0 });
      try {
        await assertLoads(again, [...t.mixedB, ...t.b]);
        for (const [id, stored] of storedBefore) assert.ok((await again.loadStoredChunk(id)).equals(stored), `blob of ${id} changed in the rewrite`);
        await assertGone(again, [...t.a, ...t.mixedA]);
      } finally {
        await again.close();
      }

      // Bytes: what prune reports freed, less the new pack's own index and trailer and the consolidated index object.
      assert.equal(indexNames(path).length, 1, 'one consolidated index object');
      const newPack = packFiles(path).get(rewritten)!;
      const newIndex = decodePackTrailer(newPack.subarray(newPack.length - PACK_TRAILER_SIZE), newPack.length, rewritten).length;
      const consolidated = statSync(join(path, 'index', indexNames(path)[0]!)).size;
      assert.equal(packBytes1 - sizeOf(storeSnapshot(path)), res.bytesFreed - newIndex - PACK_TRAILER_SIZE - consolidated);
      assert.ok(res.bytesFreed >= 6 * CHUNK, `freed ${res.bytesFreed}`);
      const stats2 = await getRepositoryStats({}, { path });
      assert.deepEqual([stats0.chunkCount, stats1.chunkCount, stats2.chunkCount], [10, 10, 4]);
      assert.ok(stats1.storedBytes - stats2.storedBytes >= 6 * CHUNK, `stored ${stats1.storedBytes} -> ${stats2.storedBytes}`);
      assert.equal(stats2.uniqueBytes, 4 * CHUNK);
      assert.equal((await verifyRepository({}, { repository: path })).ok, true);

      // Nothing left to do: a second prune changes nothing.
      const snap = storeSnapshot(path);
      const res2 = await prune(repo);
      assert.deepEqual([res2.chunksRemoved, res2.packsRemoved, res2.packsRewritten, res2.bytesFreed], [0, 0, 0, 0]);
      assert.deepEqual(storeSnapshot(path), snap);
    } finally {
      await repo.close();
    }
  });

  it('what-if reports the same counts and deletes nothing', async () => {
    const repo = await openRepository(path, { threads: 0 });
    try {
      const t = await threePacks(repo);
      await repo.removeRestorePoints([t.pointA]);
      const snap = storeSnapshot(path);
      const referenced = await pointChunks(repo, await repo.loadManifest(t.pointB));
      const planned = await pruneChunks(repo, referenced, { whatIf: true });
      assert.deepEqual(storeSnapshot(path), snap);
      const done = await pruneChunks(repo, referenced);
      assert.deepEqual({ ...planned, bytesFreed: 0 }, { ...done, bytesFreed: 0 });
      assert.equal(planned.bytesFreed, done.bytesFreed);
    } finally {
      await repo.close();
    }
  });

  it('rescues a pack that lost its index object but holds referenced chunks, and deletes one with no index whose chunks nobody needs', async () => {
    const repo = await openRepository(path, { threads: 0 });
    try {
      const needed = chunks(3);
      const garbage = chunks(2);
      await storeChunks(repo, needed);
      const [neededPack] = [...packFiles(path).keys()];
      await storeChunks(repo, garbage);
      const garbagePack = [...packFiles(path).keys()].find((n) => n !== neededPack)!;
      await addPoint(repo, needed);
      const neededEntries = checkPacks(path, repo).get(neededPack!);
      // As a kill between "packs stored" and "index object stored" leaves them.
      for (const name of indexNames(path)) rmSync(join(path, 'index', name));

      const res = await prune(repo);
      assert.equal(res.packsRescued, 1);
      assert.equal(res.packsRemoved, 1);
      assert.deepEqual([...packFiles(path).keys()], [neededPack]);
      assert.equal(indexNames(path).length, 1);
      assert.deepEqual(checkPacks(path, repo).get(neededPack!), neededEntries, 'the pack is listed again with its trailer\'s entries');
      const again = await openRepository(path, { threads: 0 });
      try {
        await assertLoads(again, needed);
        await assertGone(again, garbage);
      } finally {
        await again.close();
      }
      assert.equal((await verifyRepository({}, { repository: path })).ok, true);
    } finally {
      await repo.close();
    }
  });

  it('refuses (ERR_CORRUPT naming the index object, nothing deleted) when an index object does not load', async () => {
    const repo = await openRepository(path, { threads: 0 });
    try {
      const t = await threePacks(repo);
      await repo.removeRestorePoints([t.pointA]);
      const object = objectOf(path, repo, t.kept);
      const idx = join(path, 'index', object);
      truncateSync(idx, statSync(idx).size - 1);
      const snap = storeSnapshot(path);
      await assert.rejects(prune(repo), (e: unknown) => isHvError(e, 'ERR_CORRUPT') && e.message.includes(`<index/${object}>`) && /nothing deleted/.test(e.message));
      assert.deepEqual(storeSnapshot(path), snap);
      const v = await verifyRepository({}, { repository: path });
      assert.ok(v.problems.some((p) => p.object === `<index/${object}>`), JSON.stringify(v.problems));
    } finally {
      await repo.close();
    }
    // Encrypted: any flipped bit of an index object is caught by its seal.
    const enc = join(dir, 'enc');
    const erepo = await initRepository(enc, { password: 'pw', keyOptions: CHEAP_KDF, chunkSize: CHUNK });
    try {
      const keep = chunks(2);
      await storeChunks(erepo, [...keep, ...chunks(2)]);
      await addPoint(erepo, keep);
      const [name] = indexNames(enc);
      const f = join(enc, 'index', name!);
      const buf = readFileSync(f);
      buf[buf.length >> 1]! ^= 0x04;
      writeFileSync(f, buf);
      const snap = storeSnapshot(enc);
      await assert.rejects(prune(erepo), (e: unknown) => isHvError(e, 'ERR_CORRUPT') && e.message.includes(`<index/${name}>`) && /nothing deleted/.test(e.message));
      assert.deepEqual(storeSnapshot(enc), snap);
    } finally {
      await erepo.close();
    }
  });

  it('loses no referenced chunk when an unencrypted index object has a flipped bit inside a chunk id: prune refuses, nothing deleted', async () => {
    const repo = await openRepository(path, { threads: 0 });
    try {
      const keep = chunks(2);
      const drop = chunks(2);
      await storeChunks(repo, [...keep, ...drop]);
      await addPoint(repo, keep);
      const [name] = indexNames(path);
      const f = join(path, 'index', name!);
      const buf = readFileSync(f);
      const [pack] = [...decodeIndexObject(buf, name!, name!).each()];
      assert.equal(buf.subarray(0, 8).toString('latin1'), 'HVBMIDX1');
      const victim = pack!.entries.findIndex((e) => e.id === repo.chunkId(keep[0]!));
      buf[12 + 36 + 12 + victim * 44 + 5]! ^= 0x01; // a byte of that entry's chunk id (header, pack name and length, pack index header)
      writeFileSync(f, buf);
      // The index's SHA-256 catches it: prune refuses and deletes nothing (without it, the chunk looked unused).
      const snap = storeSnapshot(path);
      await assert.rejects(prune(repo), (e: unknown) => isHvError(e, 'ERR_CORRUPT') && e.message.includes(`<index/${name}>`) && /nothing deleted/.test(e.message));
      assert.deepEqual(storeSnapshot(path), snap);
      const packs = [...packFiles(path).values()];
      for (const d of keep) assert.ok(packs.some((p) => p.includes(d.subarray(0, 64))), `chunk ${repo.chunkId(d)} of a restore point was deleted by prune`);
    } finally {
      await repo.close();
    }
  });

  // Every step of a prune that rewrites a pack, in order: the new pack, its index object, the
  // consolidated index object, the old index objects one by one, the old packs one by one.
  const crashPoints: { name: string; at: CrashAt; mixedStays: boolean }[] = [
    { name: "before the new pack's index object is stored", at: { op: 'save', type: 'index', nth: 1 }, mixedStays: true },
    { name: 'before the consolidated index object is stored', at: { op: 'save', type: 'index', nth: 2 }, mixedStays: true },
    { name: 'before the first old index object is removed', at: { op: 'remove', type: 'index', nth: 1 }, mixedStays: true },
    { name: 'between removing two old index objects', at: { op: 'remove', type: 'index', nth: 2 }, mixedStays: true },
    { name: 'before the first old pack is removed', at: { op: 'remove', type: 'packs', nth: 1 }, mixedStays: true },
    { name: 'between removing the two old packs', at: { op: 'remove', type: 'packs', nth: 2 }, mixedStays: false },
  ];
  for (const point of crashPoints) {
    it(`kill safety: a prune that dies ${point.name} loses nothing; the next prune finishes the job`, async () => {
      const setup = await openRepository(path, { threads: 0 });
      let t: Awaited<ReturnType<typeof threePacks>>;
      try {
        t = await threePacks(setup);
        await setup.removeRestorePoints([t.pointA]);
      } finally {
        await setup.close();
      }
      const crashing = new CrashingBackend(new LocalBackend(path), point.at);
      const repo = await Repository.open(crashing, { threads: 0 });
      try {
        await assert.rejects(prune(repo), /simulated kill/);
        assert.ok(crashing.crashed, 'the crash point was reached');
      } finally {
        // The killed process's lock is stale; `repo unlock` would remove it.
        await (await openRepository(path, { threads: 0 })).breakStaleLocks({ force: true });
        await repo.close().catch(() => {});
      }
      // The dead prune stored the rewritten pack: the mixed pack's used blobs now exist twice.
      const packsAfterCrash = packFiles(path);
      if (point.mixedStays) assert.ok(packsAfterCrash.has(t.mixed), 'the old mixed pack is still there');
      // Read from the packs' own trailers: an index object may be gone.
      const copies = new Map<string, number>();
      for (const [name, pack] of packsAfterCrash) {
        const at = decodePackTrailer(pack.subarray(pack.length - PACK_TRAILER_SIZE), pack.length, name);
        for (const e of decodePackIndex(pack.subarray(at.offset, at.offset + at.length), name, at.offset)) copies.set(e.id, (copies.get(e.id) ?? 0) + 1);
      }
      for (const d of t.mixedB) assert.equal(copies.get(createHash('sha256').update(d).digest('hex')), packsAfterCrash.has(t.mixed) ? 2 : 1, 'a used blob of the mixed pack in the new pack (and the old one while it is there)');
      const mid = await openRepository(path, { threads: 0 });
      try {
        await assertLoads(mid, [...t.mixedB, ...t.b]);
      } finally {
        await mid.close();
      }
      assert.equal((await verifyRepository({}, { repository: path })).ok, true, 'verify after the crash');

      const repo2 = await openRepository(path, { threads: 0 });
      try {
        await prune(repo2);
        const after = checkPacks(path, repo2);
        const ids = [...after.values()].flat().map((e) => e.id).sort();
        assert.deepEqual(ids, [...t.mixedB, ...t.b].map((d) => repo2.chunkId(d)).sort(), 'each referenced chunk exactly once, nothing else');
        assert.ok(!after.has(t.mixed) && !after.has(t.unused));
        assert.equal(indexNames(path).length, 1, 'one consolidated index object');
      } finally {
        await repo2.close();
      }
      const repo3 = await openRepository(path, { threads: 0 });
      try {
        await assertLoads(repo3, [...t.mixedB, ...t.b]);
        await assertGone(repo3, [...t.a, ...t.mixedA]);
      } finally {
        await repo3.close();
      }
      assert.equal((await verifyRepository({}, { repository: path })).ok, true, 'verify after the second prune');
    });
  }

  it('a chunk stored twice by two writers (two packs) is pruned to one copy', async () => {
    const one = await openRepository(path, { threads: 0 });
    const two = await openRepository(path, { threads: 0 });
    try {
      // Both handles know the repository before either stores: each thinks the chunk is new.
      await one.chunkIndex();
      await two.chunkIndex();
      const shared = randomBytes(CHUNK);
      const [onlyOne, onlyTwo] = [randomBytes(CHUNK), randomBytes(CHUNK)];
      await storeChunks(one, [shared, onlyOne]);
      await storeChunks(two, [shared, onlyTwo]);
      const id = one.chunkId(shared);
      const copies = () => [...checkPacks(path, one).values()].flat().filter((e) => e.id === id).length;
      assert.equal(copies(), 2, 'the chunk is stored in both packs');
      await one.chunkIndex({ refresh: true });
      await addPoint(one, [shared, onlyOne, onlyTwo]);
      assert.equal(packFiles(path).size, 2, 'the point stored nothing new');
      const res = await prune(one);
      assert.equal(res.chunksRemoved, 0);
      assert.equal(res.packsRewritten + res.packsRemoved, 1);
      assert.equal(copies(), 1);
      assert.equal(packFiles(path).size, 2);
      const again = await openRepository(path, { threads: 0 });
      try {
        await assertLoads(again, [shared, onlyOne, onlyTwo]);
      } finally {
        await again.close();
      }
      assert.equal((await verifyRepository({}, { repository: path })).ok, true);
    } finally {
      await one.close();
      await two.close();
    }
  });
});

interface CrashAt {
  op: 'save' | 'remove';
  type: FileType;
  /** The nth such operation after the first pack was stored dies. */
  nth: number;
}

/** Dies (throws) at the chosen operation after a pack was stored: a prune killed midway through its rewrite. */
class CrashingBackend extends ForwardingBackend {
  crashed = false;
  #packStored = false;
  #seen = 0;
  readonly #at: CrashAt;

  constructor(inner: Backend, at: CrashAt) {
    super(inner);
    this.#at = at;
  }

  #dies(op: 'save' | 'remove', h: Handle): boolean {
    if (this.crashed) return true;
    if (!this.#packStored || op !== this.#at.op || h.type !== this.#at.type) return false;
    if (++this.#seen < this.#at.nth) return false;
    this.crashed = true;
    return true;
  }

  override async save(signal: AbortSignal | undefined, h: Handle, data: SaveData, opts?: SaveOptions): Promise<void> {
    if (this.#dies('save', h)) throw new Error('simulated kill: the process is gone');
    await this.inner.save(signal, h, data, opts);
    if (h.type === 'packs') this.#packStored = true;
  }

  override async remove(signal: AbortSignal | undefined, h: Handle): Promise<void> {
    if (this.#dies('remove', h)) throw new Error('simulated kill: the process is gone');
    return this.inner.remove(signal, h);
  }
}
