import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ChunkPool, closeIdlePools, keepIdlePools, type SealedBlob } from '../../core/repo/chunk-pool.ts';
import { plainCodec } from '../../core/repo/crypto/index.ts';
import { sealChunk } from '../../core/repo/chunk-codec.ts';

const MiB = 1024 * 1024;
/** A sealed chunk's stored bytes (raw chunks come as the format byte and a view of the run). */
const flat = (b: SealedBlob) => (Buffer.isBuffer(b) ? b : Buffer.concat(b));

describe('ChunkPool buffers', () => {
  let pool: ChunkPool;
  afterEach(async () => { await pool.close(); });

  for (const threads of [2, 0]) {
    it(`seals and opens raw and compressed chunks, and release() frees only what it handed out (threads: ${threads})`, async () => {
      pool = new ChunkPool(plainCodec(), { threads });
      const text = Buffer.from('INFO request completed\n'.repeat(MiB / 16)).subarray(0, MiB);
      const rand = randomBytes(MiB);
      for (const plain of [text, rand]) {
        const run = Buffer.from(new Uint8Array(plain).buffer);
        let back: Buffer | undefined;
        const h = await pool.hashRun(run, [{ offset: 0, length: run.length }], (b) => { back = b; });
        const sealedRun = await h.seal([0]);
        const copy = Buffer.from(flat(sealedRun.blobs[0]!));
        assert.ok(copy.length > 0);
        assert.equal(copy[0], plain === text ? 1 : 0, 'text is compressed, random data stored raw');
        // Sealed chunks are views of a lent buffer and of the run: release() leaves them alone,
        // and the run comes back whole, with the caller's bytes in it, once they are done with.
        for (const part of [sealedRun.blobs[0]!].flat()) pool.release(part);
        assert.ok(flat(sealedRun.blobs[0]!).equals(copy));
        if (threads > 0) assert.equal(back, undefined, 'the run stays lent while its sealed chunks may point into it');
        sealedRun.done();
        assert.ok(back && back.equals(plain), 'the run buffer is given back unchanged');
        const opened = await pool.open(h.ids[0]!, copy);
        assert.ok(opened.equals(plain));
        pool.release(opened);
        if (threads > 0) assert.equal(opened.length, 0);
        else assert.equal(opened.length, plain.length);
      }
      // Buffers the pool did not produce are never touched.
      const mine = Buffer.alloc(MiB, 7);
      pool.release(mine);
      assert.equal(mine.length, MiB);
      assert.equal(mine[MiB - 1], 7);
      // A run of several chunks: one id per slice, only the chosen ones sealed, the run given back on drop too.
      const run = Buffer.concat([text, rand, text]);
      const own = Buffer.from(new Uint8Array(run).buffer);
      let given = 0;
      const h = await pool.hashRun(own, [0, 1, 2].map((k) => ({ offset: k * MiB, length: MiB })), () => { given++; });
      assert.equal(h.ids[0], h.ids[2]);
      assert.notEqual(h.ids[0], h.ids[1]);
      const sealedMid = await h.seal([1]);
      assert.equal(sealedMid.blobs.length, 1);
      assert.ok((await pool.open(h.ids[1]!, Buffer.from(flat(sealedMid.blobs[0]!)))).equals(rand));
      sealedMid.done();
      assert.equal(given, 1);
      const again = await pool.hashRun(Buffer.from(new Uint8Array(text).buffer), [{ offset: 0, length: MiB }], () => { given++; });
      again.drop();
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(given, 2, 'drop gives the run back');
    });
  }

  it('keeps worker memory flat over many chunks (explicit frees, no scheduled collections)', async function () {
    this.timeout(60_000);
    pool = new ChunkPool(plainCodec(), { threads: 2 });
    const text = Buffer.from('line INFO request completed\n'.repeat(MiB / 16)).subarray(0, MiB);
    const h = await pool.hashRun(Buffer.from(new Uint8Array(text).buffer), [{ offset: 0, length: MiB }]);
    const sealed = Buffer.from(flat((await h.seal([0])).blobs[0]!));
    const run = async (n: number) => {
      for (let i = 0; i < n; i += 8) {
        const outs = await Promise.all(Array.from({ length: 8 }, () => pool.open(h.ids[0]!, Buffer.from(sealed))));
        for (const o of outs) pool.release(o);
      }
    };
    await run(64);
    const before = process.memoryUsage().rss;
    await run(512);
    const grown = (process.memoryUsage().rss - before) / MiB;
    // Measured: +2 MiB; +34 MiB before workers freed buffers (then collected on a schedule, now not needed).
    assert.ok(grown < 24, `RSS grew ${grown.toFixed(0)} MiB over 512 MiB of chunks`);
  });
});

