import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { isHvError } from '../../core/errors.ts';
import { addKeyFile, checkKeyRemoval, clearUnlockMemo, createEncryptedRepositoryKeys, describeKeyFile, unlockRepository, type NewRepositoryKeys } from '../../core/repo/crypto/index.ts';
import { decodeKeyFile } from '../../core/repo/crypto/key-file.ts';

const CHEAP = { kdf: { N: 2 ** 10, r: 8, p: 1 } };

describe('crypto: repository keys', function () {
  let repo: NewRepositoryKeys;
  before(async () => {
    repo = await createEncryptedRepositoryKeys('first password', CHEAP);
  });
  const files = (...extra: { name: string; data: Buffer }[]) => [{ name: repo.keyId, data: repo.keyFile }, ...extra];

  it('creates a key file in the documented JSON form, and a config section without keys', () => {
    const json = JSON.parse(repo.keyFile.toString('utf8'));
    assert.deepEqual(Object.keys(json), ['version', 'id', 'created', 'hostname', 'user', 'kdf', 'wrapped', 'checksum']);
    assert.equal(json.id, repo.keyId);
    assert.deepEqual({ ...json.kdf, salt: undefined }, { name: 'scrypt', N: 1024, r: 8, p: 1, salt: undefined });
    assert.equal(Buffer.from(json.kdf.salt, 'base64').length, 32);
    assert.equal(Buffer.from(json.wrapped.nonce, 'base64').length, 12);
    assert.equal(Buffer.from(json.wrapped.ciphertext, 'base64').length, 80);
    const keys = repo.codec.toTransferable().keys!;
    const config = JSON.stringify(repo.configCrypto);
    for (const k of Object.values(keys)) {
      assert.equal(config.includes(k), false);
      assert.equal(repo.keyFile.includes(k), false);
      assert.equal(repo.keyFile.includes(Buffer.from(k, 'base64').toString('hex')), false);
    }
    assert.deepEqual({ ...repo.configCrypto, keyCheck: undefined }, { version: 1, cipher: 'aes-256-gcm', chunkId: 'hmac-sha256', kdf: 'scrypt', keyCheck: undefined });
  });

  it('defaults to scrypt N=2^17, r=8, p=1', async function () {
    const k = await createEncryptedRepositoryKeys('pw');
    assert.deepEqual(JSON.parse(k.keyFile.toString()).kdf.N, 2 ** 17);
    assert.equal(JSON.parse(k.keyFile.toString()).kdf.r, 8);
  });

  it('unlocks with the password: same keys, same chunk ids, objects open', async () => {
    const u = await unlockRepository(files(), repo.configCrypto, 'first password', '/srv/repo');
    assert.equal(u.keyId, repo.keyId);
    const data = randomBytes(1000);
    assert.equal(u.codec.chunkId(data), repo.codec.chunkId(data));
    assert.deepEqual(u.codec.open('chunks', 'x', repo.codec.seal('chunks', data, 'x')), data);
  });

  it('rejects a wrong password with ERR_AUTH naming the repository, quickly (one scrypt per key file, default cost)', async () => {
    const strong = await createEncryptedRepositoryKeys('right');
    const files = [{ name: strong.keyId, data: strong.keyFile }];
    let t0 = performance.now();
    await unlockRepository(files, strong.configCrypto, 'right');
    const right = performance.now() - t0;
    t0 = performance.now();
    await assert.rejects(unlockRepository(files, strong.configCrypto, 'wrong', '/srv/repo'),
      (e: unknown) => isHvError(e, 'ERR_AUTH') && /wrong password for repository \/srv\/repo/.test(e.message));
    const wrong = performance.now() - t0;
    // As fast as a successful unlock (one scrypt), not a retry loop or a slower path.
    assert.ok(wrong < 2 * right + 500 && wrong < 10_000, `wrong password took ${wrong.toFixed(0)} ms, a right one ${right.toFixed(0)} ms`);
  });

  it('remembers a successful unlock in the process (same key file bytes and password), never a failed one', async () => {
    clearUnlockMemo();
    const strong = await createEncryptedRepositoryKeys('memo pw');
    const files = [{ name: strong.keyId, data: strong.keyFile }];
    let t0 = performance.now();
    await unlockRepository(files, strong.configCrypto, 'memo pw');
    const first = performance.now() - t0;
    t0 = performance.now();
    const again = await unlockRepository(files, strong.configCrypto, 'memo pw');
    const second = performance.now() - t0;
    assert.equal(again.keyId, strong.keyId);
    assert.ok(second < first / 4, `remembered unlock took ${second.toFixed(0)} ms, the first ${first.toFixed(0)} ms`);
    await assert.rejects(unlockRepository(files, strong.configCrypto, 'memo pw '), (e: unknown) => isHvError(e, 'ERR_AUTH'));
    const other = await createEncryptedRepositoryKeys('memo pw', CHEAP);
    await assert.rejects(unlockRepository(files, other.configCrypto, 'memo pw'), (e: unknown) => isHvError(e, 'ERR_CORRUPT') && /another repository/.test(e.message));
    clearUnlockMemo();
  });

  it('a second password unlocks the same repository; the data is not rewritten', async () => {
    const second = await addKeyFile(repo.codec, 'second password', CHEAP);
    assert.notEqual(second.keyId, repo.keyId);
    const sealed = repo.codec.seal('manifests', Buffer.from('manifest bytes'));
    const all = files({ name: second.keyId, data: second.keyFile });
    const u2 = await unlockRepository(all, repo.configCrypto, 'second password');
    assert.equal(u2.keyId, second.keyId);
    assert.equal(u2.codec.open('manifests', 'm', sealed).toString(), 'manifest bytes');
    assert.equal((await unlockRepository(all, repo.configCrypto, 'first password')).keyId, repo.keyId);
    await assert.rejects(unlockRepository(all, repo.configCrypto, 'third'), (e: unknown) => isHvError(e, 'ERR_AUTH') && /tried 2 key files/.test(e.message));
  });

  it('detects every single-bit flip in a key file as damage naming it', () => {
    const where = `<keys/${repo.keyId}>`;
    for (let bit = 0; bit < repo.keyFile.length * 8; bit++) {
      const bad = Buffer.from(repo.keyFile);
      bad[bit >> 3]! ^= 1 << (bit & 7);
      assert.throws(() => decodeKeyFile(bad, where), (e: unknown) => isHvError(e) && (e.code === 'ERR_CORRUPT' || e.code === 'ERR_UNSUPPORTED') && e.message.includes(where),
        `bit ${bit} flipped went undetected`);
    }
  });

  it('unlock reports a damaged key file as ERR_CORRUPT naming it, and still unlocks with another good key file', async () => {
    const bad = Buffer.from(repo.keyFile);
    bad[bad.indexOf('"ciphertext"') + 20]! ^= 0x01;
    await assert.rejects(unlockRepository([{ name: repo.keyId, data: bad }], repo.configCrypto, 'first password'),
      (e: unknown) => isHvError(e, 'ERR_CORRUPT') && e.target === `<keys/${repo.keyId}>` && e.message.includes(`<keys/${repo.keyId}>`));
    const second = await addKeyFile(repo.codec, 'second password', CHEAP);
    const u = await unlockRepository([{ name: repo.keyId, data: bad }, { name: second.keyId, data: second.keyFile }], repo.configCrypto, 'second password');
    assert.equal(u.keyId, second.keyId);
    assert.equal(u.warnings.length, 1);
    assert.match(u.warnings[0]!, new RegExp(repo.keyId));
  });

  it('refuses a key file that wraps another repository\'s keys (planted key file)', async () => {
    const planted = await createEncryptedRepositoryKeys('attacker password', CHEAP);
    await assert.rejects(unlockRepository([{ name: planted.keyId, data: planted.keyFile }], repo.configCrypto, 'attacker password'),
      (e: unknown) => isHvError(e, 'ERR_CORRUPT') && /another repository/.test(e.message));
  });

  it('refuses unsupported or damaged config sections and empty passwords', async () => {
    await assert.rejects(unlockRepository(files(), { ...repo.configCrypto, cipher: 'rot13' }, 'first password'), (e: unknown) => isHvError(e, 'ERR_UNSUPPORTED'));
    await assert.rejects(unlockRepository(files(), { ...repo.configCrypto, keyCheck: 'zz' }, 'first password'), (e: unknown) => isHvError(e, 'ERR_CORRUPT'));
    await assert.rejects(unlockRepository([], repo.configCrypto, 'first password'), (e: unknown) => isHvError(e, 'ERR_CORRUPT') && /no key files/.test(e.message));
    await assert.rejects(unlockRepository(files(), repo.configCrypto, ''), (e: unknown) => isHvError(e, 'ERR_INVALID_ARGUMENT'));
    await assert.rejects(createEncryptedRepositoryKeys('pw', { kdf: { N: 1000 } }), (e: unknown) => isHvError(e, 'ERR_UNSUPPORTED'));
  });

  it('refuses a planted key file with absurd scrypt cost before running scrypt', () => {
    const json = JSON.parse(repo.keyFile.toString());
    json.kdf.N = 2 ** 30;
    const { checksum, ...body } = json;
    void checksum;
    const text = JSON.stringify({ ...body, checksum: createHash('sha256').update(JSON.stringify(body)).digest('hex') });
    assert.throws(() => decodeKeyFile(Buffer.from(text), '<keys/k>'),
      (e: unknown) => isHvError(e, 'ERR_UNSUPPORTED') && e.message.includes('<keys/k>') && /scrypt parameters N=1073741824/.test(e.message));
  });

  it('describes key files for listing, damaged ones included', () => {
    const d = describeKeyFile(repo.keyId, repo.keyFile);
    assert.ok(!('damaged' in d));
    assert.equal(d.id, repo.keyId);
    assert.equal(d.kdf.N, 1024);
    const broken = describeKeyFile('k2', Buffer.from('{'));
    assert.ok('damaged' in broken && broken.damaged.includes('<keys/k2>'));
  });

  it('refuses to remove the last key, or the key in use unless forced', () => {
    const ok = (fn: () => void) => assert.doesNotThrow(fn);
    const refused = (fn: () => void, code: string) => assert.throws(fn, (e: unknown) => isHvError(e) && e.code === code);
    refused(() => checkKeyRemoval(['a'], 'a', 'a', true), 'ERR_INVALID_ARGUMENT');
    refused(() => checkKeyRemoval(['a', 'b'], 'a', 'a'), 'ERR_INVALID_ARGUMENT');
    refused(() => checkKeyRemoval(['a', 'b'], 'c', 'a'), 'ERR_NOT_FOUND');
    ok(() => checkKeyRemoval(['a', 'b'], 'a', 'a', true));
    ok(() => checkKeyRemoval(['a', 'b'], 'b', 'a'));
  });
});
