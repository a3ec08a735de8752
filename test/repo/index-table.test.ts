// Index tables (core/repo/index-table.ts): a writer's load that spilled stores one, later loads
// look chunks up in it in place and read only the index objects it does not cover, and a table
// that no longer fits index/ (GC), is damaged, or cannot be written never costs a chunk.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sinon from 'sinon';
import { isHvError } from '../../core/errors.ts';
import { ChunkIndex, setIndexMemoryRecords } from '../../core/repo/chunk-index.ts';
import { IndexTable, IndexTableWriter, setIndexTableRecords, TABLE_TRAILER } from '../../core/repo/index-table.ts';
import { verifyRepository } from '../../core/api/verify.ts';
import { initRepository, openRepository } from '../../core/repo/local.ts';
import { MemoryBackend } from '../../core/repo/backend-memory.ts';
import { DryRunBackend } from '../../core/repo/backend-dryrun.ts';
import { pruneChunks } from '../../core/repo/prune.ts';
import { Repository } from '../../core/repo/repository.ts';
import type { Backend } from '../../core/repo/backend.ts';

const CHUNK = 65536;
const CHEAP_KDF = { kdf: { N: 2 ** 10, r: 8, p: 1 } };

/** `n` random chunks stored by one writer (one index object), two or three to a pack. */
async function store(repo: Repository, n: number): Promise<Buffer[]> {
  const data = Array.from({ length: n }, () => randomBytes(CHUNK));
  const w = repo.chunkWriter({ packSize: 3 * CHUNK });
  for (const d of data) await w.submit(d);
  await w.flush();
  return data;
}

async function listed(b: Backend, type: 'tables' | 'index'): Promise<string[]> {
  const out: string[] = [];
  for await (const n of b.listNames(undefined, type)) out.push(n);
  return out.sort();
}

/** Every id's location as a load that reads every index object gives it. */
async function plainLocations(repo: Repository): Promise<Map<string, string>> {
  const plain = await ChunkIndex.load(repo.backend, repo.codec, undefined, { table: false });
  try {
    assert.equal(plain.table, undefined);
    return new Map([...plain.entries()].map(([id, loc]) => [id, JSON.stringify(loc)]));
  } finally {
    plain.close();
  }
}

/** A writer's lock held while the index is loaded: the load stores a table when it is worth one. */
async function loadAsWriter(repo: Repository): Promise<ChunkIndex> {
  const lock = await repo.lock({ exclusive: false, operation: 'test backup' });
  try {
    return await repo.chunkIndex({ refresh: true });
  } finally {
    await lock.release();
  }
}

