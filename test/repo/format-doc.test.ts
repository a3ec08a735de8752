// The hand-restore steps in docs/repository-format.md must work on a real repository.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initRepository } from '../../core/repo/local.ts';
import { makeManifest, storeDisk } from '../../core/repo/testing.ts';
import { docBlock } from '../support/format-doc.ts';

describe('Repository format document', () => {
  let dir: string;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'hvb-fmtdoc-')); });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('restores a disk by hand with the documented Python and reads a chunk with the documented shell', async () => {
    const repoPath = join(dir, 'repo');
    const repo = await initRepository(repoPath, { chunkSize: 64 * 1024 });
    const data = Buffer.concat([Buffer.from('boot sector '.repeat(6000)), randomBytes(100_000), Buffer.alloc(200_000), randomBytes(33_333)]);
    const disk = await storeDisk(repo, data, { key: 'scsi0-0' });
    const id = await repo.saveManifest(makeManifest({ disks: [disk] }));
    await repo.close();

    writeFileSync(join(dir, 'restore.py'), docBlock('Restoring a disk by hand', 'python'));
    const out = join(dir, 'disk.raw');
    const py = spawnSync('python3', [join(dir, 'restore.py'), repoPath, id, 'scsi0-0', out], { encoding: 'utf8' });
    assert.equal(py.status, 0, py.stderr);
    assert.ok(readFileSync(out).equals(data), 'restored bytes differ');

    const chunkId = disk.chunks[0]!;
    const sh = docBlock('By hand (unencrypted)', 'sh').replace(/^id=.*$/m, `id=${chunkId}`);
    const r = spawnSync('sh', ['-c', sh], { cwd: dir, encoding: 'utf8', env: { ...process.env } });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^${chunkId}`));
  });
});
