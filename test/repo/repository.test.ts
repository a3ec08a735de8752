import { pruneChunks } from '../../core/repo/prune.ts';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isHvError } from '../../core/errors.ts';
import type { Handle } from '../../core/repo/backend.ts';
import { DryRunBackend } from '../../core/repo/backend-dryrun.ts';
import { MemoryBackend } from '../../core/repo/backend-memory.ts';
import { initRepository, openRepository } from '../../core/repo/local.ts';
import { isAllZero } from '../../core/repo/object-format.ts';
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

describe('Repository init and open', () => {
  let dir: string;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'hvb-repo-')); });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('creates a versioned config and opens it again', async () => {
    const repo = await initRepository(join(dir, 'r'), { chunkSize: CHUNK });
    await repo.close();
    const config = JSON.parse(readFileSync(join(dir, 'r', 'config'), 'utf8'));
    assert.equal(config.version, 1);
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
      const stored = await again.backend.load(undefined, { type: 'chunks', name: c! });
      assert.ok(!stored.includes('SECRET-MARKER'));
      assert.notEqual(c, (await import('node:crypto')).createHash('sha256').update(text.subarray(0, CHUNK)).digest('hex'));
    }
    await again.close();
  });
});

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
    const textStored = await repo.backend.load(undefined, { type: 'chunks', name: text.id });
    const randStored = await repo.backend.load(undefined, { type: 'chunks', name: rand.id });
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

  it('detects a damaged, truncated or swapped chunk with ERR_CORRUPT naming it', async () => {
    const w = repo.chunkWriter();
    const a = await w.put(Buffer.from('A'.repeat(CHUNK)));
    const b = await w.put(randomBytes(CHUNK));
    const h: Handle = { type: 'chunks', name: b.id };
    const good = await repo.backend.load(undefined, h);
    const flipped = Buffer.from(good);
    flipped[500]! ^= 0x10;
    await repo.backend.save(undefined, h, flipped, { overwrite: true });
    await expectError(repo.loadChunk(b.id), 'ERR_CORRUPT', [`<chunks/${b.id}>`, 'does not match']);
    await repo.backend.save(undefined, h, good.subarray(0, 0), { overwrite: true });
    await expectError(repo.loadChunk(b.id), 'ERR_CORRUPT', [`<chunks/${b.id}>`]);
    const aStored = await repo.backend.load(undefined, { type: 'chunks', name: a.id });
    const garbled = Buffer.from(aStored);
    garbled[garbled.length - 2]! ^= 0xff;
    await repo.backend.save(undefined, { type: 'chunks', name: a.id }, garbled, { overwrite: true });
    await expectError(repo.loadChunk(a.id), 'ERR_CORRUPT', [`<chunks/${a.id}>`]);
    await repo.backend.save(undefined, h, aStored, { overwrite: true });
    await expectError(repo.loadChunk(b.id), 'ERR_CORRUPT', [`<chunks/${b.id}>`]);
    await expectError(repo.loadChunk('e'.repeat(64)), 'ERR_NOT_FOUND', [`<chunks/${'e'.repeat(64)}>`]);
  });

  it('keeps at most `capacity` chunks in flight (backpressure) and reports a failed save from flush', async () => {
    const slow = new SlowBackend();
    const r = await Repository.init(slow, { chunkSize: CHUNK });
    const writer = r.chunkWriter({ capacity: 3 });
    for (let i = 0; i < 12; i++) await writer.submit(randomBytes(2000));
    await writer.flush();
    assert.equal(slow.saved, 12);
    assert.ok(slow.maxConcurrent <= 3 && slow.maxConcurrent >= 2, `max concurrent ${slow.maxConcurrent}`);
    slow.fail = true;
    const w2 = r.chunkWriter();
    const { done } = await w2.submit(randomBytes(100));
    await expectError(w2.flush(), 'ERR_IO', ['disk full']);
    await assert.rejects(done);
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
    for await (const c of repo.readChunks(ids, { window: 3 })) {
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
    await r.close();
    assert.equal(dry.planned.filter((p) => p.type === 'chunks').length, new Set(disk.chunks.filter(Boolean)).size);
    assert.equal(dry.planned.filter((p) => p.type === 'manifests').length, 1);
    for await (const o of mem.list(undefined, 'chunks')) assert.fail(`dry run stored ${o.name}`);
  });
});

class SlowBackend extends MemoryBackend {
  concurrent = 0;
  maxConcurrent = 0;
  saved = 0;
  fail = false;
  override async save(signal: AbortSignal | undefined, h: Handle, data: Buffer, opts?: { overwrite?: boolean }): Promise<void> {
    if (h.type !== 'chunks') return super.save(signal, h, data, opts);
    this.maxConcurrent = Math.max(this.maxConcurrent, ++this.concurrent);
    try {
      await new Promise((r) => setTimeout(r, 15));
      if (this.fail) throw Object.assign(new Error('disk full'), { code: 'ENOSPC' });
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
