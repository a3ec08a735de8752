import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isHvError, wrapError } from '../../core/errors.ts';
import type { Handle, SaveData } from '../../core/repo/backend.ts';
import { DryRunBackend } from '../../core/repo/backend-dryrun.ts';
import { MemoryBackend } from '../../core/repo/backend-memory.ts';
import { initRepository, openRepository } from '../../core/repo/local.ts';
import type { PutResult } from '../../core/repo/chunk-writer.ts';
import { isAllZero } from '../../core/repo/object-format.ts';
import { decodeIndexObject, encodeIndexObject } from '../../core/repo/pack-format.ts';
import { pruneChunks } from '../../core/repo/prune.ts';
import { Repository } from '../../core/repo/repository.ts';
import { makeManifest, readDisk, storeDisk } from '../../core/repo/testing.ts';

const CHUNK = 64 * 1024;
const CHEAP_KDF = { kdf: { N: 2 ** 10, r: 8, p: 1 } };

/** 1 MiB of disk-like data: text, random, zeros and a repeated block, in CHUNK slices. */
function diskLike(seed = 1): Buffer {
  const parts: Buffer[] = [];
  const dup = randomBytes(CHUNK);
  for (let i = 0; i < 16; i++) {
    if (i % 4 === 0) parts.push(Buffer.from(`line ${seed} ${i} INFO request completed\n`.repeat(CHUNK)).subarray(0, CHUNK));
    else if (i % 4 === 1) parts.push(randomBytes(CHUNK));
    else if (i % 4 === 2) parts.push(Buffer.alloc(CHUNK));
    else parts.push(dup);
  }
  return Buffer.concat(parts);
}

