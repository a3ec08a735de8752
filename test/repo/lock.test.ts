import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import sinon from 'sinon';
import { isHvError } from '../../core/errors.ts';
import { LocalBackend } from '../../core/repo/backend-local.ts';
import { MemoryBackend } from '../../core/repo/backend-memory.ts';
import { encodeLock, isStale, LOCK_STALE_MS, type LockInfo } from '../../core/repo/lock.ts';
import { Repository } from '../../core/repo/repository.ts';

function locked(...mentions: string[]) {
  return (err: unknown) => {
    assert.ok(isHvError(err, 'ERR_LOCKED'), String(err));
    for (const m of mentions) assert.ok(err.message.includes(m), `"${err.message}" should mention ${m}`);
    return true;
  };
}

async function lockNames(b: MemoryBackend): Promise<string[]> {
  const out: string[] = [];
  for await (const o of b.list(undefined, 'locks')) out.push(o.name);
  return out.sort();
}

describe('Repository locks', () => {
  let backend: MemoryBackend;
  let repo: Repository;
  beforeEach(async () => {
    backend = new MemoryBackend('mem://locks');
    repo = await Repository.init(backend, { chunkSize: 65536 });
  });
  afterEach(async () => { await repo.close(); });

  it('lets shared locks coexist and removes them on release', async () => {
    const a = await repo.lock({ exclusive: false, operation: 'backup web01' });
    const b = await repo.lock({ exclusive: false, operation: 'backup db01' });
    assert.equal((await lockNames(backend)).length, 2);
    await a.release();
    await b.release();
    await b.release();
    assert.deepEqual(await lockNames(backend), []);
  });

  it('makes an exclusive lock conflict both ways, naming host, pid, time and operation', async () => {
    const shared = await repo.lock({ exclusive: false, operation: 'backup web01' });
    await assert.rejects(repo.lock({ exclusive: true, operation: 'gc' }), locked('mem://locks', `host ${hostname()}`, `pid ${process.pid}`, shared.info.time, "'backup web01'"));
    assert.equal((await lockNames(backend)).length, 1, 'the refused lock backed out');
    await shared.release();
    const ex = await repo.lock({ exclusive: true, operation: 'gc' });
    await assert.rejects(repo.lock({ exclusive: false, operation: 'backup' }), locked("'gc'", 'exclusive'));
    await assert.rejects(repo.lock({ exclusive: true, operation: 'delete' }), locked("'gc'"));
    await ex.release();
  });

  it('recognises stale locks (old, or a dead process on this host) and breaks only those without force', async () => {
    const old: LockInfo = { hostname: 'elsewhere', pid: 1, time: new Date(Date.now() - LOCK_STALE_MS - 60_000).toISOString(), exclusive: true, operation: 'gc' };
    const dead: LockInfo = { hostname: hostname(), pid: 2 ** 22 + 12345, time: new Date().toISOString(), exclusive: true, operation: 'delete' };
    const live: LockInfo = { hostname: 'other-host', pid: 4242, time: new Date().toISOString(), exclusive: false, operation: 'backup' };
    assert.ok(isStale(old) && isStale(dead) && !isStale(live));
    await backend.save(undefined, { type: 'locks', name: 'a1' }, encodeLock(old));
    await backend.save(undefined, { type: 'locks', name: 'b2' }, encodeLock(dead));
    await backend.save(undefined, { type: 'locks', name: 'c3' }, encodeLock(live));
    // Stale exclusive locks do not block; the live shared one does block an exclusive lock.
    const shared = await repo.lock({ exclusive: false, operation: 'backup' });
    await shared.release();
    await assert.rejects(repo.lock({ exclusive: true, operation: 'gc' }), locked('other-host', 'pid 4242'));
    const removed = await repo.breakStaleLocks();
    assert.deepEqual(removed.map((l) => l.name).sort(), ['a1', 'b2']);
    assert.deepEqual(await lockNames(backend), ['c3']);
    const forced = await repo.breakStaleLocks({ force: true });
    assert.deepEqual(forced.map((l) => l.name), ['c3']);
    const ex = await repo.lock({ exclusive: true, operation: 'gc' });
    await ex.release();
  });

  it('refreshes a held lock so it never goes stale while work runs, and notices when it is broken', async () => {
    const clock = (await import('sinon')).default.useFakeTimers({ now: Date.now(), toFake: ['setInterval', 'clearInterval', 'Date'] });
    try {
      const held = await repo.lock({ exclusive: false, operation: 'backup' });
      const first = held.info.time;
      clock.tick(45 * 60 * 1000);
      await clock.tickAsync(0);
      const stored = JSON.parse((await backend.load(undefined, { type: 'locks', name: held.name })).toString()) as LockInfo;
      assert.notEqual(stored.time, first);
      assert.ok(!isStale(stored, Date.now()));
      held.check();
      // Someone forces the lock away: the next refresh notices and does not put it back.
      await repo.breakStaleLocks({ force: true });
      clock.tick(60 * 1000);
      await clock.tickAsync(0);
      assert.throws(() => held.check(), locked("lost the lock", "'backup'", 'removed'));
      assert.deepEqual(await lockNames(backend), []);
      await held.release();
    } finally {
      clock.restore();
    }
  });
});

describe('Repository locks on a local folder', () => {
  let dir: string;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'hvb-lockfs-')); });
  afterEach(() => { sinon.restore(); rmSync(dir, { recursive: true, force: true }); });

  it('taking a lock fsyncs nothing (a lock only has to be seen), while every other object is flushed', async () => {
    const backend = new LocalBackend(dir);
    const repo = await Repository.init(backend, { chunkSize: 65536 });
    try {
      const probe = await open(join(dir, 'config'), 'r');
      const FileHandle = Object.getPrototypeOf(probe) as { sync(): Promise<void> };
      await probe.close();
      const sync = sinon.spy(FileHandle, 'sync');
      const held = await repo.lock({ exclusive: true, operation: 'test' });
      assert.equal(sync.callCount, 0, 'taking a lock fsyncs nothing');
      const [name] = await lockNamesIn(backend);
      assert.ok(name, 'the lock is in locks/, visible to others');
      await held.release();
      // The same backend flushes an ordinary object: the spy sees fsyncs when they happen.
      await backend.save(undefined, { type: 'catalog', name: 'probe' }, Buffer.from('x'));
      assert.ok(sync.callCount >= 2, `an ordinary save fsyncs the file and its folder (${sync.callCount} calls)`);
    } finally {
      await repo.close();
    }
  });
});

async function lockNamesIn(b: LocalBackend): Promise<string[]> {
  const out: string[] = [];
  for await (const o of b.list(undefined, 'locks')) out.push(o.name);
  return out;
}
