import assert from 'node:assert/strict';
import { existsSync, rmSync, statSync, truncateSync } from 'node:fs';
import { exportArchive } from '../../core/api/archive.ts';
import { addTestPoint, testDisk } from '../../core/archive/testing.ts';
import { isHvError } from '../../core/errors.ts';
import { chunkFileRange } from '../../core/repo/testing.ts';
import { mediaFiles, newRepo, scratch, type Scratch } from './helpers.ts';

describe('archive export from a damaged repository', function () {
  this.timeout(60_000);
  let s: Scratch;
  beforeEach(() => { s = scratch(); });
  afterEach(() => s.cleanup());

  for (const damage of ['pack removed', 'pack cut short'] as const) {
    it(`${damage}: the export stops with an error naming the chunk and leaves no medium behind`, async () => {
      const repo = await newRepo(s.repoPath);
      const m = await addTestPoint(repo, { vm: 'web01', createdAt: '2026-01-01T00:00:00.000Z', disk: testDisk(repo.chunkSize, 12) });
      const id = m.disks[0]!.chunks!.find((c): c is string => c !== null)!;
      const where = await chunkFileRange(repo, id);
      await repo.close();
      if (damage === 'pack removed') rmSync(where.file);
      else truncateSync(where.file, Math.min(statSync(where.file).size - 1, where.offset + 10));
      await assert.rejects(exportArchive({}, { repository: s.repoPath, pool: 'weekly', mediaDir: s.mediaDir, capacity: '4M' }),
        (e: unknown) => isHvError(e, damage === 'pack removed' ? 'ERR_NOT_FOUND' : 'ERR_CORRUPT') && e.message.includes(`<chunks/`));
      assert.deepEqual(existsSync(s.mediaDir) ? mediaFiles(s.mediaDir) : [], [], 'no medium that looks complete');
    });
  }
});
