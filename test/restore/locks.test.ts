// Restore and verify read under a shared lock, so GC (which rewrites packs and deletes the old
// ones) never runs beneath them; on a store mounted read-only, where no lock file can be
// written and nothing can be deleted through the mount, they go on unlocked with a warning.
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { backupVMs } from '../../core/api/backup.ts';
import { restoreVM } from '../../core/api/restore.ts';
import { verifyRepositoryIn } from '../../core/api/verify.ts';
import { createSampleVM } from '../../core/api/vm.ts';
import { isHvError } from '../../core/errors.ts';
import { getHost } from '../../core/hosts/index.ts';
import { ForwardingBackend } from '../../core/repo/backend-forwarding.ts';
import { LocalBackend } from '../../core/repo/backend-local.ts';
import type { Handle, SaveData, SaveOptions } from '../../core/repo/backend.ts';
import { openRepository } from '../../core/repo/index.ts';
import { Repository } from '../../core/repo/repository.ts';
import { restoreVm } from '../../core/restore/restore.ts';
import { MiB, newRepo, qemuImg, scratch, type Scratch } from '../backup/testing.ts';

/** A store mounted read-only: every write fails with EROFS, as the local backend reports it. */
class ReadOnlyStore extends ForwardingBackend {
  override save(_signal: AbortSignal | undefined, h: Handle, _data: SaveData, _opts?: SaveOptions): Promise<void> {
    return Promise.reject(Object.assign(new Error(`save <${h.type}/${h.name}>: EROFS: read-only file system`), { cause: Object.assign(new Error('EROFS: read-only file system'), { code: 'EROFS' }) }));
  }
}

describe('restore and verify under a shared lock', function () {
  this.timeout(60_000);
  let s: Scratch;
  let repo: string;
  let point: string;
  const ctx = {};

  before(async () => {
    s = scratch('hvb-locks-');
    repo = await newRepo(s.path('repo'));
    const vm = s.path('vms', 'vm');
    await createSampleVM(ctx, { dir: vm, sizeBytes: 8 * MiB, seed: 51 });
    const [r] = await backupVMs(ctx, { repository: repo, sources: [vm] });
    point = r!.pointId!;
  });
  after(() => s.cleanup());

  it('a restore waits for no GC: under an exclusive lock it is refused, writing nothing, and after it works', async () => {
    const gc = await openRepository(repo);
    const held = await gc.lock({ exclusive: true, operation: 'gc' });
    try {
      await assert.rejects(restoreVM(ctx, { repository: repo, point, to: s.path('refused') }), (err: unknown) => isHvError(err, 'ERR_LOCKED') && /gc/.test((err as Error).message));
      assert.equal(existsSync(s.path('refused')), false, 'refused before it made even the folder');
    } finally {
      await held.release();
      await gc.close();
    }
    const res = await restoreVM(ctx, { repository: repo, point, to: s.path('after') });
    assert.equal(res.status, 'success');
    assert.deepEqual(readdirSync(s.path('repo', 'locks')), [], 'its lock is released');
  });

  it('a read-only store: restore and verify go on without a lock and say so; a backup (a writer) is refused', async () => {
    const warnings: string[] = [];
    const ro = await Repository.open(new ReadOnlyStore(new LocalBackend(repo)), { threads: 0, onWarning: (w) => warnings.push(w) });
    try {
      const report = await verifyRepositoryIn(ctx, ro);
      assert.ok(report.ok, JSON.stringify(report.problems));
      const manifest = await ro.loadManifest(point);
      const res = await restoreVm(ctx, { repo: ro, host: await getHost('local'), manifest, to: s.path('from-ro') });
      assert.equal(res.status, 'success');
      assert.equal(qemuImg('check', '-f', 'vhdx', res.disks[0]!.path).status, 0);
      assert.equal(warnings.filter((w) => /read-only file system/.test(w)).length, 2, warnings.join('\n'));
      await assert.rejects(ro.lock({ exclusive: false, operation: 'backup' }), /EROFS/);
    } finally {
      await ro.close();
    }
    assert.equal(existsSync(s.path('from-ro', 'Virtual Hard Disks')), true);
  });
});
