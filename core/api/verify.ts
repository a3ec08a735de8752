// Public API: verify a repository (or one restore point): every manifest decodes, every
// segment it lists loads, and every chunk they reference exists, decodes and hashes to its id. Each problem names the chunk or
// object and the restore points it breaks.
import type { VerifyProblem, VerifyReport } from './types.ts';
import { isHvError } from '../errors.ts';
import type { OperationContext } from '../progress.ts';
import { progress } from '../progress.ts';
import type { Repository } from '../repo/index.ts';
import { namedChunks } from '../repo/index.ts';
import { loadWindow } from '../repo/manifest-chunks.ts';
import { sliceChunkIds } from '../repo/manifest-segments.ts';
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

/**
 * Which points need each chunk (a function: the points are worked out only for a chunk that
 * is broken). Reads every segment once, which checks it (a segment is a chunk, verified on
 * load); a segment that does not load is a problem naming the points that list it. A chunk
 * a segment lists is needed by the points listing that segment.
 */
async function chunkUsers(repo: Repository, points: RestorePointManifest[], problems: VerifyProblem[], signal?: AbortSignal): Promise<{ users: Map<string, () => string[]>; segmentsChecked: Set<string> }> {
  const pointsOf = new Map<string, string[]>(); // chunk or segment id → points naming it in their manifest
  const segmentsOf = new Map<string, string[]>(); // chunk id → segments listing it
  const segmentData = new Map<string, number>(); // segment id → its data slices, or -1: it did not load
  const failed: { id: string; problem: string }[] = [];
  const add = (map: Map<string, string[]>, key: string, v: string) => {
    const l = map.get(key);
    if (!l) map.set(key, [v]);
    else if (l[l.length - 1] !== v) l.push(v);
  };
  for (const m of points) {
    for (const c of namedChunks(m)) add(pointsOf, c, m.id);
    for (const d of m.disks) {
      if (!d.segments) continue;
      let data = 0;
      for (let k = 0; k < d.segments.length; k++) {
        const id = d.segments[k];
        if (!id) continue;
        if (!segmentData.has(id)) {
          try {
            const w = await loadWindow(repo, m.id, d, k, signal);
            let n = 0;
            for (const r of w.refs) {
              if (r === null) continue;
              n++;
              // Chunks a split slice's pieces name break the points listing this segment, like whole slices.
              for (const c of sliceChunkIds(r)) add(segmentsOf, c, id);
            }
            segmentData.set(id, n);
          } catch (err) {
            if (isHvError(err, 'ERR_CANCELLED')) throw err;
            segmentData.set(id, -1);
            failed.push({ id, problem: (err as Error).message });
          }
        }
        data = segmentData.get(id)! < 0 || data < 0 ? -1 : data + segmentData.get(id)!;
      }
      if (data >= 0 && data !== d.dataSlices) problems.push({ object: `<manifests/${m.id}>`, problem: `disk ${d.key}: its segments list ${data} data slices, the manifest says ${d.dataSlices}`, points: [m.id] });
    }
  }
  const usersOf = (id: string): string[] => {
    const out = new Set(pointsOf.get(id) ?? []);
    for (const s of segmentsOf.get(id) ?? []) for (const p of pointsOf.get(s) ?? []) out.add(p);
    return [...out];
  };
  for (const f of failed) problems.push({ chunk: f.id, problem: f.problem, points: usersOf(f.id) });
  const users = new Map<string, () => string[]>();
  for (const id of pointsOf.keys()) users.set(id, () => usersOf(id));
  for (const id of segmentsOf.keys()) users.set(id, () => usersOf(id));
  return { users, segmentsChecked: new Set(segmentData.keys()) };
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
      const index = await repo.chunkIndex({ reread: true, signal: ctx.signal });
      for (const d of index.damaged) problems.push({ object: `<index/${d.name}>`, problem: `index object does not load: ${d.problem}`, points: [] });
      const { users, segmentsChecked } = await chunkUsers(repo, points, problems, ctx.signal);
      // In pack order, so readChunks reads each pack's chunks in a few large ranged reads
      // instead of one open and read per chunk; chunks the index does not place go last.
      const ids = [...users.keys()].filter((id) => !segmentsChecked.has(id)).map((id) => {
        const loc = index.locate(id);
        return { id, pack: loc?.pack ?? '\uffff', offset: loc?.offset ?? 0 };
      }).sort((a, b) => (a.pack < b.pack ? -1 : a.pack > b.pack ? 1 : a.offset - b.offset)).map((c) => c.id);
      let bytes = 0;
      let checked = 0;
      for await (const c of repo.readChunksSettled(ids, { verify: true, signal: ctx.signal })) {
        if (c.error) {
          const missing = isHvError(c.error, 'ERR_NOT_FOUND');
          problems.push({ chunk: c.id, problem: missing ? `chunk is missing: ${c.error.message}` : `chunk is corrupt: ${c.error.message}`, points: users.get(c.id)!() });
        } else {
          bytes += c.data.length;
          repo.pool.release(c.data);
        }
        if (++checked % 64 === 0) progress(ctx, { activity: 'verify', target: repo.location, done: checked, total: ids.length });
      }
      progress(ctx, { activity: 'verify', target: repo.location, done: ids.length, total: ids.length, completed: true });
      return { repository: repo.location, pointsChecked: points.length, chunksChecked: ids.length + segmentsChecked.size, bytesChecked: bytes, problems, ok: problems.length === 0 };
    } finally {
      await lock.release();
    }
  }, { chunkWork: true });
}