async function expectError(p: Promise<unknown>, code: string, mentions: (string | RegExp)[] = []): Promise<Error> {
  try {
    await p;
  } catch (err) {
    assert.ok(isHvError(err), `not an HvError: ${(err as Error)?.stack}`);
    assert.equal(err.code, code, err.message);
    for (const m of mentions) assert.match(err.message, typeof m === 'string' ? new RegExp(m.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')) : m);
    return err;
  }
  assert.fail(`expected ${code}`);
}

/** A new repository in `path` whose config says format `version` (as an older HVBackup left it): its config file and the config as made. */
async function repoOfFormat(path: string, version: number): Promise<{ file: string; config: Record<string, unknown> }> {
  await (await initRepository(path)).close();
  const file = join(path, 'config');
  const config = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  writeFileSync(file, JSON.stringify({ ...config, version }, null, 2) + '\n');
  return { file, config };
}

describe('Repository init and open', () => {
  let dir: string;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'hvb-repo-')); });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('creates a versioned config and opens it again', async () => {
    const repo = await initRepository(join(dir, 'r'), { chunkSize: CHUNK });
    await repo.close();
    const config = JSON.parse(readFileSync(join(dir, 'r', 'config'), 'utf8'));
    assert.equal(config.version, 5);
    assert.equal(config.chunkSize, CHUNK);
    assert.equal(config.compression, 'zstd');
    assert.equal(config.encryption, null);
    const again = await openRepository(join(dir, 'r'));
    assert.equal(again.config.id, config.id);
    await again.close();
  });

  it('names the path when it is missing or not a repository', async () => {
    await expectError(openRepository(join(dir, 'missing')), 'ERR_NOT_FOUND', [join(dir, 'missing'), 'does not exist']);
    mkdirSync(join(dir, 'empty'));
    await expectError(openRepository(join(dir, 'empty')), 'ERR_NOT_FOUND', [join(dir, 'empty'), 'not an HVBackup repository']);
    writeFileSync(join(dir, 'file'), 'x');
    await expectError(openRepository(join(dir, 'file')), 'ERR_NOT_FOUND', ['not an HVBackup repository']);
  });

  it('a format 2 repository takes version-1 manifests, and becomes format 5 (under the exclusive lock) before a version-2 one', async () => {
    const { file, config } = await repoOfFormat(join(dir, 'r'), 2);
    const repo = await openRepository(join(dir, 'r'), { threads: 0 });
    const other = await openRepository(join(dir, 'r'), { threads: 0 });
    try {
      assert.equal(repo.readOnly, false);
      const disk = await storeDisk(repo, randomBytes(3 * CHUNK));
      await repo.saveManifest(makeManifest({ disks: [disk] }));
      await expectError(repo.saveManifest(makeManifest()), 'ERR_UNSUPPORTED', ['format 2', 'upgraded to format 5']);
      const held = await other.lock({ exclusive: false, operation: 'backup' });
      await expectError(repo.upgradeFormat(), 'ERR_LOCKED', ['upgrade', 'format 5']);
      assert.equal(JSON.parse(readFileSync(file, 'utf8')).version, 2, 'not upgraded while another process uses it');
      await held.release();
      assert.equal(await repo.upgradeFormat(), true);
      assert.deepEqual(JSON.parse(readFileSync(file, 'utf8')), { ...config, version: 5 }, 'only the version changed');
      assert.equal(await repo.upgradeFormat(), false);
      assert.equal(await other.upgradeFormat(), false, 'another handle re-reads the config under the lock');
      assert.equal(other.config.version, 5);
      await repo.saveManifest(makeManifest());
    } finally {
      await repo.close();
      await other.close();
    }
  });

  it('a format 3 repository (segments, no split slices) takes version-2 manifests, and becomes format 5 on upgradeFormat', async () => {
    const { file, config } = await repoOfFormat(join(dir, 'r'), 3);
    const repo = await openRepository(join(dir, 'r'), { threads: 0 });
    try {
      assert.equal(repo.readOnly, false);
      await repo.saveManifest(makeManifest());
      const held = await repo.lock({ exclusive: false, operation: 'backup' });
      await expectError(repo.upgradeFormat(), 'ERR_LOCKED', ['upgrade', 'format 5', 'locked']);
      await held.release();
      assert.equal(await repo.upgradeFormat(), true);
      assert.deepEqual(JSON.parse(readFileSync(file, 'utf8')), { ...config, version: 5 }, 'only the version changed');
      assert.equal(await repo.upgradeFormat(), false);
    } finally {
      await repo.close();
    }
  });

  it('a format 4 repository (one index object per pack) gets one-pack index objects until it becomes format 5, under the exclusive lock or under GC\'s held one', async () => {
    const { file, config } = await repoOfFormat(join(dir, 'r'), 4);
    const kinds = () => readdirSync(join(dir, 'r', 'index')).map((n) => [n, readFileSync(join(dir, 'r', 'index', n)).subarray(0, 8).toString('latin1')]);
    const packs = () => readdirSync(join(dir, 'r', 'packs'), { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => e.name).sort();
    const repo = await openRepository(join(dir, 'r'), { threads: 0 });
    try {
      assert.equal(repo.readOnly, false);
      await repo.saveManifest(makeManifest({ disks: [await storeDisk(repo, randomBytes(3 * CHUNK))] }));
      // What HVBackup of format 4 reads: an HVBPIDX1 object named after each pack.
      assert.deepEqual(kinds().map(([n]) => n).sort(), packs());
      assert.ok(kinds().every(([, k]) => k === 'HVBPIDX1'), JSON.stringify(kinds()));
      const held = await repo.lock({ exclusive: false, operation: 'backup' });
      await expectError(repo.upgradeFormat(), 'ERR_LOCKED', ['upgrade', 'format 5', 'locked']);
      await held.release();
      const gcLock = await repo.lock({ exclusive: true, operation: 'gc' });
      try {
        assert.equal(await repo.upgradeFormat(undefined, { locked: true }), true, 'under the exclusive lock the caller holds');
      } finally {
        await gcLock.release();
      }
      assert.deepEqual(JSON.parse(readFileSync(file, 'utf8')), { ...config, version: 5 }, 'only the version changed');
      await storeDisk(repo, randomBytes(2 * CHUNK));
      assert.deepEqual(kinds().filter(([, k]) => k === 'HVBMIDX1').length, 1, 'format 5: one multi-pack index object for the flush');
    } finally {
      await repo.close();
    }
  });

  it('refuses an unsupported version and a corrupt config, naming the config', async () => {
    await (await initRepository(join(dir, 'r'))).close();
    const file = join(dir, 'r', 'config');
    const config = JSON.parse(readFileSync(file, 'utf8'));
    writeFileSync(file, JSON.stringify({ ...config, version: 7 }));
    await expectError(openRepository(join(dir, 'r')), 'ERR_UNSUPPORTED', ['version 7', '<config>']);
    writeFileSync(file, '{"version": 1, "id": ');
    await expectError(openRepository(join(dir, 'r')), 'ERR_CORRUPT', ['<config>', 'not valid JSON']);
    writeFileSync(file, JSON.stringify({ ...config, chunkSize: 3 }));
    await expectError(openRepository(join(dir, 'r')), 'ERR_CORRUPT', ['chunkSize']);
  });

  it('refuses to create a repository in a non-empty folder or over an existing one', async () => {
    mkdirSync(join(dir, 'full'));
    writeFileSync(join(dir, 'full', 'precious.txt'), 'keep me');
    await expectError(initRepository(join(dir, 'full')), 'ERR_ALREADY_EXISTS', [join(dir, 'full'), 'not empty']);
    assert.equal(readFileSync(join(dir, 'full', 'precious.txt'), 'utf8'), 'keep me');
    const mem = new MemoryBackend();
    await (await Repository.init(mem)).close();
    await expectError(Repository.init(mem), 'ERR_ALREADY_EXISTS', ['already holds a repository']);
    await expectError(Repository.init(mem, { chunkSize: 1000 }), 'ERR_INVALID_ARGUMENT', ['chunk size']);
  });

  it('needs the password of an encrypted repository (ERR_AUTH) and stores no plaintext', async () => {
    const path = join(dir, 'enc');
    const repo = await initRepository(path, { password: 'correct horse', keyOptions: CHEAP_KDF, chunkSize: CHUNK });
    const text = Buffer.from('SECRET-MARKER '.repeat(10000));
    const disk = await storeDisk(repo, text);
    const id = await repo.saveManifest(makeManifest({ disks: [disk] }));
    await repo.close();
    const config = JSON.parse(readFileSync(join(path, 'config'), 'utf8'));
    assert.equal(typeof config.encryption, 'object');
    await expectError(openRepository(path), 'ERR_AUTH', [path, 'password']);
    await expectError(openRepository(path, { password: 'wrong' }), 'ERR_AUTH', [path]);
    const again = await openRepository(path, { password: 'correct horse' });
    assert.deepEqual(await readDisk(again, (await again.loadManifest(id)).disks[0]!), text);
    for (const c of disk.chunks) {
      const stored = await again.loadStoredChunk(c!);
      assert.ok(!stored.includes('SECRET-MARKER'));
      assert.notEqual(c, (await import('node:crypto')).createHash('sha256').update(text.subarray(0, CHUNK)).digest('hex'));
    }
    await again.close();
    for (const f of readdirSync(path, { recursive: true, withFileTypes: true }).filter((e) => e.isFile())) {
      assert.ok(!readFileSync(join(f.parentPath, f.name)).includes('SECRET-MARKER'), `${join(f.parentPath, f.name)} holds plaintext`);
    }
  });
});

