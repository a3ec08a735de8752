import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { backupVMs } from '../../core/api/backup.ts';
import { listRestorePoints } from '../../core/api/points.ts';
import { restoreVM } from '../../core/api/restore.ts';
import { verifyRepository } from '../../core/api/verify.ts';
import { createSampleVM } from '../../core/api/vm.ts';
import { isHvError } from '../../core/errors.ts';
import { diskWindows, namedChunks, openRepository } from '../../core/repo/index.ts';
import { sliceChunkIds } from '../../core/repo/manifest-segments.ts';
import { chunkFileRange, flipChunkBit } from '../../core/repo/testing.ts';
import { restoreDisk } from '../../core/restore/disk-restore.ts';
import { checkVhdx, readVhdxInfo } from '../../core/vhdx/index.ts';
import { MiB, newRepo, qemuImg, scratch } from '../backup/testing.ts';
import type { Scratch } from '../backup/testing.ts';

describe('restore and verify', function () {
  this.timeout(120_000);
  let s: Scratch;
  let repo: string;
  let vmDir: string;
  let disk: string;
  let pointId: string;
  const ctx = {};

  before(async () => {
    s = scratch('hvb-restore-');
    repo = await newRepo(s.path('repo'));
    vmDir = s.path('vms', 'app01');
    disk = (await createSampleVM(ctx, { dir: vmDir, sizeBytes: 32 * MiB, seed: 21 })).disk;
    const [r] = await backupVMs(ctx, { repository: repo, sources: [vmDir] });
    assert.equal(r!.status, 'success', JSON.stringify(r!.error));
    pointId = r!.pointId!;
  });
  after(() => s.cleanup());

  it('restores as a new VM with --name: new name and id, same geometry and bytes, unallocated zeros', async () => {
    const r = await restoreVM(ctx, { repository: repo, point: 'latest', vmName: 'app01', to: s.path('r-new'), newName: 'app01-copy' });
    const cfg = JSON.parse(readFileSync(s.path('r-new', 'Virtual Machines', 'app01-copy.json'), 'utf8'));
    const orig = JSON.parse(readFileSync(join(vmDir, 'Virtual Machines', 'app01.json'), 'utf8'));
    assert.equal(cfg.name, 'app01-copy');
    assert.notEqual(cfg.id, orig.id);
    assert.deepEqual(cfg.disks, [{ key: 'SCSI:0:0', path: 'Virtual Hard Disks/app01.vhdx' }]);
    assert.equal(qemuImg('compare', '-f', 'vhdx', '-F', 'vhdx', r.disks[0]!.path, disk).status, 0);
    const info = await readVhdxInfo(r.disks[0]!.path);
    const src = await readVhdxInfo(disk);
    assert.deepEqual([info.blockSize, info.logicalSectorSize, info.physicalSectorSize, info.virtualSize], [src.blockSize, src.logicalSectorSize, src.physicalSectorSize, src.virtualSize]);
    assert.ok(info.allocatedBytes <= src.allocatedBytes, `zero slices were left unallocated (${info.allocatedBytes} > ${src.allocatedBytes})`);
    assert.deepEqual(readdirSync(s.path('r-new')).filter((n) => n.startsWith('.')), [], 'no staging folder left');
  });

  it('restoreDisk: a non-durable staging VHDX with background flushes every 1 MiB checks clean and matches the source', async () => {
    const r = await openRepository(repo);
    try {
      const m = await r.loadManifest(pointId);
      const out = s.path('r-disk', 'app01.vhdx');
      mkdirSync(s.path('r-disk'));
      let reported = 0;
      const written = await restoreDisk(r, m.disks[0]!, out, { writebackBytes: MiB, onBytes: (n) => { reported += n; } });
      assert.equal(written, reported);
      assert.ok(written > 4 * MiB, `wrote ${written} bytes`);
      const check = await checkVhdx(out);
      assert.deepEqual(check.problems, []);
      assert.equal(qemuImg('compare', '-f', 'vhdx', '-F', 'vhdx', out, disk).status, 0);
    } finally {
      await r.close();
    }
  });

  it('refuses to overwrite existing files, naming the file, and leaves nothing partial', async () => {
    await restoreVM(ctx, { repository: repo, point: pointId, to: s.path('r-twice') });
    await assert.rejects(restoreVM(ctx, { repository: repo, point: pointId, to: s.path('r-twice') }),
      (e: unknown) => isHvError(e, 'ERR_ALREADY_EXISTS') && /app01\.vhdx already exists/.test((e as Error).message));
    assert.deepEqual(readdirSync(s.path('r-twice')).sort(), ['Virtual Hard Disks', 'Virtual Machines']);
  });

  it('a missing or non-repository folder gives a clear error', async () => {
    await assert.rejects(listRestorePoints(ctx, { repository: s.path('nope') }), (e: unknown) => isHvError(e, 'ERR_NOT_FOUND') && /nope does not exist/.test((e as Error).message));
    mkdirSync(s.path('not-a-repo'));
    await assert.rejects(restoreVM(ctx, { repository: s.path('not-a-repo'), point: 'latest', to: s.path('x') }),
      (e: unknown) => isHvError(e, 'ERR_NOT_FOUND') && /not an HVBackup repository/.test((e as Error).message));
    await assert.rejects(restoreVM(ctx, { repository: repo, point: 'latest', vmName: 'ghost', to: s.path('x') }), (e: unknown) => isHvError(e, 'ERR_NOT_FOUND') && /ghost/.test((e as Error).message));
  });

  describe('damaged repository', () => {
    let damaged: string;
    let chunk: string;
    let missing: string;
    let lost: string[];
    before(async () => {
      damaged = await newRepo(s.path('repo2'));
      // A VM large enough for two data packs (8-12 MiB each), beside the pack of segments and config.
      const bigVm = s.path('vms-big', 'app01');
      await createSampleVM(ctx, { dir: bigVm, sizeBytes: 96 * MiB, seed: 21 });
      const [r] = await backupVMs(ctx, { repository: damaged, sources: [bigVm] });
      const repo2 = await openRepository(damaged, { threads: 0 });
      try {
        // Data packs only: losing the pack of the point's segments would hide every data chunk from verify.
        const m = await repo2.loadManifest(r!.pointId!);
        const meta = new Set<string>([...namedChunks(m), ...m.disks.flatMap((d) => (d.segments ?? []).filter((x): x is string => x !== null))]);
        const byPack = new Map<string, string[]>();
        for await (const c of repo2.listChunks()) byPack.set(c.pack!, [...(byPack.get(c.pack!) ?? []), c.id]);
        for (const [pack, ids] of byPack) if (ids.some((id) => meta.has(id))) byPack.delete(pack);
        assert.ok(byPack.size >= 2, `the backup made ${byPack.size} data pack(s); this test needs two`);
        const [big, other] = [...byPack].sort((a, b) => b[1].length - a[1].length);
        // A flipped bit near the end of one chunk's blob, and a whole pack gone (with every chunk in it; its index object stays).
        chunk = big![1][0]!;
        const at = await chunkFileRange(repo2, chunk);
        await flipChunkBit(repo2, chunk, at.length - 3);
        lost = other![1];
        missing = lost[0]!;
        rmSync((await chunkFileRange(repo2, missing)).file);
      } finally {
        await repo2.close();
      }
      pointId = r!.pointId!;
    });

    it('verify names each corrupt or missing chunk and the points it breaks', async () => {
      const rep = await verifyRepository(ctx, { repository: damaged });
      assert.equal(rep.ok, false);
      const bad = rep.problems.find((p) => p.chunk === chunk)!;
      assert.match(bad.problem, /corrupt/);
      assert.deepEqual(bad.points, [pointId]);
      for (const id of lost) assert.match(rep.problems.find((p) => p.chunk === id)?.problem ?? `${id} not reported`, new RegExp(`missing.*<chunks/${id}>`));
      const intact = await verifyRepository(ctx, { repository: repo });
      assert.ok(intact.ok, 'the intact repository verifies clean');
      // It checked every distinct chunk of every point but the segments (counted apart): the
      // same bytes loaded one by one.
      const r = await openRepository(repo, { threads: 0 });
      try {
        const ids = new Set<string>();
        const segments = new Set<string>();
        for (const m of await r.listManifests()) {
          for (const id of namedChunks(m)) ids.add(id);
          for (const d of m.disks) {
            for (const id of d.segments ?? []) if (id) segments.add(id);
            for await (const w of diskWindows(r, m.id, d)) for (const c of w.refs) if (c) for (const id of sliceChunkIds(c)) ids.add(id);
          }
        }
        for (const id of segments) ids.delete(id);
        let bytes = 0;
        for (const id of ids) bytes += (await r.loadChunk(id)).length;
        assert.ok(bytes > 4 * MiB, `${bytes} bytes`);
        assert.equal(intact.bytesChecked, bytes);
      } finally {
        await r.close();
      }
    });

    it('restore of a point with a corrupt chunk fails with ERR_CORRUPT/ERR_NOT_FOUND naming the chunk and leaves no disk', async () => {
      await assert.rejects(restoreVM(ctx, { repository: damaged, point: pointId, to: s.path('r-bad') }),
        // Whichever damaged chunk the restore reaches first: reads run concurrently, so it may be any chunk of the lost pack.
        (e: unknown) => (isHvError(e, 'ERR_CORRUPT') || isHvError(e, 'ERR_NOT_FOUND')) && new RegExp([chunk, ...lost].join('|')).test((e as Error).message));
      assert.ok(!existsSync(s.path('r-bad', 'Virtual Hard Disks', 'app01.vhdx')));
      assert.deepEqual(readdirSync(s.path('r-bad')), []);
    });

    it('a corrupt manifest gives ERR_CORRUPT naming it on restore, and verify reports it (listing reads the point summary)', async () => {
      const f = join(damaged, 'manifests', pointId);
      const buf = readFileSync(f);
      buf[10] ^= 0xff;
      writeFileSync(f, buf);
      assert.ok((await listRestorePoints(ctx, { repository: damaged })).some((p) => p.id === pointId), 'listed from points/, as before the damage');
      await assert.rejects(restoreVM(ctx, { repository: damaged, point: pointId, to: join(damaged, '..', 'r-corrupt-manifest') }), (e: unknown) => isHvError(e, 'ERR_CORRUPT') && (e as Error).message.includes(pointId));
      const rep = await verifyRepository(ctx, { repository: damaged });
      assert.ok(rep.problems.some((p) => p.object === `<manifests/${pointId}>`));
    });
  });
});
