import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { backupVMs } from '../../core/api/backup.ts';
import { initRepository } from '../../core/api/repository.ts';
import { checkSliceCount, MAX_SLICES_PER_DISK } from '../../core/backup/disk-backup.ts';
import { isHvError } from '../../core/errors.ts';

describe('disks too large for one restore point\'s chunk list', function () {
  this.timeout(60_000);
  it('names the disk and the chunk size that would fit; at the limit it passes', () => {
    const K = 256 * 1024;
    assert.doesNotThrow(() => checkSliceCount('d.vhdx', MAX_SLICES_PER_DISK * K, K));
    assert.throws(() => checkSliceCount('d.vhdx', MAX_SLICES_PER_DISK * K + 1, K),
      (e: unknown) => isHvError(e, 'ERR_UNSUPPORTED') && e.message.includes('d.vhdx') && e.message.includes('--chunk-size 524288'));
    assert.throws(() => checkSliceCount('big.vhdx', 10 * 2 ** 40, K), (e: unknown) => isHvError(e, 'ERR_UNSUPPORTED') && e.message.includes('--chunk-size 4194304'));
  });

  it('a backup of a 1.5 TiB (sparse) disk into a 256 KiB repository fails with that error, stores nothing and leaves no checkpoint', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hvb-bigdisk-'));
    try {
      const vm = join(dir, 'big');
      for (const d of ['Virtual Machines', 'Virtual Hard Disks', 'Snapshots']) mkdirSync(join(vm, d), { recursive: true });
      const disk = join(vm, 'Virtual Hard Disks', 'big.vhdx');
      const q = spawnSync('qemu-img', ['create', '-q', '-f', 'vhdx', '-o', 'subformat=dynamic', disk, '1536G'], { encoding: 'utf8' });
      assert.equal(q.status, 0, q.stderr);
      writeFileSync(join(vm, 'Virtual Machines', 'big.json'), JSON.stringify({ schema: 1, id: randomUUID(), name: 'big', generation: 2, disks: [{ key: 'SCSI:0:0', path: 'Virtual Hard Disks/big.vhdx' }] }));
      const repo = join(dir, 'repo');
      await initRepository({}, { path: repo, chunkSize: 256 * 1024 });
      const [r] = await backupVMs({}, { repository: repo, sources: [vm] });
      assert.equal(r!.status, 'failed');
      assert.equal(r!.error?.code, 'ERR_UNSUPPORTED');
      assert.match(r!.error!.message, /big\.vhdx.*--chunk-size 524288/);
      const stored = (d: string) => (existsSync(join(repo, d)) ? readdirSync(join(repo, d), { recursive: true }).length : 0);
      assert.equal(stored('manifests'), 0);
      assert.equal(stored('packs'), 0);
      // The checkpoint was merged away: no differencing child is left beside the disk.
      assert.deepEqual(readdirSync(join(vm, 'Virtual Hard Disks')).filter((f) => f.endsWith('.avhdx')), []);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
