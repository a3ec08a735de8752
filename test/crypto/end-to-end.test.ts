// Encryption end to end through the public API and the CLI: init, backupVMs of a disk full
// of a marker, restore, verify, stats, and damage to each kind of object.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { backupVMs } from '../../core/api/backup.ts';
import { addRepositoryKey } from '../../core/api/keys.ts';
import { getRepositoryStats, initRepository } from '../../core/api/repository.ts';
import { initRepository as initRepositoryWithKdf, openRepository } from '../../core/repo/local.ts';
import { flipChunkBit } from '../../core/repo/testing.ts';
import { restoreVM } from '../../core/api/restore.ts';
import { verifyRepository } from '../../core/api/verify.ts';
import { createSampleVM, guestWriteVM } from '../../core/api/vm.ts';
import { isHvError } from '../../core/errors.ts';
import { encodeObject } from '../../core/repo/object-format.ts';
import { filesContaining, flipBit } from './scan.ts';
import { splitSlices } from '../backup/testing.ts';

const MiB = 1024 * 1024;
/** Cheap scrypt so every unlock is fast; the CLI test below uses the default cost. */
const CHEAP = { N: 2 ** 12, r: 8, p: 1 };
const initEncrypted = async (path: string, password: string) => (await initRepositoryWithKdf(path, { password, keyOptions: { kdf: CHEAP } })).close();
const root = join(import.meta.dirname, '..', '..');

/** 12 MiB raw disk: 8 MiB of the 32-byte marker, 1 MiB random with the marker inside, 2 MiB zeros, 1 MiB other pattern. */
function writeMarkerDisk(path: string, marker: string): Buffer {
  const disk = Buffer.alloc(12 * MiB);
  disk.fill(marker, 0, 8 * MiB);
  randomBytes(MiB).copy(disk, 8 * MiB);
  disk.write(marker, 8 * MiB + 4096);
  disk.fill(`${marker}:other`, 11 * MiB);
  writeFileSync(path, disk);
  return disk;
}

