// The chunk index's table itself (core/repo/chunk-index.ts): growth past its first table and
// segments, ids that collide in the bits the table is keyed by, duplicates across packs,
// removal then re-adding, all checked against the Map of objects the index replaced.
import assert from 'node:assert/strict';
import { isDeepStrictEqual } from 'node:util';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isHvError } from '../../core/errors.ts';
import { ChunkIndex, setIndexMemoryRecords, type ChunkLocation } from '../../core/repo/chunk-index.ts';
import { initRepository } from '../../core/repo/local.ts';
import { checkPackIndex, encodeIndexObject, encodePackIndex, type PackEntry } from '../../core/repo/pack-format.ts';
import { setIndexTableRecords } from '../../core/repo/index-table.ts';
import type { Repository } from '../../core/repo/repository.ts';
import { pruneChunks } from '../../core/repo/prune.ts';
import { indexMemoryRecords, setScratchDir } from '../../core/repo/sorted-run.ts';

/** The index as it was (a Map of objects): what ChunkIndex must still answer, operation for operation. */
class MapIndex {
  readonly byId = new Map<string, ChunkLocation>();
  readonly packs = new Map<string, PackEntry[]>();
  addPack(name: string, entries: PackEntry[]): void {
    if (this.packs.has(name)) return;
    this.packs.set(name, entries);
    for (const e of entries) if (!this.byId.has(e.id)) this.byId.set(e.id, { pack: name, offset: e.offset, length: e.length, plainLength: e.plainLength });
  }
  addLoose(id: string, size: number): void {
    if (!this.byId.has(id)) this.byId.set(id, { offset: 0, length: size });
  }
  removePack(name: string): void {
    const gone = this.packs.get(name);
    this.packs.delete(name);
    for (const e of gone ?? []) if (this.byId.get(e.id)?.pack === name) this.byId.delete(e.id);
  }
  removeLoose(id: string): void {
    if (this.byId.get(id)?.pack === undefined) this.byId.delete(id);
  }
}

/** Distinct ids, the first `prefix` hex characters shared (so they all want the same table slot). */
function ids(n: number, seed: string, prefix = ''): string[] {
  return Array.from({ length: n }, (_, i) => (prefix + createHash('sha256').update(`${seed}/${i}`).digest('hex')).slice(0, 64));
}

/** A pack name (64 hex, as every pack's is) for a label. */
function pn(label: string): string {
  return createHash('sha256').update(`pack/${label}`).digest('hex');
}

function entriesFor(list: string[], at = 0): PackEntry[] {
  return list.map((id, i) => ({ id, offset: at + i * 1000, length: 1000 + i, plainLength: 4096 + i }));
}

/** Deterministic, so a failure reproduces. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/**
 * Two long lists equal, element by element: on a mismatch only the first differing element is
 * printed (a deepEqual of whole lists of tens of thousands of entries builds a diff that ran the
 * test process out of memory, and a killed run prints no total).
 */
function sameList<T>(got: readonly T[], want: readonly T[], what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < got.length; i++) {
    if (!isDeepStrictEqual(got[i], want[i])) assert.deepEqual(got[i], want[i], `${what}: element ${i}`);
  }
}

const byId = (a: [string, ChunkLocation], b: [string, ChunkLocation]) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);

function assertSame(index: ChunkIndex, model: MapIndex, probe: readonly string[]): void {
  assert.equal(index.size, model.byId.size);
  // Spilled chunks come in id order, the rest as they became known: compared as sets.
  sameList([...index.entries()].sort(byId), [...model.byId.entries()].sort(byId), 'entries');
  for (const id of probe) {
    assert.equal(index.has(id), model.byId.has(id), `has(${id})`);
    assert.deepEqual(index.locate(id), model.byId.get(id), `locate(${id})`);
  }
  sameList([...index.packs.keys()], [...model.packs.keys()], 'pack names');
  for (const [name, entries] of model.packs) sameList(index.packs.get(name) ?? [], entries, `pack ${name}`);
  assert.equal(index.packs.size, model.packs.size);
}

