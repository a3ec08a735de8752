// The backup job overlaps its set-up: the repository lock is taken while the VMs are
// described, and the previous restore point loads while the checkpoint is taken. What must
// not change: a lock that cannot be taken fails the whole job before any VM is
// checkpointed, and a previous point that cannot be loaded fails the VM with the
// checkpoint merged back. The config files go to a pack of their own, stored while the disks are read.
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import sinon from 'sinon';
import { createSampleVM } from '../../core/api/vm.ts';
import { guestWrite, randomGuestWrites } from '../../core/hosts/local/guest.ts';
import type { LandedWrite } from '../../core/hosts/local/guest.ts';
import { runBackupJob } from '../../core/backup/engine.ts';
import { isHvError } from '../../core/errors.ts';
import { LocalHost } from '../../core/hosts/index.ts';
import { loadVm } from '../../core/hosts/local/vm-folder.ts';
import { MemoryBackend, Repository } from '../../core/repo/index.ts';
import { pointChunks } from '../../core/repo/manifest-chunks.ts';
import { MiB, readAt, scratch } from './testing.ts';
import type { Scratch } from './testing.ts';

describe('backup engine: overlapped set-up keeps its order where it matters', function () {
  this.timeout(60_000);
  let s: Scratch;
  let vmDir: string;
  let disk: string;
  before(async () => {
    s = scratch('hvb-job-order-');
    vmDir = s.path('vms', 'web01');
    disk = (await createSampleVM({}, { dir: vmDir, sizeBytes: 4 * MiB, seed: 11 })).disk;
  });
  after(() => s.cleanup());

  const avhdxLeft = () => readdirSync(s.path('vms', 'web01', 'Virtual Hard Disks')).filter((f) => f.endsWith('.avhdx'));

  it('a repository locked exclusively fails the whole job with ERR_LOCKED, and no VM is checkpointed', async () => {
    const backend = new MemoryBackend();
    const repo = await Repository.init(backend);
    const gc = await (await Repository.open(backend)).lock({ exclusive: true, operation: 'gc' });
    try {
      const host = new LocalHost();
      const checkpoint = sinon.spy(host, 'createBackupCheckpoint');
      await assert.rejects(runBackupJob({}, { repo, host, sources: [vmDir] }), (e: unknown) => isHvError(e, 'ERR_LOCKED') && /'gc' \(exclusive\)/.test((e as Error).message));
      assert.equal(checkpoint.callCount, 0, 'no checkpoint taken');
      assert.equal((await loadVm(vmDir)).config.backupCheckpoint, undefined);
      assert.deepEqual(avhdxLeft(), []);
      const locks: string[] = [];
      for await (const o of backend.list(undefined, 'locks')) locks.push(o.name);
      assert.deepEqual(locks, [gc.name], 'the backup\'s own lock file was removed');
    } finally {
      await gc.release();
      await repo.close();
    }
  });

  it('stores the config files and segments in packs of their own (prune drops them whole) and counts them in the point\'s stats', async () => {
    const backend = new MemoryBackend();
    const repo = await Repository.init(backend);
    try {
      const host = new LocalHost();
      const [full] = await runBackupJob({}, { repo, host, sources: [vmDir] });
      assert.equal(full!.status, 'success', full!.error?.message);
      const before = new Set(await repo.listChunkIds());
      await guestWrite(vmDir, randomGuestWrites(5, 2, 65536, 4 * MiB));
      const [incr] = await runBackupJob({}, { repo, host, sources: [vmDir] });
      assert.equal(incr!.status, 'success', incr!.error?.message);
      assert.equal(incr!.method, 'changed-blocks');
      const m = await repo.loadManifest(incr!.pointId!);
      const index = await repo.chunkIndex({ refresh: true });
      const cfg = m.configFiles[0]!;
      assert.match(cfg.path, /^Virtual Machines\/[^/]+\.json$/);
      const stored = Buffer.concat(await Promise.all(cfg.chunks.map((id) => repo.loadChunk(id!))));
      assert.equal(stored.length, cfg.size);
      assert.equal(JSON.parse(stored.toString('utf8')).backupCheckpoint?.state, 'active', 'the config as it was at the checkpoint');
      const configPacks = new Set(cfg.chunks.map((id) => index.locate(id!)!.pack));
      // Per-point metadata (config files, the disk's segments) against the disk's data chunks
      // (read through the segments: version-2 manifests list no data chunks inline).
      const metaIds = new Set<string | null>([...cfg.chunks, ...(m.disks[0]!.segments ?? [])]);
      const dataIds = [...(await pointChunks(repo, m))].filter((id) => !metaIds.has(id));
      assert.ok(dataIds.length > 0 && (m.disks[0]!.segments ?? []).some((id) => id !== null));
      const metaPacks = new Set([...metaIds].filter((id): id is string => id !== null).map((id) => index.locate(id)!.pack));
      const dataPacks = new Set(dataIds.map((id) => index.locate(id)!.pack));
      assert.deepEqual([...configPacks].filter((p) => !metaPacks.has(p)), []);
      assert.deepEqual([...metaPacks].filter((p) => dataPacks.has(p)), [], 'no pack holds both metadata (config, segments) and data chunks');
      const added = [...index.entries()].filter(([id]) => !before.has(id));
      assert.ok(added.length >= 2, 'changed chunks and the config chunk');
      assert.equal(m.stats.newChunks, added.length, 'stats count the config writer\'s chunks too');
      assert.equal(m.stats.storedBytes, added.reduce((a, [, loc]) => a + loc.length, 0));
    } finally {
      await repo.close();
    }
  });

  it('a previous restore point that cannot be loaded fails the VM and merges its checkpoint back, keeping the guest\'s writes', async () => {
    const backend = new MemoryBackend();
    const repo = await Repository.init(backend);
    try {
      const host = new LocalHost();
      const [first] = await runBackupJob({}, { repo, host, sources: [vmDir] });
      assert.equal(first!.status, 'success', first!.error?.message);
      await backend.save(undefined, { type: 'manifests', name: first!.pointId! }, Buffer.from('not a manifest'), { overwrite: true });
      // The guest writes once the checkpoint is taken: into the child, which must be merged.
      const [write] = randomGuestWrites(3, 1, 65536, 4 * MiB);
      let landed: LandedWrite | undefined;
      const take = host.createBackupCheckpoint.bind(host);
      const checkpoint = sinon.stub(host, 'createBackupCheckpoint').callsFake(async (vm, o) => {
        const cp = await take(vm, o);
        [landed] = await guestWrite(vmDir, [write!]);
        return cp;
      });
      const fresh = await Repository.open(backend);
      try {
        const [r] = await runBackupJob({}, { repo: fresh, host, sources: [vmDir] });
        assert.equal(r!.status, 'failed');
        assert.equal(r!.error?.code, 'ERR_CORRUPT', r!.error?.message);
        assert.match(r!.error!.message, new RegExp(first!.pointId!));
        assert.equal(checkpoint.callCount, 1, 'the checkpoint was taken while the point loaded');
      } finally {
        await fresh.close();
      }
      assert.equal((await loadVm(vmDir)).config.backupCheckpoint, undefined, 'the VM was merged back');
      assert.deepEqual(avhdxLeft(), [], 'no differencing disk left');
      assert.match(landed!.file, /\.avhdx$/, 'the guest wrote into the checkpoint');
      assert.ok((await readAt(disk, write!.offset, write!.data.length)).equals(write!.data), 'the guest write was merged into the disk');
      assert.equal((await fresh.listManifestIds()).length, 1, 'no new restore point');
    } finally {
      await repo.close();
    }
  });

  it('starts every chunk worker for a first backup, and one for a tracked incremental of a few KiB', async () => {
    const backend = new MemoryBackend();
    await (await Repository.init(backend)).close();
    const host = new LocalHost();
    const first = await Repository.open(backend, { threads: 2 });
    try {
      const [full] = await runBackupJob({}, { repo: first, host, sources: [vmDir] });
      assert.equal(full!.status, 'success', JSON.stringify(full!.error));
      assert.equal(full!.method, 'full');
      assert.equal(first.pool.workers, 2, 'no previous point: both workers');
    } finally {
      await first.close();
    }
    await guestWrite(vmDir, randomGuestWrites(5, 2, 4096, 4 * MiB));
    const next = await Repository.open(backend, { threads: 2 });
    try {
      const [inc] = await runBackupJob({}, { repo: next, host, sources: [vmDir] });
      assert.equal(inc!.status, 'success', JSON.stringify(inc!.error));
      assert.equal(inc!.method, 'changed-blocks', inc!.methodReason);
      assert.equal(next.pool.workers, 1, 'a few KiB to read: one worker did it');
    } finally {
      await next.close();
    }
  });
});
