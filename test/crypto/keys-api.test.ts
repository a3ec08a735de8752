import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { addRepositoryKey, changeRepositoryPassword, listRepositoryKeys, removeRepositoryKey } from '../../core/api/keys.ts';
import { getRepositoryStats } from '../../core/api/repository.ts';
import { listRestorePoints } from '../../core/api/points.ts';
import { isHvError } from '../../core/errors.ts';
import { initRepository, openRepository } from '../../core/repo/local.ts';

const CHEAP = { N: 2 ** 10, r: 8, p: 1 };
const root = join(import.meta.dirname, '..', '..');
const ctx = {};

describe('crypto: repository keys API and CLI', function () {
  let dir: string;
  let repoPath: string;
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hvb-keys-'));
    repoPath = join(dir, 'repo');
    await (await initRepository(repoPath, { password: 'first', keyOptions: { kdf: CHEAP } })).close();
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('adds a second password that opens the same data; list marks the key in use', async () => {
    const repo = await openRepository(repoPath, { password: 'first', threads: 0 });
    const id = (await (async () => { const w = repo.chunkWriter(); const r = w.put(Buffer.from('some chunk data')); await w.flush(); return (await r).id; })());
    await repo.close();
    const added = await addRepositoryKey(ctx, { repository: repoPath, password: 'first', newPassword: 'second', kdf: CHEAP });
    assert.match(added.id, /^[0-9a-f]{64}$/);
    const keys = await listRepositoryKeys(ctx, { repository: repoPath, password: 'second' });
    assert.equal(keys.length, 2);
    assert.deepEqual(keys.filter((k) => k.current).map((k) => k.id), [added.id]);
    const again = await openRepository(repoPath, { password: 'second', threads: 0 });
    try {
      assert.equal((await again.loadChunk(id)).toString(), 'some chunk data');
    } finally {
      await again.close();
    }
  });

  it('removes a password: never the last key, the key in use only with force; the removed password stops working', async () => {
    const [first] = await listRepositoryKeys(ctx, { repository: repoPath, password: 'first' });
    await assert.rejects(removeRepositoryKey(ctx, { repository: repoPath, password: 'first', keyId: first!.id, force: true }),
      (e: unknown) => isHvError(e, 'ERR_INVALID_ARGUMENT') && /last key/.test(e.message));
    const second = await addRepositoryKey(ctx, { repository: repoPath, password: 'first', newPassword: 'second', kdf: CHEAP });
    await assert.rejects(removeRepositoryKey(ctx, { repository: repoPath, password: 'first', keyId: first!.id }),
      (e: unknown) => isHvError(e, 'ERR_INVALID_ARGUMENT') && /this password unlocked/.test(e.message));
    assert.deepEqual(await removeRepositoryKey(ctx, { repository: repoPath, password: 'second', keyId: first!.id.slice(0, 8) }), { removed: first!.id });
    assert.deepEqual(readdirSync(join(repoPath, 'keys')), [second.id]);
    assert.deepEqual(readdirSync(join(repoPath, 'locks')), []);
    await assert.rejects(openRepository(repoPath, { password: 'first' }), (e: unknown) => isHvError(e, 'ERR_AUTH'));
    await assert.rejects(listRepositoryKeys(ctx, { repository: repoPath, password: 'first' }), (e: unknown) => isHvError(e, 'ERR_AUTH') && e.message.includes(repoPath));
  });

  it('changes a password without rewriting data: the old one stops working, the new one reads the same chunks', async () => {
    const repo = await openRepository(repoPath, { password: 'first', threads: 0 });
    const w = repo.chunkWriter();
    const { id } = await w.put(Buffer.from('chunk before the change'));
    await repo.close();
    // Packs and their index objects, names and bytes: the data is sealed with the master keys, which do not change.
    const chunkFiles = () => ['packs', 'index'].flatMap((t) => readdirSync(join(repoPath, t), { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile()).map((e) => `${t}/${e.name} ${readFileSync(join(e.parentPath, e.name)).toString('base64')}`)).sort();
    const before = chunkFiles();
    assert.equal(before.length, 2);
    const r = await changeRepositoryPassword(ctx, { repository: repoPath, password: 'first', newPassword: 'changed', kdf: CHEAP });
    assert.deepEqual(readdirSync(join(repoPath, 'keys')), [r.added]);
    assert.deepEqual(chunkFiles(), before);
    await assert.rejects(openRepository(repoPath, { password: 'first' }), (e: unknown) => isHvError(e, 'ERR_AUTH'));
    const again = await openRepository(repoPath, { password: 'changed', threads: 0 });
    try {
      assert.equal((await again.loadChunk(id)).toString(), 'chunk before the change');
    } finally {
      await again.close();
    }
  });

  it('refuses unencrypted repositories, unknown key ids, and missing repositories with clear errors', async () => {
    const plain = join(dir, 'plain');
    await (await initRepository(plain)).close();
    await assert.rejects(listRepositoryKeys(ctx, { repository: plain, password: 'x' }), (e: unknown) => isHvError(e, 'ERR_UNSUPPORTED') && /not encrypted/.test(e.message));
    await addRepositoryKey(ctx, { repository: repoPath, password: 'first', newPassword: 'second', kdf: CHEAP });
    await assert.rejects(removeRepositoryKey(ctx, { repository: repoPath, password: 'first', keyId: 'deadbeef' }), (e: unknown) => isHvError(e, 'ERR_NOT_FOUND'));
    await assert.rejects(removeRepositoryKey(ctx, { repository: repoPath, password: 'first', keyId: 'xyz' }), (e: unknown) => isHvError(e, 'ERR_INVALID_ARGUMENT'));
    await assert.rejects(listRepositoryKeys(ctx, { repository: join(dir, 'none'), password: 'x' }), (e: unknown) => isHvError(e, 'ERR_NOT_FOUND'));
  });

  it('opens with the good password despite damaged key files and reports each of them as a warning (repository and API)', async () => {
    const before = '0'.repeat(64);
    const after = 'f'.repeat(64);
    writeFileSync(join(repoPath, 'keys', before), '{"version": 1, "id": "truncated');
    writeFileSync(join(repoPath, 'keys', after), 'not a key file at all');
    const repo = await openRepository(repoPath, { password: 'first', threads: 0 });
    try {
      assert.equal(repo.warnings.length, 2, repo.warnings.join('\n'));
      assert.ok(repo.warnings.some((w) => w.includes(`<keys/${before}>`)), repo.warnings.join('\n'));
      assert.ok(repo.warnings.some((w) => w.includes(`<keys/${after}>`)), repo.warnings.join('\n'));
    } finally {
      await repo.close();
    }
    const logs: { level: string; message: string }[] = [];
    const stats = await getRepositoryStats({ onLog: (e) => logs.push(e) }, { path: repoPath, password: 'first' });
    assert.equal(stats.restorePoints, 0);
    const warnings = logs.filter((l) => l.level === 'warning').map((l) => l.message);
    assert.equal(warnings.length, 2, warnings.join('\n'));
    assert.ok(warnings.some((w) => w.includes(`<keys/${before}>`)) && warnings.some((w) => w.includes(`<keys/${after}>`)), warnings.join('\n'));
    // The backup/restore side of the API (points, verify, restore, backup) opens repositories too.
    const pointLogs: { level: string; message: string }[] = [];
    assert.deepEqual(await listRestorePoints({ onLog: (e) => pointLogs.push(e) }, { repository: repoPath, password: 'first' }), []);
    assert.equal(pointLogs.filter((l) => l.level === 'warning' && /<keys\//.test(l.message)).length, 2, JSON.stringify(pointLogs));
  });

  it('CLI: key add/list/remove with passwords from env and files, never arguments', () => {
    const cli = (args: string[], env: Record<string, string> = {}) =>
      spawnSync(process.execPath, [join(root, 'core', 'cli', 'main.ts'), ...args], { encoding: 'utf8', env: { ...process.env, HVBACKUP_PASSWORD: '', HVBACKUP_NEW_PASSWORD: '', ...env } });
    writeFileSync(join(dir, 'pw1'), 'first\n');
    writeFileSync(join(dir, 'pw2'), 'second\n');
    const add = cli(['key', 'add', '--repo', repoPath, '--password-file', join(dir, 'pw1'), '--new-password-file', join(dir, 'pw2'), '--json']);
    assert.equal(add.status, 0, add.stderr);
    const added = JSON.parse(add.stdout) as { id: string };
    const list = cli(['key', 'list', '--repo', repoPath, '--json'], { HVBACKUP_PASSWORD: 'second' });
    assert.equal(list.status, 0, list.stderr);
    assert.deepEqual((JSON.parse(list.stdout) as { id: string; current: boolean }[]).filter((k) => k.current).map((k) => k.id), [added.id]);
    const wrong = cli(['key', 'list', '--repo', repoPath], { HVBACKUP_PASSWORD: 'third' });
    assert.equal(wrong.status, 1);
    assert.match(wrong.stderr, /wrong password for repository/);
    const none = cli(['key', 'list', '--repo', repoPath]);
    assert.equal(none.status, 1);
    assert.match(none.stderr, /HVBACKUP_PASSWORD/);
    const inUse = cli(['key', 'remove', added.id.slice(0, 8), '--repo', repoPath], { HVBACKUP_PASSWORD: 'second' });
    assert.notEqual(inUse.status, 0);
    assert.match(inUse.stderr, /--force/);
    const rm = cli(['key', 'remove', added.id.slice(0, 8), '--repo', repoPath], { HVBACKUP_PASSWORD: 'first' });
    assert.equal(rm.status, 0, rm.stderr);
    assert.equal(readdirSync(join(repoPath, 'keys')).includes(added.id), false);
  });
});