// Each test three ways: held whole in memory, and spilled to sorted runs in scratch files after
// every 2 and every 97 records (each spill a new run; past 16 runs they merge into one).
for (const budget of [undefined, 2, 97]) describe(`ChunkIndex table${budget ? `, spilled to scratch runs every ${budget} records` : ''}`, () => {
  before(() => setIndexMemoryRecords(budget ?? Number.MAX_SAFE_INTEGER));
  after(() => setIndexMemoryRecords(undefined));

  it('holds 200,000 chunks across growth of its table and segments, and answers every one', () => {
    const index = new ChunkIndex();
    const all = ids(budget === 2 ? 20_000 : 200_000, 'many');
    for (let p = 0; p < all.length; p += 5000) index.addPack(pn(`p${p}`), entriesFor(all.slice(p, p + 5000)));
    assert.equal(index.size, all.length);
    for (const [i, id] of all.entries()) {
      const p = i - (i % 5000);
      assert.deepEqual(index.locate(id), { pack: pn(`p${p}`), offset: (i % 5000) * 1000, length: 1000 + (i % 5000), plainLength: 4096 + (i % 5000) });
      assert.ok(index.hasBytes(Buffer.from(id, 'hex')));
    }
    for (const id of ids(2000, 'absent')) {
      assert.equal(index.has(id), false);
      assert.equal(index.locate(id), undefined);
    }
    if (budget === undefined) sameList([...index.entries()].map(([id]) => id), all, 'entries in the order the chunks became known');
    else sameList([...index.entries()].map(([id]) => id).sort(), [...all].sort(), 'entries');
    const last = all.length - 5000;
    assert.deepEqual(index.packs.get(pn(`p${last}`))!.map((e) => e.id), all.slice(last));
    assert.equal(index.spilled.runs > 0, budget !== undefined, 'spilled only past a budget');
  });

  it('ids sharing their first 8 to 31 bytes (one table slot) are told apart, removed and added back', () => {
    const index = new ChunkIndex();
    const model = new MapIndex();
    // 16 hex = the 8 bytes the slot comes from and more; 62 hex = all but the last byte alike.
    const sameSlot = [...ids(3000, 'a', 'ab'.repeat(8)), ...Array.from({ length: 200 }, (_, i) => 'cd'.repeat(31) + i.toString(16).padStart(2, '0'))];
    // Home slot 1023 of the first table (byte 0 = ff, byte 1 & 3 = 3): the probe runs wrap to slot 0.
    const wrapping = ids(300, 'w', 'ffff');
    const all = [...sameSlot, ...wrapping];
    for (const x of [index, model]) {
      x.addPack(pn('one'), entriesFor(all.slice(0, 1700)));
      x.addPack(pn('two'), entriesFor(all.slice(1700)));
    }
    assertSame(index, model, all);
    for (const x of [index, model]) x.removePack(pn('one'));
    assertSame(index, model, all);
    for (const [i, id] of all.slice(0, 1700).entries()) for (const x of [index, model]) if (i % 3 === 0) x.addLoose(id, 77 + i);
    assertSame(index, model, all);
    for (const [i, id] of all.entries()) for (const x of [index, model]) if (i % 2 === 0) x.removeLoose(id);
    assertSame(index, model, all);
    for (const x of [index, model]) x.addPack(pn('one'), entriesFor(all.slice(0, 1700), 7));
    assertSame(index, model, all);
  });

  it('a chunk in two packs is read from the first; removing that pack forgets it; removeLoose leaves packed chunks', () => {
    const index = new ChunkIndex();
    const [a, b, c] = ids(3, 'dup');
    index.addPack(pn('A'), entriesFor([a!, b!]));
    index.addPack(pn('B'), entriesFor([b!, c!, c!]));
    index.addLoose(c!, 5);
    index.addLoose(a!, 5);
    assert.equal(index.size, 3);
    assert.deepEqual(index.locate(b!), { pack: pn('A'), offset: 1000, length: 1001, plainLength: 4097 });
    assert.deepEqual(index.packs.get(pn('B'))!.map((e) => e.id), [b, c, c], 'a pack lists its duplicates');
    index.removeLoose(a!);
    assert.deepEqual(index.locate(a!)?.pack, pn('A'));
    index.removePack(pn('A'));
    assert.equal(index.has(a!), false);
    assert.equal(index.has(b!), false, 'the copy in B is not looked for (prune reloads the index)');
    assert.deepEqual(index.locate(c!), { pack: pn('B'), offset: 1000, length: 1001, plainLength: 4097 });
    assert.deepEqual([...index.packs.keys()], [pn('B')]);
    index.addLoose(b!, 9);
    assert.deepEqual(index.locate(b!), { offset: 0, length: 9 });
    index.removeLoose(b!);
    assert.equal(index.has(b!), false);
    assert.equal(index.size, 1);
  });

  it('a pack added again under its name (listed by two index objects) is added once; after removal it may come back', () => {
    const index = new ChunkIndex();
    const model = new MapIndex();
    const [a, b, c] = ids(3, 'again');
    for (const x of [index, model]) {
      x.addPack(pn('P'), entriesFor([a!, b!]));
      x.addPack(pn('P'), entriesFor([b!, c!], 50));
    }
    assertSame(index, model, [a!, b!, c!]);
    assert.equal(index.packs.get(pn('P'))!.length, 2, 'the second listing added nothing');
    assert.equal(index.locate(c!), undefined);
    for (const x of [index, model]) x.removePack(pn('P'));
    assertSame(index, model, [a!, b!, c!]);
    assert.equal(index.size, 0);
    for (const x of [index, model]) x.addPack(pn('P'), entriesFor([b!, c!], 50));
    assertSame(index, model, [a!, b!, c!]);
    assert.deepEqual(index.locate(c!), { pack: pn('P'), offset: 1050, length: 1001, plainLength: 4097 });
  });

  it('matches the Map it replaced over 20,000 random operations', () => {
    const index = new ChunkIndex();
    const model = new MapIndex();
    const rand = prng(7);
    // Few slots' worth of prefixes, so probe runs are long and deletions move entries.
    const pool = [...ids(4000, 'r'), ...ids(1500, 's', '00'.repeat(4)), ...ids(1500, 't', 'ffff')];
    const pick = () => pool[Math.floor(rand() * pool.length)]!;
    let packNo = 0;
    for (let op = 0; op < 20_000; op++) {
      const r = rand();
      if (r < 0.05) {
        // Up to 160 entries: the records pass a 64 Ki segment, so removals span two.
        const list = Array.from({ length: Math.floor(rand() * 160) }, pick);
        const name = pn(`pk${packNo++}`);
        model.addPack(name, entriesFor(list, op));
        // Half as a repository's load adds them: from the stored pack index, ids never made hex.
        if (packNo % 2 === 0) index.addPack(name, entriesFor(list, op));
        else index.addPackIndex(name, checkPackIndex(encodePackIndex(entriesFor(list, op)), name));
      } else if (r < 0.07 && model.packs.size > 0) {
        const names = [...model.packs.keys()];
        const name = names[Math.floor(rand() * names.length)]!;
        for (const x of [index, model]) x.removePack(name);
      } else if (r < 0.5) {
        const id = pick();
        const size = Math.floor(rand() * 1e6) + 1;
        for (const x of [index, model]) x.addLoose(id, size);
      } else {
        const id = pick();
        for (const x of [index, model]) x.removeLoose(id);
      }
      if (op % 1000 === 999) assertSame(index, model, pool);
    }
    assertSame(index, model, pool);
  });

  it('addPackIndex (from the stored pack index) gives what addPack gives for the same entries, duplicates and repeats included', () => {
    const all = ids(70_000, 'view');
    const packs = Array.from({ length: 14 }, (_, p) => entriesFor([...all.slice(p * 5000, p * 5000 + 5000), ...all.slice(0, p * 10)], p));
    const byEntries = new ChunkIndex();
    const byView = new ChunkIndex();
    const model = new MapIndex();
    for (const [p, entries] of packs.entries()) {
      byEntries.addPack(pn(`p${p}`), entries);
      model.addPack(pn(`p${p}`), entries);
      byView.addPackIndex(pn(`p${p}`), checkPackIndex(encodePackIndex(entries), `p${p}`));
    }
    byView.addPackIndex(pn('p3'), checkPackIndex(encodePackIndex(entriesFor(all.slice(0, 5))), 'again'));
    const probe = [...all.filter((_, i) => i % 7 === 0), ...ids(500, 'absent')];
    assertSame(byView, model, probe);
    assertSame(byEntries, model, probe);
  });

  it('takes lowercase 64-hex ids only, and a bad pack entry leaves the index as it was', () => {
    const index = new ChunkIndex();
    const [a, b] = ids(2, 'bad');
    index.addPack(pn('ok'), entriesFor([a!]));
    assert.equal(index.has(a!.toUpperCase()), false);
    assert.equal(index.has(a!.slice(0, 62)), false);
    assert.equal(index.has(`${a!.slice(0, 62)}zz`), false);
    assert.equal(index.locate(`${a!}00`), undefined);
    assert.equal(index.hasBytes(Buffer.from(a!, 'hex').subarray(1)), false);
    assert.ok(index.hasBytes(Buffer.concat([Buffer.alloc(3), Buffer.from(a!, 'hex')]), 3));
    assert.throws(() => index.addPack(pn('broken'), [...entriesFor([b!]), { id: 'x'.repeat(64), offset: 0, length: 1, plainLength: 1 }]),
      (e: unknown) => isHvError(e, 'ERR_INTERNAL') && e.message.includes(`pack ${pn('broken')} entry 1`));
    assert.throws(() => index.addPack(pn('broken'), entriesFor([b!]).map((e) => ({ ...e, offset: 2 ** 32 }))),
      (e: unknown) => isHvError(e, 'ERR_INTERNAL') && e.message.includes('offset 4294967296'));
    assert.throws(() => index.addPack('broken', entriesFor([b!])), (e: unknown) => isHvError(e, 'ERR_INTERNAL') && e.message.includes('pack name "broken" is not 64 lowercase hex'));
    assert.throws(() => index.addLoose(b!, 2 ** 32), (e: unknown) => isHvError(e, 'ERR_CORRUPT') && e.message.includes(`<chunks/${b!}>`));
    assert.throws(() => index.addLoose('chunk', 1), (e: unknown) => isHvError(e, 'ERR_INTERNAL') && e.message.includes('chunk id chunk'));
    assert.equal(index.has(b!), false);
    assert.deepEqual([...index.packs.keys()], [pn('ok')]);
    assert.deepEqual([...index.entries()].map(([id]) => id), [a]);
    index.addPack(pn('next'), entriesFor([b!]));
    assert.deepEqual(new Set([...index.entries()].map(([id, loc]) => `${id} ${loc.pack}`)), new Set([`${a} ${pn('ok')}`, `${b} ${pn('next')}`]));
  });
});

