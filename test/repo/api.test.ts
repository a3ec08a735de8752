import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { getRepositoryStats, initRepository, removeRestorePoints } from '../../core/api/repository.ts';
import { isHvError, type ErrorCode } from '../../core/errors.ts';
import { LocalBackend } from '../../core/repo/backend-local.ts';
import { openRepository } from '../../core/repo/local.ts';
import { encodeLock } from '../../core/repo/lock.ts';
import { makeManifest, storeDisk } from '../../core/repo/testing.ts';

const BIN = join(import.meta.dirname, '..', '..', 'bin', 'hvbackup.js');
const CHUNK = 64 * 1024;

function code(c: ErrorCode, mention?: string) {
  return (e: unknown) => isHvError(e, c) && (mention === undefined || e.message.includes(mention));
}

describe('Repository API and CLI', () => {
  let dir: string;
  let path: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'hvb-repoapi-'));
    path = join(dir, 'repo');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('validates init arguments', async () => {
    await assert.rejects(initRepository({}, { path, encrypt: true }), code('ERR_INVALID_ARGUMENT', 'password'));
    await assert.rejects(initRepository({}, { path, chunkSize: 100_000 }), code('ERR_INVALID_ARGUMENT', 'power of two'));
    await assert.rejects(initRepository({}, { path: '' }), code('ERR_INVALID_ARGUMENT'));
    const info = await initRepository({}, { path, chunkSize: CHUNK });
    assert.deepEqual([info.encrypted, info.chunkSize, info.formatVersion, info.compression], [false, CHUNK, 5, 'zstd']);
  });

  it('reports logical, unique and stored bytes with dedupe and compression ratios', async () => {
    await initRepository({}, { path, chunkSize: CHUNK });
    const repo = await openRepository(path);
    const text = Buffer.from('2026-01-01 INFO ok\n'.repeat(4 * CHUNK / 19 + 1)).subarray(0, 4 * CHUNK);
    const rand = randomBytes(2 * CHUNK);
    const disk = Buffer.concat([text, rand, Buffer.alloc(2 * CHUNK)]);
    const d1 = await storeDisk(repo, disk);
    await repo.saveManifest(makeManifest({ disks: [d1] }));
    await repo.saveManifest(makeManifest({ disks: [d1] }));
    await repo.close();
    const s = await getRepositoryStats({}, { path });
    assert.equal(s.restorePoints, 2);
    assert.equal(s.vms, 1);
    assert.equal(s.logicalBytes, 2 * disk.length);
    const uniqueChunks = new Set(d1.chunks.filter(Boolean)).size;
    assert.equal(s.chunkCount, uniqueChunks);
    assert.equal(s.uniqueBytes, uniqueChunks * CHUNK);
    assert.ok(s.dedupeRatio > 2, `dedupe ${s.dedupeRatio}`);
    assert.ok(s.compressionRatio > 1.3 && s.compressionRatio < 10, `compression ${s.compressionRatio}`);
    assert.ok(s.storedBytes > 2 * CHUNK && s.storedBytes < disk.length);
  });

  it('removes restore points, or only plans it with whatIf', async () => {
    await initRepository({}, { path, chunkSize: CHUNK });
    const repo = await openRepository(path);
    const id = await repo.saveManifest(makeManifest());
    await repo.close();
    assert.deepEqual(await removeRestorePoints({}, { repository: path, ids: [id.slice(0, 12)], whatIf: true }), { ids: [id], status: 'planned' });
    assert.deepEqual(readdirSync(join(path, 'manifests')), [id]);
    assert.deepEqual(await removeRestorePoints({}, { repository: path, ids: [id] }), { ids: [id], status: 'removed' });
    assert.deepEqual(readdirSync(join(path, 'manifests')), []);
    await assert.rejects(removeRestorePoints({}, { repository: path, ids: [] }), code('ERR_INVALID_ARGUMENT'));
  });

  it('hvbackup repo init/stats/unlock work from the command line', async () => {
    const run = (...args: string[]) => spawnSync(process.execPath, [BIN, 'repo', ...args], { encoding: 'utf8' });
    let r = run('init', path);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /created repository [0-9a-f]{8}/);
    r = run('init', path);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /not empty/);
    r = run('stats', path, '--json');
    assert.equal(r.status, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).encrypted, false);
    r = run('stats', join(dir, 'nowhere'));
    assert.equal(r.status, 1);
    assert.match(r.stderr, /nowhere does not exist/);
    {
      const b = new LocalBackend(path);
      await b.save(undefined, { type: 'locks', name: 'dead' }, encodeLock({ hostname: hostname(), pid: 2 ** 22 + 77, time: new Date().toISOString(), exclusive: true, operation: 'gc' }));
      await b.save(undefined, { type: 'locks', name: 'live' }, encodeLock({ hostname: 'other', pid: 1, time: new Date().toISOString(), exclusive: false, operation: 'backup' }));
      r = run('unlock', path);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /removed 1 lock\b/);
      assert.deepEqual(readdirSync(join(path, 'locks')), ['live']);
      r = run('unlock', path, '--force');
      assert.match(r.stdout, /removed 1 lock\b/);
      assert.deepEqual(readdirSync(join(path, 'locks')), []);
    }
    {
      const enc = join(dir, 'enc');
      const env = (v: Record<string, string>) => ({ ...process.env, HVBACKUP_PASSWORD: '', HVBACKUP_NEW_PASSWORD: '', ...v });
      let e = spawnSync(process.execPath, [BIN, 'repo', 'init', '--encrypt', enc], { encoding: 'utf8', env: env({ HVBACKUP_NEW_PASSWORD: 'pw one' }) });
      assert.equal(e.status, 0, e.stderr);
      assert.match(e.stdout, /created encrypted repository/);
      e = spawnSync(process.execPath, [BIN, 'repo', 'stats', enc, '--json'], { encoding: 'utf8', env: env({ HVBACKUP_PASSWORD: 'pw one' }) });
      assert.equal(e.status, 0, e.stderr);
      assert.equal(JSON.parse(e.stdout).encrypted, true);
      e = spawnSync(process.execPath, [BIN, 'repo', 'stats', enc], { encoding: 'utf8', env: env({ HVBACKUP_PASSWORD: 'wrong' }) });
      assert.equal(e.status, 1);
      assert.match(e.stderr, /wrong password/);
    }
  });
});
