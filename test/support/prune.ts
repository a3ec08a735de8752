// What GC does, for tests of the repository layer: the chunks of every remaining restore point,
// then prune, under the exclusive lock (core/retention does the same with more around it).
import { addPointChunks } from '../../core/repo/manifest-chunks.ts';
import { pruneChunks, type PruneResult } from '../../core/repo/prune.ts';
import type { Repository } from '../../core/repo/repository.ts';

export async function pruneUnreferenced(repo: Repository, operation = 'test prune'): Promise<PruneResult> {
  const lock = await repo.lock({ exclusive: true, operation });
  try {
    const referenced = new Set<string>();
    for (const m of await repo.listManifests()) await addPointChunks(repo, m, referenced);
    return await pruneChunks(repo, referenced);
  } finally {
    await lock.release();
  }
}
