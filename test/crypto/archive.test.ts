// Encrypted repositories through archive media: the media carry chunks and manifests as
// stored (sealed), plus config and key files, so the media alone restore with the password.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportArchive, getArchiveCatalog, importArchive, restoreFromArchive } from '../../core/api/archive.ts';
import { backupVMs } from '../../core/api/backup.ts';
import { initRepository } from '../../core/api/repository.ts';
import { isHvError } from '../../core/errors.ts';
import { filesContaining } from './scan.ts';

const MiB = 1024 * 1024;

describe('crypto: encrypted repository on archive media', function () {
  this.timeout(60_000);
  let dir: string;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'hvb-crypto-media-')); });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('media hold no plaintext disk data, and restore from media alone needs the right password', async () => {
    const marker = `HVBACKUP-MARKER-${randomBytes(8).toString('hex')}`;
    const disk = Buffer.alloc(4 * MiB);
    disk.fill(marker, 0, 2 * MiB);
    randomBytes(2 * MiB).copy(disk, 2 * MiB);
    disk.write(marker, 2 * MiB + 777);
    // A VM name unlikely to turn up by chance in random or encrypted bytes.
    const vm = `payroll-${randomBytes(6).toString('hex')}`;
    const img = join(dir, `${vm}.img`);
    writeFileSync(img, disk);
    const media: Record<string, string[]> = {};
    const createdAt: Record<string, string> = {};
    for (const kind of ['plain', 'enc']) {
      const repo = join(dir, kind);
      const password = kind === 'enc' ? 'media pw' : undefined;
      await initRepository({}, { path: repo, encrypt: password !== undefined, password });
      const [b] = await backupVMs({}, { repository: repo, password, sources: [img] });
      assert.equal(b!.status, 'success');
      const x = await exportArchive({}, { repository: repo, password, pool: 'pool', mediaDir: join(dir, `media-${kind}`), capacity: '1M' });
      assert.deepEqual(x.points.map((p) => p.vm), [vm]);
      createdAt[kind] = x.points[0]!.createdAt;
      media[kind] = readdirSync(join(dir, `media-${kind}`)).sort().map((f) => join(dir, `media-${kind}`, f));
    }
    assert.ok(media.enc!.length >= 2, 'the export should span media');
    assert.ok(filesContaining(join(dir, 'media-plain'), marker).length > 0, 'control: unencrypted media hold the marker');
    assert.deepEqual(filesContaining(join(dir, 'media-enc'), marker), []);
    assert.deepEqual(filesContaining(join(dir, 'media-enc'), 'HVBACKUP-MARKER'), []);
    // Labels and trailers are plain text: for the encrypted repository they name no VM and no backup time.
    assert.ok(filesContaining(join(dir, 'media-plain'), vm).length > 0, 'control: unencrypted media name the VM');
    assert.ok(filesContaining(join(dir, 'media-plain'), createdAt.plain!).length > 0, 'control: unencrypted media show the backup time');
    assert.deepEqual(filesContaining(join(dir, 'media-enc'), vm), []);
    assert.deepEqual(filesContaining(join(dir, 'media-enc'), createdAt.enc!), []);

    // The catalog rebuilt from the media alone still lists the point: read from the sealed manifest with the password.
    await assert.rejects(importArchive({}, { media: media.enc! }), (e: unknown) => isHvError(e, 'ERR_AUTH'));
    const rebuilt = await importArchive({}, { media: media.enc!, password: 'media pw' });
    assert.deepEqual(rebuilt.points.map((p) => [p.vm, p.createdAt]), [[vm, createdAt.enc]]);
    assert.deepEqual(rebuilt, await getArchiveCatalog({}, { repository: join(dir, 'enc'), password: 'media pw', pool: 'pool' }));

    await assert.rejects(restoreFromArchive({}, { media: media.enc!, vmName: vm, to: join(dir, 'o1'), password: 'wrong' }), (e: unknown) => isHvError(e, 'ERR_AUTH'));
    await assert.rejects(restoreFromArchive({}, { media: media.enc!, vmName: vm, to: join(dir, 'o2') }), (e: unknown) => isHvError(e, 'ERR_AUTH'));
    const r = await restoreFromArchive({}, { media: media.enc!, vmName: vm, to: join(dir, 'out'), password: 'media pw' });
    assert.ok(readFileSync(r.disks[0]!.path).equals(disk), 'disk restored from encrypted media differs');
  });
});