describe('ChunkIndex scratch files', () => {
  let dir: string;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'hvb-cidx-scratch-')); });
  afterEach(() => {
    setIndexMemoryRecords(undefined);
    setScratchDir(undefined);
    rmSync(dir, { recursive: true, force: true });
  });

  it('a spill whose records all repeat chunks located earlier adds no run; lookups still find the first pack', () => {
    setScratchDir(dir);
    setIndexMemoryRecords(2);
    const index = new ChunkIndex();
    try {
      const [a, b] = ids(2, 'repeat');
      index.addPack(pn('first'), entriesFor([a!, b!]));
      assert.equal(index.spilled.runs, 1);
      index.addPack(pn('again'), entriesFor([b!, a!], 500));
      assert.equal(index.spilled.records, 4, 'both packs spilled');
      assert.equal(index.spilled.runs, 1, 'the second spill located nothing: no run for it');
      assert.equal(index.locate(a!)?.pack, pn('first'));
      assert.equal(index.locate(b!)?.pack, pn('first'));
      assert.equal(index.size, 2);
      assert.deepEqual(index.packs.get(pn('again'))!.map((e) => e.id), [b, a]);
    } finally {
      index.close();
    }
  });

  it('leave no file behind while in use, and hold a few bytes per chunk in memory instead of ~56', () => {
    setScratchDir(dir);
    setIndexMemoryRecords(4096);
    const index = new ChunkIndex();
    const all = ids(100_000, 'scratch');
    for (let p = 0; p < all.length; p += 1000) index.addPack(pn(`p${p}`), entriesFor(all.slice(p, p + 1000)));
    const { records, runs, memoryBytes } = index.spilled;
    assert.equal(records, 100_000, 'spilled after every fifth pack (a pack is never split)');
    assert.ok(runs >= 1 && runs <= 16, `${runs} runs`);
    assert.ok(memoryBytes < records * 8, `runs hold ${memoryBytes} bytes of memory for ${records} records`);
    assert.deepEqual(readdirSync(dir), [], 'scratch files are unlinked as soon as they are open');
    for (const id of all.filter((_, i) => i % 97 === 0)) assert.ok(index.has(id), id);
    for (const id of ids(1000, 'not-there')) assert.equal(index.has(id), false);
    index.close();
    assert.throws(() => index.has(all[0]!), (e: unknown) => isHvError(e, 'ERR_INTERNAL') && e.message.includes('after close'));
  });

  it('a scratch folder that cannot take them fails the spill with ERR_IO naming the folder and HVB_SCRATCH_DIR', () => {
    setScratchDir(join(dir, 'missing'));
    setIndexMemoryRecords(10);
    const index = new ChunkIndex();
    assert.throws(() => index.addPack(pn('p'), entriesFor(ids(10, 'x'))),
      (e: unknown) => isHvError(e, 'ERR_IO') && e.message.includes(join(dir, 'missing')) && e.message.includes('HVB_SCRATCH_DIR'));
  });
});