describe('ChunkPool reuse in a long-lived process (acquire / retire / keepIdlePools)', () => {
  afterEach(() => keepIdlePools(0));

  it('keeps a retired pool with its started workers for the next acquire of the same codec only while asked to', async () => {
    const plain = plainCodec();
    keepIdlePools(2);
    const a = ChunkPool.acquire(plain, { threads: 2 });
    a.prestart();
    const text = Buffer.from('INFO kept worker\n'.repeat(MiB / 16)).subarray(0, MiB);
    const h = await a.hashRun(Buffer.from(new Uint8Array(text).buffer), [{ offset: 0, length: MiB }]);
    const s = await h.seal([0]);
    s.done();
    await a.retire();
    const b = ChunkPool.acquire(plain, { threads: 2, level: 3 });
    assert.equal(b, a, 'the idle pool is handed out again');
    assert.equal(b.level, 3, 'with the new caller\'s level');
    // Its workers still answer.
    const h2 = await b.hashRun(Buffer.from(new Uint8Array(text).buffer), [{ offset: 0, length: MiB }]);
    assert.equal(h2.ids[0], h.ids[0]);
    h2.drop();
    await new Promise((r) => setTimeout(r, 20));
    // Another thread count (or codec) is another pool.
    const c = ChunkPool.acquire(plain, { threads: 1 });
    assert.notEqual(c, b);
    await c.retire();
    // Not kept once the process stops asking: retire closes.
    keepIdlePools(0);
    await b.retire();
    const d = ChunkPool.acquire(plain, { threads: 2 });
    assert.notEqual(d, b);
    await assert.rejects(b.hashRun(Buffer.from(new Uint8Array(text).buffer), [{ offset: 0, length: MiB }]), /closed/);
    await d.close();
    // The pool kept for threads: 1 above: close it too.
    keepIdlePools(1);
    const kept = ChunkPool.acquire(plain, { threads: 1 });
    assert.equal(kept, c);
    // An idle pool closed by its holder is not handed out again.
    await kept.retire();
    await kept.close();
    const fresh = ChunkPool.acquire(plain, { threads: 1 });
    assert.notEqual(fresh, kept, 'a closed idle pool is skipped');
    await fresh.close();
  });

  it('closeIdlePools stops every kept pool and warm worker; the next acquire starts afresh', async () => {
    const plain = plainCodec();
    keepIdlePools(2);
    const text = Buffer.from('INFO released\n'.repeat(MiB / 14)).subarray(0, MiB);
    const a = ChunkPool.acquire(plain, { threads: 2 });
    a.prestart();
    (await a.hashRun(Buffer.from(new Uint8Array(text).buffer), [{ offset: 0, length: MiB }])).drop();
    await new Promise((r) => setTimeout(r, 20));
    await a.retire();
    ChunkPool.warmUp(1);
    assert.equal(await closeIdlePools(), 3, 'two kept workers and one warm one');
    assert.equal(ChunkPool.warmCount, 0);
    await assert.rejects(a.hashRun(Buffer.from(new Uint8Array(text).buffer), [{ offset: 0, length: MiB }]), /closed/);
    const b = ChunkPool.acquire(plain, { threads: 2 });
    try {
      assert.notEqual(b, a, 'nothing kept to hand out');
      const h = await b.hashRun(Buffer.from(new Uint8Array(text).buffer), [{ offset: 0, length: MiB }]);
      assert.equal(h.ids[0], plain.chunkId(text));
      h.drop();
      assert.equal(await closeIdlePools(), 0, 'a pool in use is not idle');
    } finally {
      await b.close();
    }
  });
});