/** Replace a stored object with what `edit` makes of its bytes (damage in place, any backend). */
async function editObject(repo: Repository, h: Handle, edit: (buf: Buffer) => Buffer): Promise<void> {
  await repo.backend.save(undefined, h, edit(Buffer.from(await repo.backend.load(undefined, h))), { overwrite: true });
}

describe('Repository chunks', () => {
  let repo: Repository;
  beforeEach(async () => { repo = await Repository.init(new MemoryBackend(), { chunkSize: CHUNK }); });
  afterEach(async () => { await repo.close(); });

  it('stores each distinct chunk once and reads every byte back', async () => {
    const data = diskLike();
    const disk = await storeDisk(repo, data);
    assert.equal(disk.chunks.filter((c) => c === null).length, 4);
    const distinct = new Set(disk.chunks.filter(Boolean));
    assert.equal(distinct.size, 4 + 4 + 1);
    assert.equal((await repo.listChunkIds()).length, distinct.size);
    assert.deepEqual(await readDisk(repo, disk), data);
    const writer = repo.chunkWriter();
    const second = await storeDisk(repo, data);
    assert.deepEqual(second.chunks, disk.chunks);
    assert.equal((await repo.listChunkIds()).length, distinct.size);
    const r = await writer.put(data.subarray(CHUNK, 2 * CHUNK));
    assert.deepEqual([r.isNew, r.stored], [false, 0]);
    assert.equal(writer.stats.newChunks, 0);
  });

  it('compresses text, stores random data raw, and counts stored bytes', async () => {
    const writer = repo.chunkWriter();
    const text = await writer.put(Buffer.from('INFO ok\n'.repeat(CHUNK / 8)));
    const rand = await writer.put(randomBytes(CHUNK));
    const textStored = await repo.loadStoredChunk(text.id);
    const randStored = await repo.loadStoredChunk(rand.id);
    assert.equal(textStored[0], 1);
    assert.ok(textStored.length < CHUNK / 20);
    assert.equal(randStored[0], 0);
    assert.equal(randStored.length, CHUNK + 1);
    assert.equal(writer.stats.storedBytes, textStored.length + randStored.length);
  });

  it('answers hasChunks in a batch', async () => {
    const a = await repo.chunkWriter().put(randomBytes(1000));
    const missing = 'f'.repeat(64);
    assert.deepEqual(await repo.hasChunks([a.id, missing]), new Set([a.id]));
  });

  it('detects a damaged or swapped chunk (an index entry naming another chunk\'s blob) with ERR_CORRUPT naming it', async () => {
    const w = repo.chunkWriter();
    const a = (await w.submit(Buffer.from('A'.repeat(CHUNK)))).done;
    const b = (await w.submit(randomBytes(CHUNK))).done;
    await w.flush();
    const [aId, bId] = [(await a).id, (await b).id];
    const aAt = await repo.locateChunk(aId);
    const bAt = await repo.locateChunk(bId);
    // Both in one pack, so the swap below is an index entry pointing at the other chunk's blob.
    assert.equal(bAt.handle.type, 'packs');
    assert.deepEqual(aAt.handle, bAt.handle);
    const pack = bAt.handle;
    const good = await repo.backend.load(undefined, pack);
    await editObject(repo, pack, (buf) => { buf[bAt.offset + 500]! ^= 0x10; return buf; });
    await expectError(repo.loadChunk(bId), 'ERR_CORRUPT', [`<chunks/${bId}>`, 'does not match']);
    await repo.backend.save(undefined, pack, good, { overwrite: true });
    await editObject(repo, pack, (buf) => { buf[aAt.offset + aAt.length - 2]! ^= 0xff; return buf; });
    await expectError(repo.loadChunk(aId), 'ERR_CORRUPT', [`<chunks/${aId}>`]);
    await repo.backend.save(undefined, pack, good, { overwrite: true });
    assert.equal((await repo.loadChunk(bId)).length, CHUNK);
    // b's index entry names a's blob: a blob is bound to its own chunk id.
    const [object] = [...(await repo.chunkIndex()).objects].filter(([, packs]) => packs.includes(pack.name)).map(([name]) => name);
    const ih: Handle = { type: 'index', name: object! };
    const listed = [...decodeIndexObject(repo.codec.open('index', ih.name, await repo.backend.load(undefined, ih)), ih.name, 'test').each()];
    const swapped = listed.map((p) => ({ name: p.name, entries: p.entries.map((e) => (e.id === bId ? { ...e, offset: aAt.offset, length: aAt.length } : e)) }));
    await repo.backend.save(undefined, ih, repo.codec.seal('index', encodeIndexObject(swapped), ih.name), { overwrite: true });
    await repo.chunkIndex({ reread: true });
    await expectError(repo.loadChunk(bId), 'ERR_CORRUPT', [`<chunks/${bId}>`]);
    await expectError(repo.loadChunk('e'.repeat(64)), 'ERR_NOT_FOUND', [`<chunks/${'e'.repeat(64)}>`]);
  });

  it('a pack cut short inside a chunk is ERR_CORRUPT naming the chunk (damage, not a bad argument)', async () => {
    const w = repo.chunkWriter();
    const a = await w.put(randomBytes(CHUNK));
    const at = await repo.locateChunk(a.id);
    await editObject(repo, at.handle, (buf) => buf.subarray(0, at.offset + 10));
    await expectError(repo.loadChunk(a.id), 'ERR_CORRUPT', [`<chunks/${a.id}>`]);
  });

  for (const threads of [0, 1]) {
    it(`a chunk repeated before its pack is stored is stored once, and each copy's done waits for that pack (${threads ? 'sealed by a worker' : 'inline'})`, async () => {
      const slow = new SlowBackend();
      await (await Repository.init(slow, { chunkSize: CHUNK })).close();
      const r = await Repository.open(slow, { threads });
      try {
        const writer = r.chunkWriter();
        let openGate!: () => void;
        slow.gate = new Promise((resolve) => { openGate = resolve; });
        const a = randomBytes(CHUNK), b = randomBytes(CHUNK);
        // a twice within one run beside b, then again alone in a second run (nothing new of its own to wait for).
        const run1 = Buffer.concat([a, b, a]);
        const first = await writer.submitRun(Buffer.from(new Uint8Array(run1).buffer), [0, 1, 2].map((k) => ({ offset: k * CHUNK, length: CHUNK })));
        const second = await writer.submitRun(Buffer.from(new Uint8Array(a).buffer), [{ offset: 0, length: CHUNK }]);
        const known = [...(await first.known), ...(await second.known)];
        assert.deepEqual(known.map((k) => k.id), [a, b, a, a].map((d) => r.chunkId(d)));
        assert.deepEqual(known.map((k) => k.isNew), [true, true, false, false]);
        let secondSettled = false;
        void second.done.then(() => { secondSettled = true; }, () => {});
        let settled = false;
        const done = Promise.all([first.done, second.done]).then((x) => { settled = true; return x; });
        const flushed = writer.flush();
        await new Promise((resolve) => setTimeout(resolve, 50));
        assert.equal(settled, false, 'no done settles while the pack holding a cannot be stored');
        assert.equal(secondSettled, false, 'a repeat waits for the first copy\'s pack');
        openGate();
        await flushed;
        assert.deepEqual((await done).flat().map((k) => k.id), known.map((k) => k.id));
        assert.equal(writer.stats.newChunks, 2);
        assert.equal(writer.stats.chunks, 4);
        assert.equal(slow.saved, 1, 'one pack');
        assert.deepEqual((await r.loadChunk(r.chunkId(a))), a);
      } finally {
        await r.close();
      }
    });
  }

  it('bounds what is in flight: at most 2 packs being stored, and submit waits once `capacityBytes` of chunks wait for a pack', async () => {
    const slow = new SlowBackend();
    await (await Repository.init(slow, { chunkSize: CHUNK })).close();
    const r = await Repository.open(slow, { threads: 0 });
    // Two 2000-byte random chunks fill a 4000-byte pack: packs are cut every other chunk.
    // Room for three of them in flight.
    const writer = r.chunkWriter({ capacityBytes: 3 * 2000, packSize: 4000 });
    let openGate!: () => void;
    slow.gate = new Promise((resolve) => { openGate = resolve; });
    const data: Buffer[] = [];
    const dones: Promise<PutResult>[] = [];
    let waiting: Promise<{ done: Promise<PutResult> }> | undefined;
    while (!waiting && data.length < 40) {
      const d = randomBytes(2000);
      data.push(d);
      const taken = writer.submit(d);
      // No pack can be stored while the gate is shut, so a submit that is not taken within a second is waiting for room.
      const now = await Promise.race([taken, new Promise<undefined>((resolve) => setTimeout(resolve, 1000, undefined))]);
      if (now) dones.push(now.done);
      else waiting = taken;
    }
    assert.ok(waiting, `submit took all ${data.length} chunks while no pack could be stored`);
    assert.ok(slow.concurrent >= 1 && slow.concurrent <= 2, `${slow.concurrent} packs being stored at once`);
    assert.equal(slow.concurrent, slow.maxConcurrent, 'the writer stores as many packs as it may while the others wait');
    // Taken so far: the packs being stored, at most one full pack per chunk in flight waiting to be stored, the open pack (2 chunks each).
    assert.ok(dones.length <= (slow.concurrent + 3 + 1) * 2, `${dones.length} chunks taken while stores hang`);
    assert.ok(dones.length >= slow.concurrent * 2, `only ${dones.length} chunks taken before submit waited`);
    openGate();
    dones.push((await waiting).done);
    for (let i = 0; i < 3; i++) {
      const d = randomBytes(2000);
      data.push(d);
      dones.push((await writer.submit(d)).done);
    }
    await writer.flush();
    const results = await Promise.all(dones);
    assert.deepEqual(results.map((x) => x.id), data.map((d) => r.chunkId(d)));
    assert.ok(results.every((x) => x.isNew));
    assert.ok(slow.maxConcurrent <= 2, `${slow.maxConcurrent} packs stored at once`);
    const index = await r.chunkIndex();
    assert.equal(slow.saved, index.packs.size);
    assert.equal(slow.saved, Math.ceil(data.length / 2));
    assert.equal([...index.packs.values()].flat().length, data.length);
    for (const d of data) assert.deepEqual(await r.loadChunk(r.chunkId(d)), d);
    await r.close();
  });

  it('reports a failed pack save from flush as ERR_IO, and rejects the chunk\'s done', async () => {
    const slow = new SlowBackend();
    const r = await Repository.init(slow, { chunkSize: CHUNK });
    // As LocalBackend reports ENOSPC, then as a backend that passes the raw error on.
    for (const fail of ['hv', 'raw'] as const) {
      slow.fail = fail;
      const w = r.chunkWriter();
      const { done } = await w.submit(randomBytes(100));
      await expectError(w.flush(), 'ERR_IO', ['disk full']);
      await assert.rejects(done, /disk full/);
    }
    assert.equal(slow.saved, 0);
    await r.close();
  });

  it('tells all-zero buffers apart fast', () => {
    assert.ok(isAllZero(Buffer.alloc(3 * 1024 * 1024 + 5)));
    const b = Buffer.alloc(2 * 1024 * 1024 + 3);
    b[b.length - 1] = 1;
    assert.ok(!isAllZero(b));
    assert.ok(isAllZero(Buffer.alloc(0)));
  });

  it('reads chunks ahead in order with readChunks', async () => {
    const data = diskLike(2);
    const disk = await storeDisk(repo, data);
    const ids = disk.chunks.filter((c): c is string => c !== null);
    const got: string[] = [];
    for await (const c of repo.readChunks(ids, { aheadBytes: 3 * CHUNK })) {
      assert.equal(repo.chunkId(c.data), c.id);
      got.push(c.id);
    }
    assert.deepEqual(got, ids);
  });

  it('writes nothing through a dry-run backend yet reports the same new chunks', async () => {
    const mem = new MemoryBackend();
    await (await Repository.init(mem, { chunkSize: CHUNK })).close();
    const dry = new DryRunBackend(mem);
    const r = await Repository.open(dry);
    const disk = await storeDisk(r, diskLike(3));
    await r.saveManifest(makeManifest({ disks: [disk] }));
    const index = await r.chunkIndex();
    const distinct = [...new Set(disk.chunks.filter((c): c is string => c !== null))].sort();
    assert.equal(distinct.length, 9);
    const packs = dry.planned.filter((p) => p.type === 'packs');
    assert.ok(packs.length >= 1 && packs.every((p) => p.op === 'save' && p.size > 0), JSON.stringify(packs));
    // One index object per flush, listing the packs.
    assert.deepEqual(dry.planned.filter((p) => p.type === 'index').map((p) => p.name).sort(), [...index.objects.keys()].sort());
    assert.deepEqual([...index.objects.values()].flat().sort(), packs.map((p) => p.name).sort());
    // The handle's index holds what a real run would have stored: every new chunk once.
    assert.deepEqual([...index.packs.keys()].sort(), packs.map((p) => p.name).sort());
    assert.deepEqual([...index.packs.values()].flat().map((e) => e.id).sort(), distinct);
    assert.equal(dry.planned.filter((p) => p.type === 'chunks').length, 0);
    assert.equal(dry.planned.filter((p) => p.type === 'manifests').length, 1);
    await r.close();
    for (const type of ['chunks', 'packs', 'index', 'manifests'] as const) {
      for await (const o of mem.list(undefined, type)) assert.fail(`dry run stored <${type}/${o.name}>`);
    }
  });
});