describe('crypto: encrypted backup end to end (backupVMs, restoreVM, CLI)', function () {
  this.timeout(90_000);
  let dir: string;
  const marker = `HVBACKUP-MARKER-${randomBytes(8).toString('hex')}`;
  let disk: Buffer;
  let img: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'hvb-e2e-crypto-'));
    img = join(dir, `m${randomBytes(3).toString('hex')}.img`);
    disk = writeMarkerDisk(img, marker);
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  async function backUp(repository: string, password?: string) {
    const [r] = await backupVMs({}, { repository, password, sources: [img] });
    assert.equal(r!.status, 'success', JSON.stringify(r!.error));
    return r!;
  }

  it('no repository file holds the marker or the compressed marker chunk; a second password restores byte-identical', async () => {
    const enc = join(dir, 'enc');
    const plain = join(dir, 'plain');
    await initEncrypted(enc, 'first pw');
    await initRepository({}, { path: plain });
    await backUp(enc, 'first pw');
    await backUp(plain);
    // The first chunk (the marker repeated) as the unencrypted repository stores it: a blob inside a pack.
    const { chunkSize } = JSON.parse(readFileSync(join(plain, 'config'), 'utf8'));
    const compressed = encodeObject(disk.subarray(0, chunkSize)).subarray(0, 40);
    assert.ok(filesContaining(plain, marker).length > 0, 'control: the unencrypted repository holds the marker');
    assert.ok(filesContaining(plain, compressed).length > 0, 'control: the unencrypted repository holds the compressed chunk');
    assert.ok(filesContaining(plain, compressed).every((f) => f.startsWith(join(plain, 'packs'))), 'control: the compressed chunk is in a pack');
    assert.deepEqual(filesContaining(enc, marker), []);
    assert.deepEqual(filesContaining(enc, 'HVBACKUP-MARKER'), []);
    assert.deepEqual(filesContaining(enc, compressed), []);
    assert.deepEqual(filesContaining(enc, img.split('/').pop()!.replace('.img', '')), [], 'the VM name is sealed inside the manifest');

    await addRepositoryKey({}, { repository: enc, password: 'first pw', newPassword: 'second pw', kdf: CHEAP });
    const res = await restoreVM({}, { repository: enc, password: 'second pw', point: 'latest', to: join(dir, 'out') });
    assert.equal(res.disks.length, 1);
    assert.ok(readFileSync(res.disks[0]!.path).equals(disk), 'restored disk differs');
    const report = await verifyRepository({}, { repository: enc, password: 'second pw' });
    assert.equal(report.ok, true, JSON.stringify(report.problems));
  });

  it('detects a flipped bit in a chunk file, a manifest file and the key file, naming each object', async () => {
    const enc = join(dir, 'enc');
    await initEncrypted(enc, 'pw');
    const { pointId } = await backUp(enc, 'pw');
    const repo = await openRepository(enc, { password: 'pw', threads: 0 });
    let chunkId: string;
    try {
      const chunks = [];
      for await (const c of repo.listChunks()) chunks.push(c);
      chunkId = chunks.sort((a, b) => b.size - a.size)[0]!.id; // a random chunk: the biggest stored
      await flipChunkBit(repo, chunkId, 1000);
    } finally {
      await repo.close();
    }
    const report = await verifyRepository({}, { repository: enc, password: 'pw' });
    assert.equal(report.ok, false);
    assert.ok(report.problems.some((p) => p.chunk === chunkId && p.problem.includes(`<chunks/${chunkId}>`) && p.points.includes(pointId!)), JSON.stringify(report.problems));
    await assert.rejects(restoreVM({}, { repository: enc, password: 'pw', point: pointId!, to: join(dir, 'out') }),
      (e: unknown) => isHvError(e, 'ERR_CORRUPT') && e.message.includes(`<chunks/${chunkId}>`));

    flipBit(join(enc, 'manifests', pointId!), 7, 0);
    const report2 = await verifyRepository({}, { repository: enc, password: 'pw' });
    assert.ok(report2.problems.some((p) => p.object === `<manifests/${pointId}>` && p.problem.includes(`<manifests/${pointId}>`)), JSON.stringify(report2.problems));

    const [keyName] = readdirSync(join(enc, 'keys'));
    flipBit(join(enc, 'keys', keyName!), 150, 2);
    await assert.rejects(verifyRepository({}, { repository: enc, password: 'pw' }),
      (e: unknown) => isHvError(e, 'ERR_CORRUPT') && e.message.includes(`<keys/${keyName}>`));
  });

  it('an unencrypted repository keeps working next to encrypted ones; stats say which kind; a wrong password is ERR_AUTH', async () => {
    const enc = join(dir, 'enc');
    const plain = join(dir, 'plain');
    await initEncrypted(enc, 'pw');
    await initRepository({}, { path: plain });
    await backUp(plain);
    const res = await restoreVM({}, { repository: plain, point: 'latest', to: join(dir, 'out') });
    assert.ok(readFileSync(res.disks[0]!.path).equals(disk));
    assert.equal((await getRepositoryStats({}, { path: plain })).encrypted, false);
    assert.equal((await getRepositoryStats({}, { path: enc, password: 'pw' })).encrypted, true);
    await assert.rejects(backupVMs({}, { repository: enc, password: 'wrong', sources: [img] }), (e: unknown) => isHvError(e, 'ERR_AUTH') && e.message.includes(enc));
    await assert.rejects(backupVMs({}, { repository: enc, sources: [img] }), (e: unknown) => isHvError(e, 'ERR_AUTH'));
  });

  it('a VHDX VM: full, changed-blocks and scan backups encrypted; restore with a second password passes qemu-img compare and check', async () => {
    const enc = join(dir, 'enc');
    const vm = await createSampleVM({}, { dir: join(dir, 'vm'), sizeBytes: 64 * MiB, name: 'web01', seed: 11 });
    await initEncrypted(enc, 'pw');
    const [full] = await backupVMs({}, { repository: enc, password: 'pw', sources: [vm.dir] });
    assert.equal(full!.status, 'success', JSON.stringify(full!.error));
    await guestWriteVM({}, { dir: vm.dir, count: 4, seed: 5 });
    const [incr] = await backupVMs({}, { repository: enc, password: 'pw', sources: [vm.dir] });
    assert.equal(incr!.status, 'success', JSON.stringify(incr!.error));
    assert.equal(incr!.method, 'changed-blocks');
    assert.ok(incr!.storedBytes < full!.storedBytes / 2, `incremental stored ${incr!.storedBytes} of ${full!.storedBytes} bytes`);
    // The guest's 64 KiB writes split slices: their pieces are sealed chunks like any other, and the restore below assembles them.
    const split = (await splitSlices(enc, incr!.pointId!, 'pw')).slices;
    assert.ok(split > 0);
    // A write outside change tracking: a scan, which finds the split slices' pieces by their
    // keyed ids (the ids of an encrypted repository are not plain SHA-256) and stores none again.
    const q = spawnSync('qemu-io', ['-f', 'vhdx', '-c', 'write -P 0x3c 1M 4k', vm.disk], { encoding: 'utf8' });
    assert.equal(q.status, 0, q.stderr);
    const [scan] = await backupVMs({}, { repository: enc, password: 'pw', sources: [vm.dir] });
    assert.equal(scan!.method, 'scan', scan!.methodReason);
    assert.ok((await splitSlices(enc, scan!.pointId!, 'pw')).slices >= split, 'the split slices stay split');
    assert.ok(scan!.storedBytes < incr!.storedBytes, `the scan stored ${scan!.storedBytes} bytes, the tracked incremental ${incr!.storedBytes}`);
    await addRepositoryKey({}, { repository: enc, password: 'pw', newPassword: 'second', kdf: CHEAP });
    const res = await restoreVM({}, { repository: enc, password: 'second', point: 'latest', to: join(dir, 'out') });
    const compare = spawnSync('qemu-img', ['compare', vm.disk, res.disks[0]!.path], { encoding: 'utf8' });
    assert.equal(compare.status, 0, compare.stdout + compare.stderr);
    const check = spawnSync('qemu-img', ['check', res.disks[0]!.path], { encoding: 'utf8' });
    assert.equal(check.status, 0, check.stdout + check.stderr);
  });

  it('CLI: repo init --encrypt, backup, restore with passwords from the environment and a file', () => {
    const cli = (args: string[], env: Record<string, string> = {}) =>
      spawnSync(process.execPath, [join(root, 'core', 'cli', 'main.ts'), ...args], { encoding: 'utf8', env: { ...process.env, HVBACKUP_PASSWORD: '', HVBACKUP_NEW_PASSWORD: '', ...env } });
    const repo = join(dir, 'repo');
    writeFileSync(join(dir, 'pw'), 'cli password\n');
    // A script that sets only HVBACKUP_PASSWORD can create the repository and use it afterwards.
    const init = cli(['repo', 'init', repo, '--encrypt', '--json'], { HVBACKUP_PASSWORD: 'cli password' });
    assert.equal(init.status, 0, init.stderr);
    assert.equal((JSON.parse(init.stdout) as { encrypted: boolean }).encrypted, true);
    const backup = cli(['backup', img, '--repo', repo, '--password-file', join(dir, 'pw')]);
    assert.equal(backup.status, 0, backup.stderr + backup.stdout);
    const wrong = cli(['restore', 'latest', '--repo', repo, '--to', join(dir, 'never')], { HVBACKUP_PASSWORD: 'nope' });
    assert.equal(wrong.status, 1);
    assert.match(wrong.stderr, /wrong password for repository/);
    const restore = cli(['restore', 'latest', '--repo', repo, '--to', join(dir, 'out'), '--json'], { HVBACKUP_PASSWORD: 'cli password' });
    assert.equal(restore.status, 0, restore.stderr);
    const path = (JSON.parse(restore.stdout) as { disks: { path: string }[] }).disks[0]!.path;
    assert.ok(readFileSync(path).equals(disk));
    assert.deepEqual(filesContaining(repo, marker), []);
  });
});