describe('ChunkPool.warmUp (workers started before the codec exists)', () => {
  it('prestart(1) still adopts every warm worker (their start is paid already), and starts no others on demand', async () => {
    ChunkPool.warmUp(2);
    const pool = new ChunkPool(plainCodec(), { threads: 3 });
    try {
      pool.prestart(1);
      assert.equal(pool.workers, 2, 'both warm workers adopted');
      assert.equal(ChunkPool.warmCount, 0);
      const text = Buffer.from('INFO capped\n'.repeat(MiB / 12)).subarray(0, MiB);
      const runs = await Promise.all([0, 1, 2, 3].map(() => pool.hashRun(Buffer.from(new Uint8Array(text).buffer), [{ offset: 0, length: MiB }])));
      for (const r of runs) r.drop();
      assert.equal(pool.workers, 2, 'busy workers did not make the pool start a third');
      pool.prestart();
      assert.equal(pool.workers, 3);
    } finally {
      await pool.close();
    }
  });

  it('a pool adopts the warm workers, sends them its codec, and they hash with it', async () => {
    const { createEncryptedRepositoryKeys } = await import('../../core/repo/crypto/index.ts');
    const { codec } = await createEncryptedRepositoryKeys('warm', { kdf: { N: 2 ** 10, r: 8, p: 1 } });
    ChunkPool.warmUp(2);
    assert.equal(ChunkPool.warmCount, 2);
    ChunkPool.warmUp(2);
    assert.equal(ChunkPool.warmCount, 2, 'warming up again starts no more than asked');
    const pool = new ChunkPool(codec, { threads: 2 });
    try {
      pool.prestart();
      assert.equal(ChunkPool.warmCount, 0, 'both adopted');
      const text = Buffer.from('INFO warm worker\n'.repeat(MiB / 16)).subarray(0, MiB);
      const rand = randomBytes(MiB);
      const runs = await Promise.all([text, rand].map((b) => pool.hashRun(Buffer.from(new Uint8Array(b).buffer), [{ offset: 0, length: MiB }])));
      // The encrypted codec's keyed ids: a worker without the codec could not make them.
      assert.deepEqual(runs.map((r) => r.ids[0]), [codec.chunkId(text), codec.chunkId(rand)]);
      const sealed = await runs[0]!.seal([0]);
      assert.ok((await pool.open(runs[0]!.ids[0]!, Buffer.from(flat(sealed.blobs[0]!)))).equals(text));
      sealed.done();
      runs[1]!.drop();
    } finally {
      await pool.close();
    }
  });
});