describe('ChunkIndex loaded from a repository', () => {
  let dir: string;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'hvb-cidx-')); });
  afterEach(() => { rmSync(dir, { recursive: true, force: true }); });

  it('prune deletes the loose chunks nothing references and keeps the rest; a chunks/ name that is no chunk id is not indexed nor deleted', async () => {
    const repo = await initRepository(join(dir, 'repo'));
    try {
      const [keep, gone, also] = ids(3, 'loose');
      for (const [i, name] of [keep!, gone!, also!, 'notachunk'].entries()) await repo.backend.save(undefined, { type: 'chunks', name }, Buffer.alloc(100 + i));
      const index = await repo.chunkIndex({ refresh: true });
      assert.deepEqual(new Set([...index.entries()].map(([id, loc]) => `${id} ${loc.length}`)), new Set([`${keep} 100`, `${gone} 101`, `${also} 102`]));
      const r = await pruneChunks(repo, new Set([keep!]));
      assert.equal(r.chunksTotal, 3);
      assert.equal(r.chunksRemoved, 2);
      assert.equal(r.bytesFreed, 101 + 102);
      const left: string[] = [];
      for await (const o of repo.backend.list(undefined, 'chunks')) left.push(o.name);
      assert.deepEqual(left.sort(), [keep, 'notachunk'].sort());
      assert.deepEqual(await repo.listChunkIds(), [keep]);
    } finally {
      await repo.close();
    }
  });

  it('a load that spilled spills what it still holds too and lets its memory go; lookups and later packs work as before', async () => {
    const repo = await initRepository(join(dir, 'repo'), { chunkSize: 65536 });
    try {
      // Random, so that each pack holds two or three chunks (their stored size fills it).
      const data = Array.from({ length: 30 }, () => randomBytes(65536));
      const w = repo.chunkWriter({ packSize: 3 * 65536 });
      for (const d of data) await w.submit(d);
      await w.flush();
      setIndexMemoryRecords(7);
      const index = await repo.chunkIndex({ reread: true });
      assert.ok(index.packs.size >= 10, `${index.packs.size} packs`);
      assert.equal(index.spilled.records, 30, 'all 30 records spilled, none left in memory (spills come at 7 or more)');
      assert.equal(index.size, 30);
      for (const d of data) assert.ok((await repo.loadChunk(repo.chunkId(d))).equals(d));
      const more = Array.from({ length: 3 }, () => randomBytes(65536));
      const w2 = repo.chunkWriter({ packSize: 3 * 65536 });
      for (const d of more) await w2.submit(d);
      await w2.flush();
      assert.equal(index.size, 33);
      for (const d of [...data, ...more]) assert.ok(index.has(repo.chunkId(d)));
    } finally {
      setIndexMemoryRecords(undefined);
      await repo.close();
    }
  });

  /** An index object listing `packs` stored as a backup would store it. */
  async function saveIndex(repo: Repository, label: string, packs: { name: string; entries: PackEntry[] }[]): Promise<void> {
    const name = createHash('sha256').update(`index/${label}`).digest('hex');
    await repo.backend.save(undefined, { type: 'index', name }, repo.codec.seal('index', encodeIndexObject(packs), name));
  }

  // A load appends records unlooked-up and, past its budget, finds each chunk's first record by
  // one sort of them all (buildFirstRun); below it, by lookups as it goes.
  for (const budget of [undefined, 2, 7, 97]) {
    it(`a load${budget ? ` spilled every ${budget} records` : ''} locates each chunk where it was listed first (in an object, across its packs; a table's chunks where the table has them) and knows every pack's entries`, async () => {
      const repo = await initRepository(join(dir, 'repo'));
      const model = new MapIndex();
      try {
        setIndexMemoryRecords(budget);
        setIndexTableRecords(5);
        // Objects share no chunk but a table's (the order a load finishes reading objects in
        // must not decide a location); packs of one object share some.
        const object = (label: string, shared: string[] = []) => {
          const own = ids(12, label);
          return [0, 1, 2].map((p) => ({ name: pn(`${label}.${p}`), entries: entriesFor([...own.slice(p * 3, p * 3 + 6), ...shared.slice(p * 2, p * 2 + 2)], p * 100_000) }));
        };
        const older = [object('old0'), object('old1')];
        const tabled = older.flatMap((packs) => packs.flatMap((p) => p.entries.map((e) => e.id)));
        for (const [o, packs] of older.entries()) {
          await saveIndex(repo, `old${o}`, packs);
          for (const p of packs) model.addPack(p.name, p.entries);
        }
        // A writer's load stores them as a table.
        const lock = await repo.lock({ exclusive: false, operation: 'test backup' });
        try {
          (await repo.chunkIndex({ refresh: true })).close();
        } finally {
          await lock.release();
        }
        // Newer ones: their own chunks, and chunks the older ones list (found where those do).
        const newer = [0, 1, 2].map((o) => object(`new${o}`, tabled.slice(o * 6, o * 6 + 6)));
        for (const [o, packs] of newer.entries()) await saveIndex(repo, `new${o}`, packs);
        for (const packs of newer) for (const p of packs) model.addPack(p.name, p.entries);
        const index = await ChunkIndex.load(repo.backend, repo.codec);
        try {
          assert.equal(index.table?.objects, 2, 'the table of the older objects is used');
          const records = newer.flat().reduce((a, p) => a + p.entries.length, 0);
          assert.equal(index.spilled.runs > 0, indexMemoryRecords() <= records, `spilled at a budget of ${indexMemoryRecords()} for ${records} records`);
          assert.equal(index.size, model.byId.size);
          sameList([...index.entries()].sort(byId), [...model.byId.entries()].sort(byId), 'entries');
          for (const id of [...model.byId.keys(), ...ids(20, 'absent')]) assert.deepEqual(index.locate(id), model.byId.get(id), `locate(${id})`);
          for (const packs of newer) for (const p of packs) sameList(index.packs.get(p.name) ?? [], p.entries, `pack ${p.name}`);
        } finally {
          index.close();
        }
      } finally {
        setIndexMemoryRecords(undefined);
        setIndexTableRecords(undefined);
        await repo.close();
      }
    });
  }

  it('prune leaves a packs/ file whose name is no pack name alone, saying so, even when it holds a readable pack', async () => {
    const repo = await initRepository(join(dir, 'repo'));
    try {
      // A real pack, then a copy of it under a name no pack has (a copy someone made).
      const w = repo.chunkWriter();
      await w.submit(Buffer.alloc(5000, 7));
      await w.flush();
      const [real] = [...(await repo.chunkIndex()).packs.keys()];
      const stored = await repo.backend.load(undefined, { type: 'packs', name: real! });
      await repo.backend.save(undefined, { type: 'packs', name: `${real}.copy` }, stored);
      const r = await pruneChunks(repo, new Set());
      assert.ok(r.warnings.some((w) => w.includes(`${real}.copy, which is not a pack name`)), r.warnings.join('\n'));
      const left: string[] = [];
      for await (const o of repo.backend.list(undefined, 'packs')) left.push(o.name);
      assert.deepEqual(left, [`${real}.copy`], 'the real pack (nothing references it) went; the copy stayed');
    } finally {
      await repo.close();
    }
  });
});