describe('Index tables', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'hvb-itable-'));
    setIndexMemoryRecords(7);
    setIndexTableRecords(10);
  });
  afterEach(() => {
    setIndexMemoryRecords(undefined);
    setIndexTableRecords(undefined);
    rmSync(dir, { recursive: true, force: true });
  });

  for (const encrypted of [false, true]) {
    it(`a writer's load that spilled stores one; the next load reads only the index objects it does not cover and finds every chunk where a full load does${encrypted ? ' (encrypted: no chunk id in the clear)' : ''}`, async () => {
      const path = join(dir, 'repo');
      const opts = encrypted ? { password: 'pw', keyOptions: CHEAP_KDF } : {};
      const repo = await initRepository(path, { chunkSize: CHUNK, ...opts });
      const data: Buffer[] = [];
      try {
        for (let i = 0; i < 4; i++) data.push(...(await store(repo, 12)));
        assert.deepEqual(await listed(repo.backend, 'tables'), [], 'no table without a writer\'s lock');
        const index = await loadAsWriter(repo);
        const tables = await listed(repo.backend, 'tables');
        assert.equal(tables.length, 1);
        assert.equal(index.table?.name, tables[0], 'the load that stored it looks chunks up in it from then on');
        assert.equal(index.spilled.runs, 0, 'its runs (and their Bloom filters) are let go');
        for (const d of data) assert.ok(index.has(repo.chunkId(d)));
        const covered = await listed(repo.backend, 'index');
        data.push(...(await store(repo, 5)));
        const file = readFileSync(join(path, 'tables', tables[0]!));
        if (encrypted) {
          for (const d of data.slice(0, 48)) assert.equal(file.indexOf(Buffer.from(repo.chunkId(d), 'hex')), -1, 'a chunk id in the clear');
        } else assert.notEqual(file.indexOf(Buffer.from(repo.chunkId(data[0]!), 'hex')), -1, 'records as the format says');
      } finally {
        await repo.close();
      }

      const again = await openRepository(path, encrypted ? { password: 'pw' } : {});
      try {
        const loads = sinon.spy(again.backend, 'load');
        const index = await again.chunkIndex();
        const indexLoads = loads.getCalls().filter((c) => c.args[1].type === 'index').map((c) => c.args[1].name);
        const t = index.table;
        assert.ok(t, 'the table is used');
        assert.equal(t.records, 48);
        assert.equal(t.objects, 4);
        assert.equal(indexLoads.length, 1, `only the index object written after the table is read: ${indexLoads.join(', ')}`);
        assert.equal(index.size, 53);
        const expected = await plainLocations(again);
        assert.equal(expected.size, 53);
        for (const [id, loc] of expected) assert.equal(JSON.stringify(index.locate(id)), loc, id);
        assert.deepEqual(new Map([...index.entries()].map(([id, loc]) => [id, JSON.stringify(loc)])), expected);
        for (let i = 0; i < 200; i++) assert.equal(index.has(randomBytes(32).toString('hex')), false);
        for (const d of data) assert.ok((await again.loadChunk(again.chunkId(d))).equals(d));
        // Chunks stored after the load: found beside the table's.
        const more = await store(again, 4);
        for (const d of [...data, ...more]) assert.ok(index.has(again.chunkId(d)));
        assert.throws(() => index.packs.get([...index.packs.keys()][0]!), (e: unknown) => isHvError(e, 'ERR_INTERNAL') && /table: false/.test((e as Error).message), 'a table-backed index has no per-pack entries for its table\'s packs');
      } finally {
        await again.close();
      }
    });
  }

  it('a new table once the objects outside it hold a quarter as many records again; loads use the one covering the most objects', async () => {
    const repo = await initRepository(join(dir, 'repo'), { chunkSize: CHUNK });
    try {
      await store(repo, 60);
      await loadAsWriter(repo);
      const first = await listed(repo.backend, 'tables');
      assert.equal(first.length, 1);
      await store(repo, 12);
      assert.equal((await loadAsWriter(repo)).table?.records, 60);
      assert.deepEqual(await listed(repo.backend, 'tables'), first, '12 records outside a table of 60: past the budget of 10 but below a quarter, no new table');
      await store(repo, 4);
      await loadAsWriter(repo);
      const both = await listed(repo.backend, 'tables');
      assert.equal(both.length, 2, '16 outside: a new table');
      const index = await (await openRepository(join(dir, 'repo'))).chunkIndex();
      try {
        assert.equal(index.table?.records, 76);
        assert.equal(index.table?.name, both.find((n) => !first.includes(n)));
      } finally {
        index.close();
      }
    } finally {
      await repo.close();
    }
  });

  it('a job that finds its table stored by another job first keeps its own runs (the other\'s pack numbers may differ) and finds every chunk', async () => {
    const path = join(dir, 'repo');
    const repo = await initRepository(path, { chunkSize: CHUNK });
    const other = await openRepository(path);
    try {
      const data = [...(await store(repo, 15)), ...(await store(repo, 15))];
      const mine = await other.chunkIndex();
      await loadAsWriter(repo);
      const [name] = await listed(repo.backend, 'tables');
      assert.ok(name);
      const lock = await other.lock({ exclusive: false, operation: 'second backup' });
      try {
        const index = await other.chunkIndex();
        assert.equal(index, mine, 'refreshed, not loaded again');
        assert.equal(index.table, undefined, 'not switched to the other job\'s table');
        assert.ok(index.spilled.runs > 0);
        for (const d of data) assert.ok((await other.loadChunk(other.chunkId(d))).equals(d));
        // Its 30 chunks count as in a table all the same: 8 more are below the budget of 10, so no new table.
        await store(other, 8);
        await other.chunkIndex({ refresh: true });
        assert.deepEqual(await listed(other.backend, 'tables'), [name]);
      } finally {
        await lock.release();
      }
    } finally {
      await other.close();
      await repo.close();
    }
  });

  it('a table covering an index object that is gone is passed over, and GC deletes every table when it rewrites index/', async () => {
    const path = join(dir, 'repo');
    const repo = await initRepository(path, { chunkSize: CHUNK });
    let data: Buffer[];
    try {
      data = [...(await store(repo, 12)), ...(await store(repo, 12))];
      await loadAsWriter(repo);
      assert.equal((await listed(repo.backend, 'tables')).length, 1);
      // GC's consolidation, by hand: an object copied under a new name, the old one removed.
      const [old] = await listed(repo.backend, 'index');
      const bytes = await repo.backend.load(undefined, { type: 'index', name: old! });
      const plain = repo.codec.open('index', old!, bytes);
      const name = randomBytes(32).toString('hex');
      await repo.backend.save(undefined, { type: 'index', name }, repo.codec.seal('index', plain, name));
      await repo.backend.remove(undefined, { type: 'index', name: old! });
    } finally {
      await repo.close();
    }
    const again = await openRepository(path);
    try {
      const index = await again.chunkIndex();
      assert.equal(index.table, undefined);
      for (const d of data) assert.ok((await again.loadChunk(again.chunkId(d))).equals(d));
      const r = await pruneChunks(again, new Set(data.slice(0, 6).map((d) => again.chunkId(d))));
      assert.ok(r.packsRemoved > 0);
      assert.deepEqual(await listed(again.backend, 'tables'), []);
      for (const d of data.slice(0, 6)) assert.ok((await again.loadChunk(again.chunkId(d))).equals(d));
    } finally {
      await again.close();
    }
  });

  it('a damaged section is passed over with a warning; a damaged block fails the lookup with ERR_CORRUPT naming the table and the block, or, met by a load reading the whole table, is passed over too', async () => {
    const path = join(dir, 'repo');
    const repo = await initRepository(path, { chunkSize: CHUNK });
    let data: Buffer[];
    let file: string;
    try {
      data = await store(repo, 30);
      await loadAsWriter(repo);
      const [name] = await listed(repo.backend, 'tables');
      file = join(path, 'tables', name!);
    } finally {
      await repo.close();
    }
    const good = readFileSync(file);
    /** A load passes the table over, warning as `said` expects, and every chunk is still found. */
    const passedOver = async (said: (warning: string) => boolean) => {
      const warnings: string[] = [];
      const r = await openRepository(path, { onWarning: (m) => warnings.push(m) });
      try {
        const index = await r.chunkIndex();
        assert.equal(index.table, undefined);
        assert.ok(warnings.some(said), warnings.join('\n'));
        for (const d of data) assert.ok(index.has(r.chunkId(d)));
      } finally {
        await r.close();
      }
    };
    // A byte of the fence section (just before the trailer).
    const fence = Buffer.from(good);
    fence[fence.length - TABLE_TRAILER - 6]! ^= 0x40;
    writeFileSync(file, fence);
    await passedOver((w) => w.includes(`<tables/${file.slice(-64)}>`) && /fences: checksum mismatch/.test(w) && /removing it loses nothing/.test(w));
    const block = Buffer.from(good);
    block[100]! ^= 0x01;
    writeFileSync(file, block);
    const b = await openRepository(path);
    try {
      const index = await b.chunkIndex();
      assert.ok(index.table, 'trailer and sections are sound: the table is used');
      assert.throws(() => { for (const d of data) index.has(b.chunkId(d)); }, (e: unknown) => isHvError(e, 'ERR_CORRUPT') && (e as Error).message.includes(`<tables/${file.slice(-64)}>: block 0 is damaged`));
    } finally {
      await b.close();
    }
    // A load past its budget of records outside the table reads the whole table as it sorts
    // them: the damaged block is met there, and the table passed over with a warning.
    writeFileSync(file, good);
    const c = await openRepository(path);
    try {
      data.push(...(await store(c, 12)));
    } finally {
      await c.close();
    }
    assert.deepEqual(readdirSync(join(path, 'tables')), [file.slice(-64)], 'no second table stored (no lock was held)');
    writeFileSync(file, block);
    await passedOver((w) => w.includes(`<tables/${file.slice(-64)}>: block 0 is damaged`));
  });

  it('without local files (object storage) the table is read from a scratch copy; a dry run and a reader\'s lock store none', async () => {
    const backend = new MemoryBackend();
    const repo = await Repository.init(backend, { chunkSize: CHUNK });
    let data: Buffer[];
    try {
      data = [...(await store(repo, 12)), ...(await store(repo, 12))];
      const lock = await repo.lock({ exclusive: false, operation: 'restore', reader: true });
      await repo.chunkIndex({ refresh: true });
      await lock.release();
      assert.deepEqual(await listed(backend, 'tables'), [], 'a reader stores nothing');
    } finally {
      await repo.close();
    }
    const dry = await Repository.open(new DryRunBackend(backend));
    try {
      await loadAsWriter(dry);
      assert.deepEqual(await listed(backend, 'tables'), [], 'a dry run stores nothing');
    } finally {
      await dry.close();
    }
    const writer = await Repository.open(backend);
    try {
      await loadAsWriter(writer);
      assert.equal((await listed(backend, 'tables')).length, 1);
    } finally {
      await writer.close();
    }
    // A second, older table covering fewer objects: read only by ranges (trailer, object list), never copied.
    const older = await Repository.open(backend);
    try {
      const [name] = await listed(backend, 'tables');
      const stored = await backend.load(undefined, { type: 'tables', name: name! });
      const t = await IndexTable.open(backend, older.codec, name!);
      await t.prepare();
      t.loadFence();
      const other = randomBytes(32).toString('hex');
      const w = (await IndexTableWriter.open(backend, older.codec, other))!;
      for (const { words, count } of t.batches()) await w.add(words, count);
      await w.finish(t.packNames(), t.objects.slice(1));
      t.close();
      assert.ok(stored.length > 0);
    } finally {
      await older.close();
    }
    const again = await Repository.open(backend);
    try {
      const loads = sinon.spy(backend, 'load');
      const index = await again.chunkIndex();
      // A copy reads from offset 0; the trailer and object list are read from further on.
      const whole = loads.getCalls().filter((c) => c.args[1].type === 'tables' && (c.args[2]?.offset ?? 0) === 0);
      loads.restore();
      assert.equal(index.table?.objects, 2, 'the table covering both objects');
      assert.deepEqual(whole.map((c) => c.args[1].name), [index.table!.name], 'only the table used is copied');
      assert.equal(index.table?.records, 24);
      for (const d of data) assert.ok((await again.loadChunk(again.chunkId(d))).equals(d));
    } finally {
      await again.close();
    }
  });

  it('leave nothing in the repository\'s tmp/ folder, and a write that fails stores no table and fails no job', async () => {
    const path = join(dir, 'repo');
    const warnings: string[] = [];
    await (await initRepository(path, { chunkSize: CHUNK })).close();
    const repo = await openRepository(path, { onWarning: (m) => warnings.push(m) });
    try {
      const data = await store(repo, 20);
      const orig = repo.backend.openWriter!.bind(repo.backend);
      const stub = sinon.stub(repo.backend, 'openWriter').callsFake(async (signal, h) => {
        const w = await orig(signal, h);
        return { ...w, write: async () => { throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' }); } };
      });
      const index = await loadAsWriter(repo);
      stub.restore();
      assert.ok(warnings.some((w) => /could not store an index table/.test(w) && /no space left/.test(w)), warnings.join('\n'));
      assert.deepEqual(await listed(repo.backend, 'tables'), []);
      assert.deepEqual(readdirSync(join(path, 'tmp')), [], 'the aborted table\'s temporary file is gone');
      for (const d of data) assert.ok(index.has(repo.chunkId(d)));
    } finally {
      await repo.close();
    }
  });
  it('verify checks every table against index/ (a damaged block, a missing chunk, a wrong place), and --repair removes the bad ones', async () => {
    const path = join(dir, 'repo');
    const repo = await initRepository(path, { chunkSize: CHUNK });
    let good: string;
    try {
      await store(repo, 40);
      await store(repo, 40);
      await loadAsWriter(repo);
      [good] = await listed(repo.backend, 'tables');
    } finally {
      await repo.close();
    }
    const clean = await verifyRepository({}, { repository: path, quick: true });
    assert.equal(clean.ok, true, JSON.stringify(clean.problems));
    // Forged tables from the good one's records (under other names): one record left out, one moved.
    const forged = await openRepository(path);
    const names: Record<string, string> = {};
    try {
      const src = await IndexTable.open(forged.backend, forged.codec, good!);
      src.loadFence();
      for (const kind of ['missing', 'moved']) {
        const name = randomBytes(32).toString('hex');
        names[kind] = name;
        const w = (await IndexTableWriter.open(forged.backend, forged.codec, name))!;
        let n = 0;
        for (const { words, count } of src.batches()) {
          for (let i = 0; i < count; i++, n++) {
            const rec = words.slice(i * 12, i * 12 + 12);
            if (n === 17 && kind === 'missing') continue;
            if (n === 17) rec[9]! += 1;
            await w.add(rec, 1);
          }
        }
        await w.finish(src.packNames(), src.objects);
      }
      src.close();
    } finally {
      await forged.close();
    }
    const file = join(path, 'tables', good!);
    const bytes = readFileSync(file);
    // A byte of block 1 (80 records: two blocks of 3076 bytes).
    bytes[3076 + 100]! ^= 0x08;
    writeFileSync(file, bytes);
    const bad = await verifyRepository({}, { repository: path, quick: true });
    assert.equal(bad.ok, false);
    const about = (name: string) => bad.problems.find((p) => p.object === `<tables/${name}>`)?.problem ?? '';
    assert.match(about(good!), /block 1 is damaged/);
    assert.match(about(names.missing!), /misses chunk [0-9a-f]{64}/);
    assert.match(about(names.moved!), /places chunk [0-9a-f]{64} at \d+\+\d+ of <packs\/[0-9a-f]{64}>, where index\/ says/);
    assert.equal(bad.problems.length, 3, JSON.stringify(bad.problems));
    const logs: string[] = [];
    await verifyRepository({ onLog: (e) => logs.push(e.message) }, { repository: path, repair: true, quick: true });
    assert.equal(logs.filter((m) => /^repair: removing <tables\/[0-9a-f]{64}> \(.*\); jobs read index\/ instead$/.test(m)).length, 3, logs.join('\n'));
    const after = await openRepository(path);
    try {
      assert.deepEqual(await listed(after.backend, 'tables'), []);
    } finally {
      await after.close();
    }
    assert.equal((await verifyRepository({}, { repository: path, quick: true })).ok, true);
  });
});
