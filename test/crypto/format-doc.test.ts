// The "Decrypting by hand" script in docs/repository-format.md must open real encrypted
// objects with standard tools only (Python cryptography + the zstd CLI): the doc is exact.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initRepository } from '../../core/repo/local.ts';
import { decodeIndexObject } from '../../core/repo/pack-format.ts';
import { makeManifest, storeDisk } from '../../core/repo/testing.ts';
import { docBlock } from '../support/format-doc.ts';

const CHUNK = 64 * 1024;

/** The documented last step: format byte 0x01 → zstd frame, 0x00 → raw. */
function decodeByHand(object: Buffer, dir: string): Buffer {
  if (object[0] === 0x00) return object.subarray(1);
  assert.equal(object[0], 0x01);
  writeFileSync(join(dir, 'frame.zst'), object.subarray(1));
  const z = spawnSync('zstd', ['-d', '-c', join(dir, 'frame.zst')]);
  assert.equal(z.status, 0, z.stderr?.toString());
  return z.stdout;
}

describe('crypto: encryption format document', () => {
  let dir: string;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'hvb-cryptodoc-')); });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('the documented Python script decrypts chunks (found through index/), manifests and index objects of a real repository; ids are HMAC-SHA-256 as documented', async () => {
    const repoPath = join(dir, 'repo');
    const repo = await initRepository(repoPath, { chunkSize: CHUNK, password: 'pässword', keyOptions: { kdf: { N: 2 ** 12, r: 8, p: 1 } } });
    const data = Buffer.concat([Buffer.from('boot sector '.repeat(6000)).subarray(0, CHUNK), randomBytes(CHUNK)]);
    const disk = await storeDisk(repo, data);
    const id = await repo.saveManifest(makeManifest({ disks: [disk] }));
    const index = await repo.chunkIndex();
    await repo.close();
    assert.equal(index.packs.size, 1);
    const [packName, packEntries] = [...index.packs][0]!;
    writeFileSync(join(dir, 'decrypt.py'), docBlock('### Decrypting by hand', 'python'));
    const run = (type: string, name: string, password = 'pässword') =>
      spawnSync('python3', [join(dir, 'decrypt.py'), repoPath, type, name], { env: { ...process.env, HVBACKUP_PASSWORD: password } });

    const plains: Buffer[] = [];
    for (const [i, chunkId] of disk.chunks.entries()) {
      const r = run('chunks', chunkId!);
      assert.equal(r.status, 0, r.stderr.toString());
      const plain = decodeByHand(r.stdout, dir);
      assert.ok(plain.equals(data.subarray(i * CHUNK, (i + 1) * CHUNK)), `chunk ${i} decrypted by hand differs`);
      plains.push(plain);
    }
    const m = run('manifests', id);
    assert.equal(m.status, 0, m.stderr.toString());
    assert.equal(JSON.parse(decodeByHand(m.stdout, dir).toString('utf8')).id, id);

    // An index object opens to the plain index object of "Packs", listing the pack.
    assert.equal(index.objects.size, 1);
    const [indexName] = [...index.objects.keys()];
    const ix = run('index', indexName!);
    assert.equal(ix.status, 0, ix.stderr.toString());
    assert.deepEqual([...decodeIndexObject(ix.stdout, indexName!, 'decrypted by hand').each()], [{ name: packName, entries: packEntries }]);

    // Chunk id = HMAC-SHA-256(id key, plain): recompute with the id key the documented unwrap yields.
    const script = docBlock('### Decrypting by hand', 'python');
    const unwrapPart = script.slice(0, script.indexOf('\ndef opened('));
    assert.match(unwrapPart, /id_key/);
    writeFileSync(join(dir, 'idkey.py'), `${unwrapPart}\nsys.stdout.write(id_key.hex())\n`);
    const k = spawnSync('python3', [join(dir, 'idkey.py'), repoPath, 'chunks', 'x'], { env: { ...process.env, HVBACKUP_PASSWORD: 'pässword' }, encoding: 'utf8' });
    assert.equal(k.status, 0, k.stderr);
    assert.equal(createHmac('sha256', Buffer.from(k.stdout, 'hex')).update(plains[0]!).digest('hex'), disk.chunks[0]);

    const wrong = run('chunks', disk.chunks[0]!, 'not it');
    assert.notEqual(wrong.status, 0);
    assert.match(wrong.stderr.toString(), /wrong password/);
  });
});