describe('ChunkPool.openRange (raw chunks as views of the range)', () => {
  it('hands raw chunks out as views of one range buffer, freed with its last view, and a repeated release frees nothing early', async () => {
    const codec = plainCodec();
    const pool = new ChunkPool(codec, { threads: 1 });
    try {
      const plains = [randomBytes(64 * 1024), randomBytes(64 * 1024), Buffer.from('INFO text\n'.repeat(6554)).subarray(0, 64 * 1024), randomBytes(64 * 1024)];
      const stored = plains.map((p) => flat(sealChunk(codec, codec.chunkId(p), p)));
      const range = Buffer.concat(stored);
      let at = 0;
      const chunks = plains.map((p, k) => {
        const c = { id: codec.chunkId(p), offset: at, length: stored[k]!.length };
        at += stored[k]!.length;
        return c;
      });
      const out = await pool.openRange(Buffer.from(new Uint8Array(range).buffer), chunks);
      const got = out.map((o) => { assert.ok(Buffer.isBuffer(o), String(o)); return o as Buffer; });
      got.forEach((g, k) => assert.ok(g.equals(plains[k]!), `chunk ${k}`));
      const [a, b, text, d] = got as [Buffer, Buffer, Buffer, Buffer];
      assert.equal(a.buffer, b.buffer, 'raw chunks share the range buffer');
      assert.equal(a.buffer, d.buffer);
      assert.notEqual(text.buffer, a.buffer, 'a compressed chunk has a buffer of its own');
      pool.release(a);
      pool.release(a);
      pool.release(a);
      assert.ok(d.equals(plains[3]!), 'releasing one view again and again frees nothing the others use');
      pool.release(b);
      assert.ok(d.equals(plains[3]!));
      const kept = pool.own(d);
      assert.notEqual(kept.buffer, d.buffer, 'own() copies a view');
      assert.equal(d.buffer.byteLength, 0, 'the last view released (by own) freed the range');
      assert.ok(kept.equals(plains[3]!));
      pool.release(kept);
      pool.release(text);
    } finally {
      await pool.close();
    }
  });
});

describe('ChunkPool recycling (released buffers read and decode the next chunks)', () => {
  it('reads into a released range buffer and decompresses into a released chunk buffer; every released view reads as empty', async () => {
    const codec = plainCodec();
    const pool = new ChunkPool(codec, { threads: 1 });
    try {
      const text = (n: number, word: string) => Buffer.from(`${word} request completed\n`.repeat(n / 8)).subarray(0, n);
      // One range of a 200 KiB compressible chunk and a raw one, opened through readBuffer.
      const open = async (plains: Buffer[]) => {
        const stored = plains.map((p) => flat(sealChunk(codec, codec.chunkId(p), p)));
        const range = pool.readBuffer(stored.reduce((a, b) => a + b.length, 0));
        let at = 0;
        const chunks = plains.map((p, k) => {
          const c = { id: codec.chunkId(p), offset: at, length: stored[k]!.length, plain: p.length };
          at += stored[k]!.copy(range, at);
          return c;
        });
        return (await pool.openRange(range, chunks)).map((o) => { assert.ok(Buffer.isBuffer(o), String(o)); return o as Buffer; });
      };
      const first = [text(200 * 1024, 'INFO'), randomBytes(300 * 1024)];
      const got = await open(first);
      got.forEach((g, k) => assert.ok(g.equals(first[k]!), `chunk ${k}`));
      assert.deepEqual(pool.recycling, { keptBytes: 0, reused: 0 });
      for (const g of got) pool.release(g);
      for (const g of got) assert.equal(g.length, 0, 'a released view is detached, not left showing reused memory');
      const kept = pool.recycling.keptBytes;
      assert.ok(kept >= 200 * 1024 + 300 * 1024, `the decoded chunk and the range are kept (${kept} bytes)`);

      // A smaller compressible chunk (and a raw one) next: both buffers come from what was released.
      const second = [text(120 * 1024, 'WARN'), randomBytes(280 * 1024)];
      const again = await open(second);
      again.forEach((g, k) => assert.ok(g.equals(second[k]!), `chunk ${k} of the second range`));
      assert.equal(pool.recycling.reused, 2, 'the range buffer and the decode buffer were both used again');
      assert.equal(again[0]!.length, 120 * 1024);
      assert.equal(again[0]!.buffer.byteLength, 200 * 1024, 'decompressed into the released 200 KiB buffer');
      for (const g of again) pool.release(g);
    } finally {
      await pool.close();
    }
    assert.equal(pool.recycling.keptBytes, 0, 'close() lets the kept buffers go');
  });
});
