// readChunks reads chunks that lie together in a pack with one ranged read (coalescing): fewer
// reads, the same bytes in the same order, and a damaged chunk inside a range still reported
// by its id and pack.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isHvError } from '../../core/errors.ts';
import type { Backend, Handle, LoadOptions, ObjectReader } from '../../core/repo/backend.ts';
import { ForwardingBackend } from '../../core/repo/backend-forwarding.ts';
import { LocalBackend } from '../../core/repo/backend-local.ts';
import { MemoryBackend } from '../../core/repo/backend-memory.ts';
import { RANGE_BYTES, READERS_OPEN, Repository } from '../../core/repo/repository.ts';
import { flipChunkBit } from '../../core/repo/testing.ts';

const CHUNK = 64 * 1024;

/** Counts the reads of pack bytes, through readers and through ranged loads. */
class CountingBackend extends ForwardingBackend {
  reads: { pack: string; offset: number; length: number }[] = [];
  /** Readers opened, by pack. */
  opened = new Map<string, number>();
  constructor(inner: Backend) {
    super(inner);
    if (inner.openReader) {
      (this as { openReader?: Backend['openReader'] }).openReader = async (signal: AbortSignal | undefined, h: Handle): Promise<ObjectReader> => {
        const r = await inner.openReader!(signal, h);
        if (h.type === 'packs') this.opened.set(h.name, (this.opened.get(h.name) ?? 0) + 1);
        return {
          size: r.size,
          read: (offset, length) => {
            if (h.type === 'packs') this.reads.push({ pack: h.name, offset, length });
            return r.read(offset, length);
          },
          close: () => r.close(),
        };
      };
    }
  }

  override load(signal: AbortSignal | undefined, h: Handle, opts?: LoadOptions): Promise<Buffer> {
    if (h.type === 'packs') this.reads.push({ pack: h.name, offset: opts?.offset ?? 0, length: opts?.length ?? -1 });
    return super.load(signal, h, opts);
  }
}

/**
 * Chunks that all differ: compressible text, and every fifth one incompressible (stored raw,
 * so its plain bytes would be a view of the range if nothing copied them out).
 */
function chunks(n: number): Buffer[] {
  return Array.from({ length: n }, (_, i) => {
    const seed = createHash('sha256').update(`chunk ${i}`).digest('hex');
    if (i % 5 === 2) return createHash('shake256', { outputLength: CHUNK }).update(seed).digest();
    return Buffer.from(`${i} ${seed} `.repeat(CHUNK)).subarray(0, CHUNK);
  });
}

/** Store `data` as one run, as a backup does with each read: its chunks land in its pack in order. */
async function store(repo: Repository, data: Buffer[]): Promise<string[]> {
  const w = repo.chunkWriter();
  const run = Buffer.concat(data);
  const { done } = await w.submitRun(run, data.map((d, i) => ({ offset: i * CHUNK, length: d.length })));
  await w.flush();
  return (await done).map((r) => r.id);
}

/** A new local repository in `path` holding `data` (store()), with `damage` done to it before it is closed. */
async function newStore(path: string, data: Buffer[], damage?: (repo: Repository, ids: string[]) => Promise<void>): Promise<{ local: LocalBackend; ids: string[] }> {
  const local = new LocalBackend(path);
  const init = await Repository.init(local, { chunkSize: CHUNK });
  try {
    const ids = await store(init, data);
    await damage?.(init, ids);
    return { local, ids };
  } finally {
    await init.close();
  }
}

async function readAll(repo: Repository, ids: string[], aheadBytes?: number): Promise<{ id: string; data: Buffer }[]> {
  const out: { id: string; data: Buffer }[] = [];
  // Copied: the pool may free what it handed out once released.
  for await (const c of repo.readChunks(ids, { aheadBytes })) out.push({ id: c.id, data: Buffer.from(c.data) });
  return out;
}

