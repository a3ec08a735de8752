// The backup engine calls HeldLock.check() just before the manifest: a backup whose shared lock
// was removed mid-run (repo unlock --force) fails with ERR_LOCKED, writes no manifest, and still
// merges the VM back — no checkpoint is left behind.
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import sinon from 'sinon';
import { createSampleVM } from '../../core/api/vm.ts';
import { runBackupJob } from '../../core/backup/engine.ts';
import { LocalHost } from '../../core/hosts/index.ts';
import { loadVm } from '../../core/hosts/local/vm-folder.ts';
import type { ProgressEvent } from '../../core/progress.ts';
import { MemoryBackend, Repository } from '../../core/repo/index.ts';
import { LOCK_REFRESH_MS } from '../../core/repo/lock.ts';
import { MiB, scratch } from './testing.ts';
import type { Scratch } from './testing.ts';

describe('backup engine: lock check before the manifest', function () {
  this.timeout(60_000);
  let s: Scratch;
  let vmDir: string;
  let clock: sinon.SinonFakeTimers;
  before(async () => {
    s = scratch('hvb-lock-check-');
    vmDir = s.path('vms', 'web01');
    await createSampleVM({}, { dir: vmDir, sizeBytes: 4 * MiB, seed: 9 });
  });
  after(() => s.cleanup());
  // Only the lock's refresh timer is faked, so the test decides when the refresh runs.
  beforeEach(() => { clock = sinon.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] }); });
  afterEach(() => clock.restore());

  /** On the first backup progress event: optionally remove every lock (as `repo unlock --force` would), then let a refresh run. */
  function ctxFor(backend: MemoryBackend, removeLock: boolean) {
    let fired = false;
    let pending: Promise<void> = Promise.resolve();
    const onProgress = (e: ProgressEvent) => {
      if (fired || e.activity !== 'backup') return;
      fired = true;
      pending = (async () => {
        if (removeLock) {
          const names: string[] = [];
          for await (const o of backend.list(undefined, 'locks')) names.push(o.name);
          assert.equal(names.length, 1, 'the backup holds one lock');
          for (const name of names) await backend.remove(undefined, { type: 'locks', name });
        }
        clock.tick(LOCK_REFRESH_MS);
      })();
    };
    return { ctx: { onProgress }, wasFired: () => fired, pending: () => pending };
  }

  it('fails with ERR_LOCKED, writes no manifest and leaves no checkpoint when the lock was removed', async () => {
    const backend = new MemoryBackend();
    const repo = await Repository.init(backend);
    try {
      const host = new LocalHost();
      const { ctx, wasFired, pending } = ctxFor(backend, true);
      const [r] = await runBackupJob(ctx, { repo, host, sources: [vmDir] });
      await pending();
      assert.ok(wasFired());
      assert.equal(r!.status, 'failed');
      assert.equal(r!.error?.code, 'ERR_LOCKED', r!.error?.message);
      assert.match(r!.error!.message, /lost the lock .* 'backup': its lock file was removed/);
      assert.deepEqual(await repo.listManifests(), [], 'no manifest written');
      const vm = await loadVm(vmDir);
      assert.equal(vm.config.backupCheckpoint, undefined, 'the VM was merged back');
      assert.deepEqual(readdirSync(s.path('vms', 'web01', 'Virtual Hard Disks')).filter((f) => f.endsWith('.avhdx')), [], 'no differencing disk left');
      assert.deepEqual(await host.findLeftoverCheckpoints(await host.describeVM(vmDir)), []);

      // Control: the same refresh with the lock still there succeeds and writes the point.
      const again = ctxFor(backend, false);
      const [ok] = await runBackupJob(again.ctx, { repo, host, sources: [vmDir] });
      await again.pending();
      assert.ok(again.wasFired());
      assert.equal(ok!.status, 'success', ok!.error?.message);
      assert.equal((await repo.listManifests()).length, 1);
    } finally {
      await repo.close();
    }
  });
});