/** Stores packs slowly (or not until `gate` settles), counting how many are being stored at once. */
class SlowBackend extends MemoryBackend {
  concurrent = 0;
  maxConcurrent = 0;
  saved = 0;
  fail: false | 'hv' | 'raw' = false;
  gate: Promise<void> | undefined;
  override async save(signal: AbortSignal | undefined, h: Handle, data: SaveData, opts?: { overwrite?: boolean }): Promise<void> {
    if (h.type !== 'packs') return super.save(signal, h, data, opts);
    this.maxConcurrent = Math.max(this.maxConcurrent, ++this.concurrent);
    try {
      await (this.gate ?? new Promise((r) => setTimeout(r, 15)));
      const full = Object.assign(new Error('disk full'), { code: 'ENOSPC' });
      if (this.fail === 'hv') throw wrapError(full, `save <${h.type}/${h.name}>`);
      if (this.fail === 'raw') throw full;
      await super.save(signal, h, data, opts);
      this.saved++;
    } finally {
      this.concurrent--;
    }
  }
}


describe('Repository chunks after garbage collection elsewhere', () => {
  it('lists chunks afresh when a lock is taken, so a chunk removed meanwhile is written again', async () => {
    const backend = new MemoryBackend();
    const repo = await Repository.init(backend, { chunkSize: CHUNK });
    const data = randomBytes(CHUNK);
    const first = await repo.chunkWriter().put(data);
    // Another process's GC removes the chunk while this Repository stays open.
    const other = await Repository.open(backend, { threads: 0 });
    const gc = await other.lock({ exclusive: true, operation: 'gc' });
    await pruneChunks(other, new Set());
    await gc.release();
    const lock = await repo.lock({ exclusive: false, operation: 'backup' });
    const again = await repo.chunkWriter().put(data);
    await lock.release();
    assert.equal(again.isNew, true);
    assert.deepEqual(await repo.loadChunk(first.id), data);
    await repo.close();
    await other.close();
  });
});
