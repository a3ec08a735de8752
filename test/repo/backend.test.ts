import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalBackend } from '../../core/repo/backend-local.ts';
import { MemoryBackend } from '../../core/repo/backend-memory.ts';
import { DryRunBackend } from '../../core/repo/backend-dryrun.ts';
import { backendSuite } from './backend-suite.ts';
import { RetryBackend } from '../../core/repo/backend-retry.ts';
import { HvError, isHvError } from '../../core/errors.ts';
import type { Handle } from '../../core/repo/backend.ts';

backendSuite('local', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hvb-backend-'));
  return { backend: new LocalBackend(join(dir, 'repo')), cleanup: async () => rmSync(dir, { recursive: true, force: true }) };
});

backendSuite('memory', async () => ({ backend: new MemoryBackend(), cleanup: async () => {} }));

describe('LocalBackend layout', () => {
  let dir: string;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'hvb-local-')); });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('stores objects at the documented paths and leaves no temporary files', async () => {
    const b = new LocalBackend(dir);
    const id = randomBytes(32).toString('hex');
    await b.save(undefined, { type: 'config', name: 'config' }, Buffer.from('c'));
    await b.save(undefined, { type: 'chunks', name: id }, Buffer.from('chunk'));
    await b.save(undefined, { type: 'packs', name: id }, [Buffer.from('pa'), Buffer.from('ck')]);
    await b.save(undefined, { type: 'index', name: id }, Buffer.from('idx'));
    await b.save(undefined, { type: 'manifests', name: id }, Buffer.from('m'));
    await b.save(undefined, { type: 'locks', name: id }, Buffer.from('l1'));
    await b.save(undefined, { type: 'locks', name: id }, Buffer.from('l2'), { overwrite: true });
    assert.ok(statSync(join(dir, 'config')).isFile());
    assert.equal(statSync(join(dir, 'chunks', id.slice(0, 2), id)).size, 5);
    assert.equal(readFileSync(join(dir, 'packs', id.slice(0, 2), id), 'latin1'), 'pack');
    assert.equal(readFileSync(join(dir, 'index', id), 'latin1'), 'idx');
    assert.ok(existsSync(join(dir, 'manifests', id)));
    assert.deepEqual(readdirSync(join(dir, 'tmp')), []);
  });

  it('loads into a lent buffer that holds the object (a view of its start), and into a new one when it does not', async () => {
    const b = new LocalBackend(dir);
    const id = randomBytes(32).toString('hex');
    const data = randomBytes(5000);
    await b.save(undefined, { type: 'index', name: id }, data);
    const lent = Buffer.alloc(8192, 0xee);
    const got = await b.load(undefined, { type: 'index', name: id }, { into: lent });
    assert.ok(got.equals(data));
    assert.equal(got.buffer, lent.buffer, 'read into the lent buffer');
    assert.equal(got.byteOffset, lent.byteOffset);
    assert.equal(lent[5000], 0xee, 'nothing written past the object');
    const part = await b.load(undefined, { type: 'index', name: id }, { offset: 100, length: 50, into: lent });
    assert.ok(part.equals(data.subarray(100, 150)));
    const small = Buffer.alloc(4999);
    const whole = await b.load(undefined, { type: 'index', name: id }, { into: small });
    assert.ok(whole.equals(data));
    assert.notEqual(whole.buffer, small.buffer, 'too small: a buffer of its own');
  });

  it('removes only temporary files older than an hour', async () => {
    const b = new LocalBackend(dir);
    await b.save(undefined, { type: 'index', name: 'x' }, Buffer.from('x'));
    writeFileSync(join(dir, 'tmp', 'chunks-old'), 'garbage');
    writeFileSync(join(dir, 'tmp', 'chunks-new'), 'in progress');
    const old = (Date.now() - 2 * 3600_000) / 1000;
    utimesSync(join(dir, 'tmp', 'chunks-old'), old, old);
    assert.equal(await b.cleanStaleTemp(), 1);
    assert.deepEqual(readdirSync(join(dir, 'tmp')), ['chunks-new']);
  });
});

