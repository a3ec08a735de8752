// Public API: verify a repository (or one restore point): every manifest decodes, every
// referenced chunk exists, decodes and hashes to its id. Each problem names the chunk or
// object and the restore points it breaks.
import type { VerifyProblem, VerifyReport } from './types.ts';
import { isHvError } from '../errors.ts';
import type { OperationContext } from '../progress.ts';
import { progress } from '../progress.ts';
import type { Repository } from '../repo/index.ts';
import { referencedChunks } from '../repo/index.ts';
import type { RestorePointManifest } from '../repo/manifest-types.ts';
import { optionalString, withRepo } from '../backup/open.ts';

export interface VerifyParams {
  repository: string;
  password?: string;
  pointId?: string;
}

async function loadPoints(repo: Repository, pointId: string | undefined, problems: VerifyProblem[], signal?: AbortSignal): Promise<RestorePointManifest[]> {
  const ids = pointId !== undefined ? [await repo.resolveManifestId(pointId, signal)] : await repo.listManifestIds(signal);
  const out: RestorePointManifest[] = [];
  for (const id of ids) {
    try {
      out.push(await repo.loadManifest(id, signal));
    } catch (err) {
      problems.push({ object: `<manifests/${id}>`, problem: (err as Error).message, points: [id] });
    }
  }
  return out;
}

export async function verifyRepository(ctx: OperationContext, params: VerifyParams): Promise<VerifyReport> {
  const pointId = optionalString(params.pointId, 'pointId');
  return withRepo(params.repository, params.password, ctx, async (repo) => {
    const lock = await repo.lock({ exclusive: false, operation: 'verify', signal: ctx.signal });
    try {
      const problems: VerifyProblem[] = [];
      const points = await loadPoints(repo, pointId, problems, ctx.signal);
      // A damaged index object hides where its pack's chunks are: say so by name, besides the
      // chunks that then show up as missing below.
      const index = await repo.chunkIndex({ refresh: true, signal: ctx.signal });
      for (const d of index.damaged) problems.push({ object: `<index/${d.name}>`, problem: `index object does not load: ${d.problem}`, points: [] });
      const users = new Map<string, string[]>();
      for (const m of points) for (const c of referencedChunks(m)) users.set(c, [...(users.get(c) ?? []), m.id]);
      const ids = [...users.keys()];
      let bytes = 0;
      let next = 0;
      let checked = 0;
      const worker = async () => {
        while (next < ids.length) {
          const id = ids[next++]!;
          try {
            const data = await repo.loadChunk(id, { verify: true, signal: ctx.signal });
            bytes += data.length;
          } catch (err) {
            if (isHvError(err, 'ERR_CANCELLED')) throw err;
            const missing = isHvError(err, 'ERR_NOT_FOUND');
            problems.push({ chunk: id, problem: missing ? `chunk is missing: ${(err as Error).message}` : `chunk is corrupt: ${(err as Error).message}`, points: users.get(id)! });
          }
          if (++checked % 64 === 0) progress(ctx, { activity: 'verify', target: repo.location, done: checked, total: ids.length });
        }
      };
      await Promise.all(Array.from({ length: Math.max(4, repo.pool.threads * 2) }, worker));
      progress(ctx, { activity: 'verify', target: repo.location, done: ids.length, total: ids.length, completed: true });
      return { repository: repo.location, pointsChecked: points.length, chunksChecked: ids.length, bytesChecked: bytes, problems, ok: problems.length === 0 };
    } finally {
      await lock.release();
    }
  });
}
