// The one test suite every Backend passes (after restic's backend/test/suite.go).
// Local and memory run it now; S3 must pass it unchanged.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { isHvError } from '../../core/errors.ts';
import type { Backend, FileType, Handle } from '../../core/repo/backend.ts';

export interface BackendFixture {
  backend: Backend;
  cleanup(): Promise<void>;
}

const TYPES: FileType[] = ['keys', 'locks', 'chunks', 'packs', 'manifests', 'index', 'catalog', 'tables'];

function hexName(): string {
  return randomBytes(32).toString('hex');
}

/** list()'s names and sizes; checks that listNames() gives the same names. */
async function names(b: Backend, type: FileType): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for await (const o of b.list(undefined, type)) out.set(o.name, o.size);
  const only: string[] = [];
  for await (const n of b.listNames(undefined, type)) only.push(n);
  assert.deepEqual(only.sort(), [...out.keys()].sort(), `listNames(${type}) lists what list(${type}) does`);
  return out;
}

async function rejectsWith(p: Promise<unknown>, check: (err: unknown) => boolean, what: string): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    assert.ok(check(err), `${what}: unexpected error ${(err as Error)?.stack ?? String(err)}`);
    return err;
  }
  assert.fail(`${what}: expected a rejection`);
}

export function backendSuite(name: string, make: () => Promise<BackendFixture>): void {
  describe(`backend suite: ${name}`, () => {
    let fx: BackendFixture;
    let b: Backend;
    beforeEach(async () => {
      fx = await make();
      b = fx.backend;
    });
    afterEach(async () => {
      await b.close();
      await fx.cleanup();
    });

    it('saves and loads every object type byte for byte, including empty objects', async () => {
      const config = Buffer.from('{"version":1}');
      await b.save(undefined, { type: 'config', name: 'config' }, config);
      assert.deepEqual(await b.load(undefined, { type: 'config', name: 'config' }), config);
      for (const type of TYPES) {
        const h: Handle = { type, name: hexName() };
        const data = randomBytes(1000 + Math.floor(Math.random() * 5000));
        await b.save(undefined, h, data);
        assert.deepEqual(await b.load(undefined, h), data, type);
        assert.equal((await b.stat(undefined, h)).size, data.length);
      }
      const empty: Handle = { type: 'index', name: 'empty' };
      await b.save(undefined, empty, Buffer.alloc(0));
      assert.equal((await b.load(undefined, empty)).length, 0);
    });

    it('keeps what it stored when the caller reuses its buffer afterwards', async () => {
      const h: Handle = { type: 'chunks', name: hexName() };
      const data = Buffer.alloc(4096, 7);
      await b.save(undefined, h, data);
      data.fill(9);
      assert.ok((await b.load(undefined, h)).every((x) => x === 7));
    });

    it('refuses a create-only save of an existing object with ERR_ALREADY_EXISTS and keeps the old bytes', async () => {
      const h: Handle = { type: 'manifests', name: hexName() };
      await b.save(undefined, h, Buffer.from('first'));
      const err = await rejectsWith(b.save(undefined, h, Buffer.from('second')), (e) => isHvError(e, 'ERR_ALREADY_EXISTS'), 'second save');
      assert.match((err as Error).message, new RegExp(h.name));
      assert.equal((await b.load(undefined, h)).toString(), 'first');
    });

    it('openWriter (where a backend has it): nothing is visible before commit, abort leaves nothing, commit is create-only', async function () {
      if (!b.openWriter) {
        assert.equal(typeof (b as { openWriter?: unknown }).openWriter, 'undefined');
        return;
      }
      const h: Handle = { type: 'tables', name: hexName() };
      const parts = [randomBytes(100_000), randomBytes(3), Buffer.alloc(0), randomBytes(70_000)];
      const w = await b.openWriter(undefined, h);
      for (const p of parts) await w.write(p);
      await rejectsWith(b.stat(undefined, h), (e) => b.isNotFound(e), 'stat before commit');
      assert.equal((await names(b, 'tables')).size, 0, 'nothing listed before commit');
      await w.commit();
      assert.ok((await b.load(undefined, h)).equals(Buffer.concat(parts)));
      const aborted: Handle = { type: 'tables', name: hexName() };
      const a = await b.openWriter(undefined, aborted);
      await a.write(randomBytes(10));
      await a.abort();
      await rejectsWith(b.stat(undefined, aborted), (e) => b.isNotFound(e), 'stat after abort');
      const again = await b.openWriter(undefined, h);
      await again.write(Buffer.from('other'));
      await rejectsWith(again.commit(), (e) => isHvError(e, 'ERR_ALREADY_EXISTS'), 'commit over an existing object');
      assert.ok((await b.load(undefined, h)).equals(Buffer.concat(parts)), 'the first object kept');
      assert.deepEqual([...(await names(b, 'tables')).keys()], [h.name]);
    });

    it('lets exactly one of many concurrent create-only saves of one name win', async () => {
      const h: Handle = { type: 'locks', name: hexName() };
      const results = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => b.save(undefined, h, Buffer.from(`writer ${i}`))));
      const won = results.filter((r) => r.status === 'fulfilled');
      assert.equal(won.length, 1);
      for (const r of results) if (r.status === 'rejected') assert.ok(isHvError(r.reason, 'ERR_ALREADY_EXISTS'), String(r.reason));
      assert.match((await b.load(undefined, h)).toString(), /^writer \d$/);
    });

    it('replaces an object with overwrite', async () => {
      const h: Handle = { type: 'locks', name: hexName() };
      await b.save(undefined, h, Buffer.from('old contents'));
      await b.save(undefined, h, Buffer.from('new'), { overwrite: true });
      assert.equal((await b.load(undefined, h)).toString(), 'new');
      assert.equal((await b.stat(undefined, h)).size, 3);
    });

    it('stores parts back to back as one object (a pack from its blobs) and reads ranges of it', async () => {
      const parts = [randomBytes(3000), Buffer.alloc(0), randomBytes(1), randomBytes(70_000)];
      const h: Handle = { type: 'packs', name: hexName() };
      await b.save(undefined, h, parts);
      const whole = Buffer.concat(parts);
      assert.deepEqual(await b.load(undefined, h), whole);
      assert.equal((await b.stat(undefined, h)).size, whole.length);
      assert.deepEqual(await b.load(undefined, h, { offset: 3000, length: 1 }), parts[2]);
      assert.deepEqual(await b.load(undefined, h, { offset: 3001, length: 70_000 }), parts[3]);
      await rejectsWith(b.save(undefined, h, [Buffer.from('other')]), (e) => isHvError(e, 'ERR_ALREADY_EXISTS'), 'second save of a pack');
      assert.deepEqual(await b.load(undefined, h), whole);
    });

    it('reads byte ranges and refuses ranges beyond the end', async () => {
      const h: Handle = { type: 'chunks', name: hexName() };
      const data = randomBytes(10000);
      await b.save(undefined, h, data);
      assert.deepEqual(await b.load(undefined, h, { offset: 100, length: 50 }), data.subarray(100, 150));
      assert.deepEqual(await b.load(undefined, h, { offset: 9000 }), data.subarray(9000));
      assert.deepEqual(await b.load(undefined, h, { length: 10 }), data.subarray(0, 10));
      assert.equal((await b.load(undefined, h, { offset: 10000, length: 0 })).length, 0);
      await rejectsWith(b.load(undefined, h, { offset: 9990, length: 20 }), (e) => isHvError(e, 'ERR_INVALID_ARGUMENT'), 'range past end');
      await rejectsWith(b.load(undefined, h, { offset: -1 }), (e) => isHvError(e, 'ERR_INVALID_ARGUMENT'), 'negative offset');
    });

    it('reports missing objects through isNotFound on load and stat, and removes idempotently', async () => {
      const h: Handle = { type: 'manifests', name: hexName() };
      const err = await rejectsWith(b.load(undefined, h), (e) => b.isNotFound(e), 'load missing');
      assert.ok(b.isPermanent(err));
      assert.equal(b.isReadOnly(err), false, 'a missing object says nothing of the store');
      await rejectsWith(b.stat(undefined, h), (e) => b.isNotFound(e), 'stat missing');
      await b.remove(undefined, h);
      await b.save(undefined, h, Buffer.from('x'));
      await b.remove(undefined, h);
      await rejectsWith(b.load(undefined, h), (e) => b.isNotFound(e), 'load removed');
      assert.ok(!b.isNotFound(new Error('other')));
    });

    it('lists each type separately with sizes, chunks and packs across fan-out folders included', async () => {
      const chunks = new Map<string, number>();
      const packs = new Map<string, number>();
      for (let i = 0; i < 40; i++) {
        const n = hexName();
        chunks.set(n, i + 1);
        await b.save(undefined, { type: 'chunks', name: n }, Buffer.alloc(i + 1));
        if (i % 4 === 0) {
          const p = hexName();
          packs.set(p, i + 2);
          await b.save(undefined, { type: 'packs', name: p }, Buffer.alloc(i + 2));
        }
      }
      const m = hexName();
      await b.save(undefined, { type: 'manifests', name: m }, Buffer.from('m'));
      assert.deepEqual(await names(b, 'chunks'), chunks);
      assert.deepEqual(await names(b, 'packs'), packs);
      assert.deepEqual(await names(b, 'manifests'), new Map([[m, 1]]));
      assert.equal((await names(b, 'keys')).size, 0);
      await b.save(undefined, { type: 'config', name: 'config' }, Buffer.from('{}'));
      assert.deepEqual(await names(b, 'config'), new Map([['config', 2]]));
    });

    it('refuses names that could escape their folder or differ only in case', async () => {
      for (const name of ['../config', 'a/b', 'A1B2C3', '', '.hidden', 'x'.repeat(200), 'ab\\cd']) {
        await rejectsWith(b.save(undefined, { type: 'index', name }, Buffer.from('x')), (e) => isHvError(e, 'ERR_INVALID_ARGUMENT'), `name ${JSON.stringify(name)}`);
      }
      await rejectsWith(b.save(undefined, { type: 'config', name: 'other' }, Buffer.from('x')), (e) => isHvError(e, 'ERR_INVALID_ARGUMENT'), 'config name');
      await rejectsWith(b.load(undefined, { type: 'nope' as FileType, name: 'abc' }), (e) => isHvError(e, 'ERR_INVALID_ARGUMENT'), 'type');
    });

    it('stops with ERR_CANCELLED when the signal is already aborted', async () => {
      const signal = AbortSignal.abort();
      const h: Handle = { type: 'chunks', name: hexName() };
      await rejectsWith(b.save(signal, h, Buffer.from('x')), (e) => isHvError(e, 'ERR_CANCELLED'), 'save');
      await rejectsWith(b.load(signal, h), (e) => isHvError(e, 'ERR_CANCELLED'), 'load');
      await rejectsWith(b.remove(signal, h), (e) => isHvError(e, 'ERR_CANCELLED'), 'remove');
      await rejectsWith(b.stat(undefined, h), (e) => b.isNotFound(e), 'nothing was saved');
    });
  });
}