describe('DryRunBackend', () => {
  it('reads through, records saves and removals, and writes nothing', async () => {
    const inner = new MemoryBackend();
    await inner.save(undefined, { type: 'manifests', name: 'aa11' }, Buffer.from('kept'));
    const dry = new DryRunBackend(inner);
    await dry.save(undefined, { type: 'chunks', name: 'bb22' }, Buffer.alloc(123));
    await dry.remove(undefined, { type: 'manifests', name: 'aa11' });
    assert.equal((await dry.load(undefined, { type: 'manifests', name: 'aa11' })).toString(), 'kept');
    assert.deepEqual(dry.planned, [
      { op: 'save', type: 'chunks', name: 'bb22', size: 123 },
      { op: 'remove', type: 'manifests', name: 'aa11', size: 0 },
    ]);
    await assert.rejects(inner.stat(undefined, { type: 'chunks', name: 'bb22' }), (e) => inner.isNotFound(e));
  });
});

backendSuite('retry over memory', async () => ({ backend: new RetryBackend(new MemoryBackend(), { initialDelayMs: 1 }), cleanup: async () => {} }));

/** Fails the first `failures` calls of each kind with a transient error; can lose a save's reply. */
class FlakyBackend extends MemoryBackend {
  failures = new Map<string, number>();
  loseSaveReply = false;
  #count(op: string): void {
    const n = this.failures.get(op) ?? 0;
    if (n > 0) {
      this.failures.set(op, n - 1);
      throw new HvError('ERR_IO', `${op}: connection reset`);
    }
  }
  override async save(signal: AbortSignal | undefined, h: Handle, data: Buffer, opts?: { overwrite?: boolean }): Promise<void> {
    this.#count('save');
    await super.save(signal, h, data, opts);
    if (this.loseSaveReply) {
      this.loseSaveReply = false;
      throw new HvError('ERR_IO', 'save: reply lost');
    }
  }
  override async load(signal: AbortSignal | undefined, h: Handle, opts?: { offset?: number; length?: number }): Promise<Buffer> {
    this.#count('load');
    return super.load(signal, h, opts);
  }
}

describe('RetryBackend', () => {
  it('retries transient failures, not permanent ones, and treats a lost save reply as success', async () => {
    const flaky = new FlakyBackend();
    const retries: string[] = [];
    const b = new RetryBackend(flaky, { initialDelayMs: 1, attempts: 3, onRetry: (what) => retries.push(what) });
    const h: Handle = { type: 'chunks', name: 'abc123' };
    flaky.failures.set('save', 2);
    await b.save(undefined, h, Buffer.from('data'));
    assert.deepEqual(retries, ['save <chunks/abc123>', 'save <chunks/abc123>']);
    flaky.loseSaveReply = true;
    await b.save(undefined, { type: 'chunks', name: 'abc124' }, Buffer.from('x'));
    await assert.rejects(b.save(undefined, h, Buffer.from('other')), (e) => isHvError(e, 'ERR_ALREADY_EXISTS'));
    flaky.failures.set('load', 3);
    await assert.rejects(b.load(undefined, h), /connection reset/);
    retries.length = 0;
    await assert.rejects(b.load(undefined, { type: 'chunks', name: 'nope00' }), (e) => b.isNotFound(e));
    assert.deepEqual(retries, [], 'not found is permanent');
  });
});

describe('LocalBackend folders', () => {
  it('recreates a chunk folder removed behind its back', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hvb-local-'));
    try {
      const b = new LocalBackend(dir);
      await b.save(undefined, { type: 'chunks', name: 'ab01' }, Buffer.from('1'));
      rmSync(join(dir, 'chunks', 'ab'), { recursive: true });
      await b.save(undefined, { type: 'chunks', name: 'ab02' }, Buffer.from('2'));
      assert.equal((await b.load(undefined, { type: 'chunks', name: 'ab02' })).toString(), '2');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
