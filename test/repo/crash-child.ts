// Child process for the kill -9 test: writes restore points into a repository as fast
// as it can (chunks, then the manifest), until the parent kills it.

import { randomBytes } from 'node:crypto';
import { openRepository } from '../../core/repo/local.ts';
import { makeManifest, storeDisk } from '../../core/repo/testing.ts';

const repo = await openRepository(process.argv[2]!);
const lock = await repo.lock({ exclusive: false, operation: 'crash test writer' });
const shared = randomBytes(repo.chunkSize);
process.stdout.write('ready\n');
for (let i = 0; ; i++) {
  // New chunks, a chunk every round shares, and a zero chunk.
  const data = Buffer.concat([randomBytes(5 * repo.chunkSize), shared, Buffer.alloc(repo.chunkSize)]);
  const disk = await storeDisk(repo, data);
  await repo.saveManifest(makeManifest({ disks: [disk] }));
  process.stdout.write('saved\n');
  void lock;
}