for (const threads of [0, 2]) {
  describe(`readChunks coalescing (threads: ${threads})`, () => {
    let dir: string;
    beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'hvb-ranges-')); });
    afterEach(() => rmSync(dir, { recursive: true, force: true }));

    it('reads adjacent chunks of a pack with far fewer reads, byte-identical and in order', async () => {
      const data = chunks(48);
      const { local, ids } = await newStore(join(dir, 'r'), data);
      const counting = new CountingBackend(local);
      const repo = await Repository.open(counting, { threads });
      try {
        const got = await readAll(repo, ids);
        assert.deepEqual(got.map((c) => c.id), ids);
        got.forEach((c, i) => assert.ok(c.data.equals(data[i]!), `chunk ${i} differs`));
        const index = await repo.chunkIndex();
        const packs = new Set(ids.map((id) => index.locate(id)!.pack));
        const stored = ids.reduce((a, id) => a + index.locate(id)!.length, 0);
        // One read per pack, or per RANGE_BYTES of it: 48 chunks, a handful of reads.
        assert.ok(counting.reads.length <= packs.size + Math.ceil(stored / RANGE_BYTES), `${counting.reads.length} reads for ${ids.length} chunks in ${packs.size} packs: ${JSON.stringify(counting.reads)}`);
        assert.ok(counting.reads.length * 8 <= ids.length, `${counting.reads.length} reads for ${ids.length} chunks`);
      } finally {
        await repo.close();
      }
    });

    it('reads chunks asked for out of pack order, twice, or with gaps, byte-identical and in order', async () => {
      const data = chunks(24);
      const mem = new MemoryBackend();
      const stored = await store(await Repository.init(mem, { chunkSize: CHUNK }), data);
      const counting = new CountingBackend(mem);
      const repo = await Repository.open(counting, { threads });
      try {
        // Backwards, a chunk twice in a row, every third chunk (gaps), then back to the start.
        const order = [5, 4, 3, 3, 0, 1, 1, 2, 9, 12, 15, 18, 21, 23, 0, 22, 7];
        const got = await readAll(repo, order.map((i) => stored[i]!), 2 * CHUNK);
        assert.deepEqual(got.map((c) => c.id), order.map((i) => stored[i]!));
        got.forEach((c, k) => assert.ok(c.data.equals(data[order[k]!]!), `position ${k} (chunk ${order[k]}) differs`));
        // Through ranged loads (this backend has no readers), fewer than one per chunk.
        assert.ok(counting.reads.length > 0 && counting.reads.length < order.length, `${counting.reads.length} reads`);
      } finally {
        await repo.close();
      }
    });

    it('reports a corrupt chunk inside a coalesced range by its id and pack, after the chunks before it', async () => {
      const data = chunks(16);
      const { local, ids } = await newStore(join(dir, 'r'), data, (r, ids) => flipChunkBit(r, ids[7]!));
      const counting = new CountingBackend(local);
      const repo = await Repository.open(counting, { threads });
      const got: Buffer[] = [];
      try {
        await assert.rejects(async () => {
          for await (const c of repo.readChunks(ids)) got.push(Buffer.from(c.data));
        }, (err: unknown) => {
          assert.ok(isHvError(err, 'ERR_CORRUPT'), String(err));
          assert.equal(err.target, `<chunks/${ids[7]}>`);
          const pack = counting.reads[0]!.pack;
          assert.match(err.message, new RegExp(`<chunks/${ids[7]}>.*<packs/${pack}>`));
          assert.deepEqual(err.data, { chunk: ids[7], pack });
          return true;
        });
        assert.equal(got.length, 7);
        got.forEach((b, i) => assert.ok(b.equals(data[i]!), `chunk ${i} differs`));
        // The damaged chunk was read inside a range with its neighbours, not alone.
        const index = await repo.chunkIndex();
        const bad = index.locate(ids[7]!)!;
        assert.ok(counting.reads.some((r) => r.offset < bad.offset && r.offset + r.length > bad.offset + bad.length), JSON.stringify(counting.reads));
        assert.ok(counting.reads.length <= 2, `${counting.reads.length} reads`);
      } finally {
        await repo.close();
      }
    });

    it('goes on past damaged chunks with readChunksSettled, each error in its place', async () => {
      const data = chunks(16);
      const { local, ids } = await newStore(join(dir, 'r'), data, async (r, ids) => {
        await flipChunkBit(r, ids[3]!);
        await flipChunkBit(r, ids[9]!);
      });
      const repo = await Repository.open(local, { threads });
      try {
        const got: { id: string; data?: Buffer; code?: string; target?: string }[] = [];
        for await (const c of repo.readChunksSettled(ids)) got.push(c.error ? { id: c.id, code: c.error.code, target: c.error.target } : { id: c.id, data: Buffer.from(c.data) });
        assert.deepEqual(got.map((c) => c.id), ids);
        got.forEach((c, i) => {
          if (i === 3 || i === 9) assert.deepEqual({ code: c.code, target: c.target, data: c.data }, { code: 'ERR_CORRUPT', target: `<chunks/${ids[i]}>`, data: undefined });
          else assert.ok(c.data?.equals(data[i]!), `chunk ${i} differs`);
        });
      } finally {
        await repo.close();
      }
    });

    it('reads a chunk asked for again once with keepRepeats (within its budget), every use byte-identical after the one before is released', async () => {
      const data = chunks(80);
      const { local, ids } = await newStore(join(dir, 'r'), data);
      // 2 again at once; 0, 5 and 70 again far behind (after more than one range of other
      // chunks), 70 between 68 and 71, asked for once each (a kept chunk ends a range).
      const rest = Array.from({ length: 77 }, (_, i) => i + 3).filter((i) => i !== 68 && i !== 71);
      const order = [2, 1, 2, 0, ...rest, 0, 5, 68, 70, 71, 0];
      for (const keep of [64 * CHUNK, CHUNK]) {
        const counting = new CountingBackend(local);
        const repo = await Repository.open(counting, { threads });
        try {
          const got: { id: string; data: Buffer }[] = [];
          for await (const c of repo.readChunks(order.map((i) => ids[i]!), { keepRepeats: keep, aheadBytes: 3 * CHUNK })) {
            got.push({ id: c.id, data: Buffer.from(c.data) });
            // As restore does: the buffer is freed at once, so no later use may share it.
            repo.pool.release(c.data);
          }
          assert.deepEqual(got.map((c) => c.id), order.map((i) => ids[i]!));
          got.forEach((c, k) => assert.ok(c.data.equals(data[order[k]!]!), `keep ${keep}: position ${k} (chunk ${order[k]}) differs`));
          const index = await repo.chunkIndex();
          const readTimes = ids.map((id) => {
            const loc = index.locate(id)!;
            return counting.reads.filter((r) => r.offset <= loc.offset && r.offset + r.length >= loc.offset + loc.length).length;
          });
          // With room for every repeat each repeated chunk is read once (68 and 71 are also read
          // through as gaps of the first pass); with room for one chunk, 2 is kept, then (its
          // room given back) 0, so 5 and 70, asked for again meanwhile, are read twice.
          const repeated = [0, 2, 5, 70].map((i) => readTimes[i]);
          assert.deepEqual(repeated, keep > CHUNK ? [1, 1, 1, 1] : [1, 1, 2, 2], JSON.stringify(counting.reads));
        } finally {
          await repo.close();
        }
      }
    });

    it('reads chunks that alternate between two packs with one range per pack, still in the order asked for', async () => {
      const data = chunks(16);
      const local = new LocalBackend(join(dir, 'r'));
      const init = await Repository.init(local, { chunkSize: CHUNK });
      let a: string[], b: string[];
      try {
        a = await store(init, data.slice(0, 8));
        b = await store(init, data.slice(8));
      } finally {
        await init.close();
      }
      const counting = new CountingBackend(local);
      const repo = await Repository.open(counting, { threads });
      try {
        // A0 B0 A1 B1 …: as a split slice's earlier chunk and its new piece alternate.
        const order = a.flatMap((id, k) => [id, b[k]!]);
        const got = await readAll(repo, order, 64 * CHUNK);
        assert.deepEqual(got.map((c) => c.id), order);
        got.forEach((c, i) => assert.ok(c.data.equals(data[(i >> 1) + (i & 1 ? 8 : 0)]!), `chunk ${i} differs`));
        assert.equal(counting.reads.length, 2, `one read per pack: ${JSON.stringify(counting.reads)}`);
      } finally {
        await repo.close();
      }
    });

    it('opens each pack once when chunks of many packs interleave (a point after several incrementals)', async () => {
      const packs = 12;
      const data = chunks(packs * 3);
      const local = new LocalBackend(join(dir, 'r'));
      const init = await Repository.init(local, { chunkSize: CHUNK });
      const ids: string[][] = [];
      try {
        // One pack per store(): pack p holds chunks 3p..3p+2.
        for (let p = 0; p < packs; p++) ids.push(await store(init, data.slice(3 * p, 3 * p + 3)));
      } finally {
        await init.close();
      }
      assert.ok(packs < READERS_OPEN, 'the packs fit in the open readers');
      const counting = new CountingBackend(local);
      const repo = await Repository.open(counting, { threads });
      try {
        // Round robin over the packs, three times: every read in a pack other than the last one's.
        const order = [0, 1, 2].flatMap((k) => ids.map((inPack) => inPack[k]!));
        const got = await readAll(repo, order, CHUNK);
        assert.deepEqual(got.map((c) => c.id), order);
        got.forEach((c, i) => assert.ok(c.data.equals(data[3 * (i % packs) + Math.floor(i / packs)]!), `chunk ${i} differs`));
        assert.equal(counting.opened.size, packs);
        assert.deepEqual([...counting.opened.values()].filter((n) => n !== 1), [], 'no pack opened twice');
      } finally {
        await repo.close();
      }
    });

    it('names the chunk when its pack is gone, reading chunk by chunk after the range fails', async () => {
      const data = chunks(8);
      let pack!: string;
      const { local, ids } = await newStore(join(dir, 'r'), data, async (r, ids) => { pack = (await r.chunkIndex()).locate(ids[0]!)!.pack!; });
      await local.remove(undefined, { type: 'packs', name: pack });
      const repo = await Repository.open(local, { threads });
      try {
        await assert.rejects(async () => {
          for await (const c of repo.readChunks(ids)) void c;
        }, (err: unknown) => isHvError(err, 'ERR_NOT_FOUND') && err.target === `<chunks/${ids[0]}>` && err.message.includes(`<packs/${pack}>`));
      } finally {
        await repo.close();
      }
    });
  });
}
