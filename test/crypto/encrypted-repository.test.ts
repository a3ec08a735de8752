import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { addRepositoryKey } from '../../core/api/keys.ts';
import { getRepositoryStats } from '../../core/api/repository.ts';
import { isHvError } from '../../core/errors.ts';
import { initRepository, openRepository } from '../../core/repo/local.ts';
import { encodeObject } from '../../core/repo/object-format.ts';
import { flipChunkBit, makeManifest, readDisk, storeDisk } from '../../core/repo/testing.ts';
import { filesContaining, filesUnder, flipBit } from './scan.ts';

const CHEAP = { N: 2 ** 10, r: 8, p: 1 };
const CHUNK = 64 * 1024;

/**
 * A disk image: chunks 0-9 the 32-byte marker repeated (so all ten are equal), 10-11
 * random (10 with the marker inside), 12-14 zero, 15 another pattern with the marker.
 */
function markerDisk(marker: string): Buffer {
  const disk = Buffer.alloc(16 * CHUNK);
  disk.fill(marker, 0, 10 * CHUNK);
  randomBytes(2 * CHUNK).copy(disk, 10 * CHUNK);
  disk.write(marker, 10 * CHUNK + 100); // inside incompressible data: stored verbatim when unencrypted
  disk.fill(`${marker}-tail`, 15 * CHUNK);
  return disk;
}

async function backUp(path: string, password: string | undefined, disk: Buffer, vmName: string) {
  const repo = await initRepository(path, { password, keyOptions: { kdf: CHEAP }, chunkSize: CHUNK });
  try {
    const d = await storeDisk(repo, disk);
    const id = await repo.saveManifest(makeManifest({ vm: { id: 'vm-1', name: vmName, generation: 2, host: 'local', hostName: 'h' }, disks: [d] }));
    return { id, disk: d };
  } finally {
    await repo.close();
  }
}

