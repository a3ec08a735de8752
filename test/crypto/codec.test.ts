import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { isHvError } from '../../core/errors.ts';
import { codecFromTransferable, createEncryptedRepositoryKeys, plainCodec, SEAL_OVERHEAD, type ObjectCodec } from '../../core/repo/crypto/index.ts';

const CHEAP = { kdf: { N: 2 ** 10, r: 8, p: 1 } };

function assertCorrupt(fn: () => unknown, target: string): void {
  assert.throws(fn, (err: unknown) => isHvError(err, 'ERR_CORRUPT') && err.target === target && err.message.includes(target));
}

describe('crypto: sealed objects', function () {
  let codec: ObjectCodec;
  before(async () => {
    codec = (await createEncryptedRepositoryKeys('correct horse', CHEAP)).codec;
  });

  it('round-trips objects of every size, with and without a bound name', () => {
    for (const size of [0, 1, 15, 16, 17, 4096, 1024 * 1024 + 3]) {
      const data = randomBytes(size);
      const named = codec.seal('chunks', data, 'a1b2');
      assert.equal(named.length, size + SEAL_OVERHEAD);
      assert.deepEqual(codec.open('chunks', 'a1b2', named), data);
      assert.deepEqual(codec.open('manifests', 'whatever', codec.seal('manifests', data)), data);
    }
  });

  it('sealInto writes, from parts, what seal makes, at an offset, and refuses too little room', () => {
    for (const c of [codec, plainCodec()]) {
      for (const size of [0, 1, 300, 256 * 1024 + 1]) {
        const parts = [Buffer.from([1]), randomBytes(size)];
        const whole = Buffer.concat(parts);
        const out = Buffer.alloc(7 + whole.length + SEAL_OVERHEAD, 0xaa);
        const n = c.sealInto('chunks', parts, 'c3d4', out, 7);
        assert.equal(n, c.encrypted ? whole.length + SEAL_OVERHEAD : whole.length);
        assert.ok(out.subarray(0, 7).equals(Buffer.alloc(7, 0xaa)), 'nothing written before the offset');
        assert.deepEqual(c.open('chunks', 'c3d4', Buffer.from(out.subarray(7, 7 + n))), whole);
        // The name is bound as with seal(): another name does not open it.
        if (c.encrypted) assertCorrupt(() => c.open('chunks', 'ffff', Buffer.from(out.subarray(7, 7 + n))), '<chunks/ffff>');
      }
    }
    assert.throws(() => codec.sealInto('chunks', [randomBytes(100)], 'c3d4', Buffer.alloc(100 + SEAL_OVERHEAD - 1), 0), (err: unknown) => isHvError(err, 'ERR_INTERNAL'));
    assert.throws(() => plainCodec().sealInto('chunks', [randomBytes(100)], 'c3d4', Buffer.alloc(99), 0), (err: unknown) => isHvError(err, 'ERR_INTERNAL'));
  });

  it('never stores the plaintext and uses a fresh nonce per object', () => {
    const data = Buffer.from('HVBACKUP-MARKER-'.repeat(256));
    const a = codec.seal('chunks', data, 'x');
    const b = codec.seal('chunks', data, 'x');
    assert.notDeepEqual(a, b);
    assert.equal(a.includes(Buffer.from('HVBACKUP-MARKER')), false);
    assert.notDeepEqual(a.subarray(2, 14), b.subarray(2, 14));
  });

  it('detects every single-bit flip (header, nonce, ciphertext, tag) as ERR_CORRUPT naming the object', () => {
    const data = randomBytes(600);
    const sealed = codec.seal('chunks', data, 'c0ffee');
    for (let bit = 0; bit < sealed.length * 8; bit++) {
      const bad = Buffer.from(sealed);
      bad[bit >> 3]! ^= 1 << (bit & 7);
      assertCorrupt(() => codec.open('chunks', 'c0ffee', bad), '<chunks/c0ffee>');
    }
    const manifest = codec.seal('manifests', data);
    for (const at of [0, 1, 2, 13, 14, 300, manifest.length - 16, manifest.length - 1]) {
      const bad = Buffer.from(manifest);
      bad[at]! ^= 0x80;
      assertCorrupt(() => codec.open('manifests', 'm1', bad), '<manifests/m1>');
    }
  });

  it('detects truncation, extension and a plain (unsealed) object', () => {
    const sealed = codec.seal('chunks', randomBytes(100), 'ab');
    assertCorrupt(() => codec.open('chunks', 'ab', sealed.subarray(0, sealed.length - 1)), '<chunks/ab>');
    assertCorrupt(() => codec.open('chunks', 'ab', Buffer.concat([sealed, Buffer.alloc(1)])), '<chunks/ab>');
    assertCorrupt(() => codec.open('chunks', 'ab', sealed.subarray(0, 10)), '<chunks/ab>');
    assertCorrupt(() => codec.open('chunks', 'ab', Buffer.from('{"plain":"json manifest", "padding": "................"}')), '<chunks/ab>');
  });

  it('binds type and chunk name: a chunk stored under another id or type does not open', () => {
    const sealed = codec.seal('chunks', randomBytes(100), 'aaaa');
    assertCorrupt(() => codec.open('chunks', 'bbbb', sealed), '<chunks/bbbb>');
    assertCorrupt(() => codec.open('manifests', 'aaaa', sealed), '<manifests/aaaa>');
    const dropped = Buffer.from(sealed);
    dropped[1] = 0; // claim "no name bound" to dodge the name check
    assertCorrupt(() => codec.open('chunks', 'bbbb', dropped), '<chunks/bbbb>');
  });

  it('objects of one repository do not open with another repository\'s keys', async () => {
    const other = (await createEncryptedRepositoryKeys('correct horse', CHEAP)).codec;
    assertCorrupt(() => other.open('chunks', 'ab', codec.seal('chunks', randomBytes(64), 'ab')), '<chunks/ab>');
  });

  it('chunk ids: HMAC-SHA-256, deterministic per repository, different across repositories, not plain SHA-256', async () => {
    const data = randomBytes(4096);
    const other = (await createEncryptedRepositoryKeys('correct horse', CHEAP)).codec;
    assert.match(codec.chunkId(data), /^[0-9a-f]{64}$/);
    assert.equal(codec.chunkId(data), codec.chunkId(Buffer.from(data)));
    assert.notEqual(codec.chunkId(data), other.chunkId(data));
    assert.notEqual(codec.chunkId(data), createHash('sha256').update(data).digest('hex'));
    assert.notEqual(codec.chunkId(data), codec.chunkId(randomBytes(4096)));
  });

  it('plain codec: SHA-256 ids and identity seal/open', () => {
    const c = plainCodec();
    const data = Buffer.from('abc');
    assert.equal(c.encrypted, false);
    assert.equal(c.chunkId(data), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    assert.equal(c.seal('chunks', data, 'x'), data);
    assert.equal(c.open('chunks', 'x', data), data);
    assert.equal(codecFromTransferable(c.toTransferable()).encrypted, false);
  });

  it('rebuilds the same codec inside a worker thread from toTransferable()', async () => {
    const plain = randomBytes(10_000);
    const worker = new Worker(join(import.meta.dirname, 'codec-worker.ts'), { workerData: { codec: codec.toTransferable(), plain } });
    const out = await new Promise<{ id: string; sealed: Uint8Array }>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    await worker.terminate();
    assert.equal(out.id, codec.chunkId(plain));
    assert.deepEqual(codec.open('chunks', out.id, Buffer.from(out.sealed)), plain);
  });

  it('keeps keys out of JSON and inspect output', async () => {
    const t = codec.toTransferable();
    assert.equal(t.encrypted, true);
    assert.equal(JSON.stringify(codec).includes(t.keys!.encryption!), false);
    const { inspect } = await import('node:util');
    assert.equal(inspect(codec).includes(t.keys!.encryption!), false);
    assert.throws(() => codecFromTransferable({ encrypted: true, keys: { encryption: 'AAAA', id: 'AAAA' } }), (e: unknown) => isHvError(e, 'ERR_INVALID_ARGUMENT'));
  });
});