describe('crypto: encrypted repository (repository API)', function () {
  let dir: string;
  const marker = `HVBACKUP-MARKER-${randomBytes(8).toString('hex')}`;
  const vmName = `secret-vm-${randomBytes(4).toString('hex')}`;
  const disk = markerDisk(marker);
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'hvb-encrepo-')); });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('stores no plaintext: neither the disk marker nor the VM name appears in any repository file (the marker does without encryption)', async () => {
    const plain = join(dir, 'plain');
    const enc = join(dir, 'enc');
    await backUp(plain, undefined, disk, vmName);
    await backUp(enc, 'pw', disk, vmName);
    // The controls prove the scan finds the marker, and the compressed form of the marker chunk, when they are there.
    const compressed = encodeObject(disk.subarray(0, CHUNK)).subarray(0, 48);
    assert.ok(filesContaining(plain, marker).length > 0, 'the unencrypted repository should hold the marker');
    assert.ok(filesContaining(plain, compressed).length > 0, 'the unencrypted repository should hold the compressed marker chunk');
    assert.deepEqual(filesContaining(enc, compressed), []);
    // The scans read every file of the folder: config, keys/, packs/, index/, manifests/.
    const files = filesUnder(enc).map((f) => f.slice(enc.length + 1).split('/')[0]).sort();
    assert.deepEqual(files, ['config', 'index', 'keys', 'manifests', 'packs', 'points']); // the 4 chunks share one pack
    assert.deepEqual(filesContaining(enc, marker), []);
    assert.deepEqual(filesContaining(enc, marker.slice(16)), []);
    assert.deepEqual(filesContaining(enc, vmName), []);
    assert.deepEqual(filesContaining(enc, 'HVBACKUP-MARKER'), []);
  });

  it('equal data still deduplicates when encrypted, and the chunk ids are keyed', async () => {
    const enc = join(dir, 'enc');
    const { disk: d } = await backUp(enc, 'pw', disk, vmName);
    const ids = d.chunks.filter((c): c is string => c !== null);
    assert.equal(d.chunks.filter((c) => c === null).length, 3);
    assert.equal(new Set(ids).size, 4); // marker chunk, 2 random, tail chunk
    const repo = await openRepository(enc, { password: 'pw', threads: 0 });
    try {
      // Every blob of every pack, from the (sealed) index objects: each distinct chunk stored once.
      const index = await repo.chunkIndex();
      assert.deepEqual([...index.objects.keys()].sort(), readdirSync(join(enc, 'index')).sort());
      assert.deepEqual([...index.objects.values()].flat().sort(), [...index.packs.keys()].sort());
      const stored = [...index.packs.values()].flat().map((e) => e.id).sort();
      assert.deepEqual(stored, [...new Set(ids)].sort());
    } finally {
      await repo.close();
    }
    const { createHash } = await import('node:crypto');
    assert.equal(ids.includes(createHash('sha256').update(disk.subarray(0, CHUNK)).digest('hex')), false);
  });

  it('detects a flipped bit in a chunk, a manifest and a key file, naming each object', async () => {
    const enc = join(dir, 'enc');
    const { id, disk: d } = await backUp(enc, 'pw', disk, vmName);
    const chunkId = d.chunks[0]!;
    const repo = await openRepository(enc, { password: 'pw', threads: 0 });
    try {
      await flipChunkBit(repo, chunkId);
      await assert.rejects(readDisk(repo, d), (e: unknown) => isHvError(e, 'ERR_CORRUPT') && e.message.includes(`<chunks/${chunkId}>`));
      flipBit(join(enc, 'manifests', id), 20);
      await assert.rejects(repo.loadManifest(id), (e: unknown) => isHvError(e, 'ERR_CORRUPT') && e.message.includes(`<manifests/${id}>`));
    } finally {
      await repo.close();
    }
    const [keyName] = readdirSync(join(enc, 'keys'));
    flipBit(join(enc, 'keys', keyName!), 200, 1);
    await assert.rejects(openRepository(enc, { password: 'pw' }), (e: unknown) => isHvError(e, 'ERR_CORRUPT') && e.message.includes(`<keys/${keyName}>`));
  });

  it('refuses a config downgraded to "not encrypted" while key files exist (no plaintext written into it)', async () => {
    const enc = join(dir, 'enc');
    await backUp(enc, 'pw', disk, vmName);
    const configFile = join(enc, 'config');
    const config = JSON.parse(readFileSync(configFile, 'utf8'));
    writeFileSync(configFile, JSON.stringify({ ...config, encryption: null }, null, 2));
    await assert.rejects(openRepository(enc), (e: unknown) => isHvError(e, 'ERR_CORRUPT') && /<config> says the repository is not encrypted, but keys\//.test(e.message));
    await assert.rejects(openRepository(enc, { password: 'pw' }), (e: unknown) => isHvError(e, 'ERR_CORRUPT'));
  });

  it('restores byte-identical data with a second password; stats say which kind each repository is', async () => {
    const enc = join(dir, 'enc');
    const plain = join(dir, 'plain');
    const { id } = await backUp(enc, 'pw', disk, vmName);
    await backUp(plain, undefined, disk, vmName);
    await addRepositoryKey({}, { repository: enc, password: 'pw', newPassword: 'second pw', kdf: CHEAP });
    const repo = await openRepository(enc, { password: 'second pw' });
    try {
      const m = await repo.loadManifest(id);
      assert.equal(m.vm.name, vmName);
      assert.ok((await readDisk(repo, m.disks[0]!)).equals(disk));
    } finally {
      await repo.close();
    }
    const encStats = await getRepositoryStats({}, { path: enc, password: 'second pw' });
    const plainStats = await getRepositoryStats({}, { path: plain });
    assert.equal(encStats.encrypted, true);
    assert.equal(plainStats.encrypted, false);
    assert.equal(encStats.uniqueBytes, plainStats.uniqueBytes);
    assert.equal(encStats.chunkCount, plainStats.chunkCount);
    await assert.rejects(getRepositoryStats({}, { path: enc }), (e: unknown) => isHvError(e, 'ERR_AUTH'));
  });
});
