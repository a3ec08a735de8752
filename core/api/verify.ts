// Public API: verify a repository (or one restore point): every manifest decodes, every
// segment it lists loads, and every chunk they reference exists, decodes and hashes to its id. Each problem names the chunk or
// object and the restore points it breaks. With repair, the damaged chunks then leave the
// index, so backups store them again (repair-records.ts says why and how).
import type { RepairSummary, VerifyProblem, VerifyReport } from './types.ts';
import { HvError, isHvError } from '../errors.ts';
import type { OperationContext } from '../progress.ts';
import { log, progress } from '../progress.ts';
import type { Repository } from '../repo/index.ts';
import type { ChunkIndex } from '../repo/chunk-index.ts';
import { namedChunks } from '../repo/index.ts';
import { loadWindow } from '../repo/manifest-chunks.ts';
import { sliceChunkIds } from '../repo/manifest-segments.ts';
import type { RestorePointManifest } from '../repo/manifest-types.ts';
import { optionalString, withRepo } from '../backup/open.ts';
import { pruneChunks } from '../repo/prune.ts';
import { REPAIR_RECORD_VERSION } from '../repo/repair-records.ts';

export interface VerifyParams {
  repository: string;
  password?: string;
  pointId?: string;
  /**
   * After verifying (the whole repository, under the exclusive lock): take the missing and
   * corrupt chunks out of the index and record the points they break (repair-records.ts).
   */
  repair?: boolean;
  /**
   * Read no chunk data: manifests and segments load (they are read whole), and every chunk
   * they name is listed in the index, in a pack (or loose object) that exists and is long
   * enough to hold it. Finds lost and truncated files in seconds, not rot inside them.
   */
  quick?: boolean;
  /**
   * Read only part `part` of `of` of the chunk data (by chunk id, so the parts 1..of of `of`
   * runs cover every chunk once), as restic's --read-data-subset: a repository too large to
   * read every night is read over a week. Manifests and segments are always read whole.
   */
  readSubset?: { part: number; of: number };
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
async function chunkUsers(repo: Repository, points: RestorePointManifest[], problems: VerifyProblem[], signal?: AbortSignal): Promise<{ users: Map<string, () => string[]>; segmentsChecked: Set<string>; failedSegments: string[] }> {
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
  return { users, segmentsChecked: new Set(segmentData.keys()), failedSegments: failed.map((f) => f.id) };
}

export async function verifyRepository(ctx: OperationContext, params: VerifyParams): Promise<VerifyReport> {
  const pointId = optionalString(params.pointId, 'pointId');
  const repair = params.repair === true;
  if (repair && pointId !== undefined) {
    // A chunk taken out of the index must be known to break every point that names it, or a
    // tracked backup of a VM whose newest point was not verified would name it again.
    throw new HvError('ERR_INVALID_ARGUMENT', 'repair verifies the whole repository: it cannot be limited to one restore point', { target: pointId });
  }
  const quick = params.quick === true;
  const readSubset = checkSubset(params.readSubset);
  if (quick && readSubset) throw new HvError('ERR_INVALID_ARGUMENT', 'a quick check reads no chunk data: a read subset means nothing with it');
  return withRepo(params.repository, params.password, ctx, (repo) => verifyRepositoryIn(ctx, repo, { pointId, repair, quick, readSubset }), { chunkWork: !quick });
}

function checkSubset(v: unknown): { part: number; of: number } | undefined {
  if (v === undefined || v === null) return undefined;
  const o = v as { part?: unknown; of?: unknown };
  if (typeof o !== 'object' || !Number.isSafeInteger(o.part) || !Number.isSafeInteger(o.of) || (o.of as number) < 1 || (o.part as number) < 1 || (o.part as number) > (o.of as number)) {
    throw new HvError('ERR_INVALID_ARGUMENT', `readSubset must be {part, of} with 1 ≤ part ≤ of, not ${JSON.stringify(v)}`);
  }
  return { part: o.part as number, of: o.of as number };
}

/** Whether chunk `id` is in part `part` of `of` (its first 32 bits, modulo `of`). */
function inSubset(id: string, s: { part: number; of: number }): boolean {
  return parseInt(id.slice(0, 8), 16) % s.of === s.part - 1;
}

/** verifyRepository on an open repository. */
export async function verifyRepositoryIn(ctx: OperationContext, repo: Repository, opts: { pointId?: string; repair?: boolean; quick?: boolean; readSubset?: { part: number; of: number } } = {}): Promise<VerifyReport> {
  const { pointId, repair = false, quick = false, readSubset } = opts;
  // Repair rewrites the index and packs: no backup may dedupe against them meanwhile.
  const lock = await repo.lock({ exclusive: repair, operation: repair ? 'repair' : 'verify', signal: ctx.signal, reader: !repair });
  try {
    const indexRepair = repair ? await repairIndexObjects(ctx, repo) : undefined;
    // Repair's first step read the index afresh (and a prune, if it ran, left it fresh): not twice.
    const { report, damaged, unreadable, badTables } = await verifyIn(ctx, repo, pointId, quick, readSubset, repair);
    if (!repair) return report;
    for (const t of badTables) {
      log(ctx, 'warning', `repair: removing <tables/${t.name}> (${t.problem}); jobs read index/ instead`, repo.location);
      await repo.backend.remove(ctx.signal, { type: 'tables', name: t.name });
    }
    if (unreadable.length > 0) {
      throw new HvError('ERR_IO', `repair stopped, no chunk taken out of the index: ${unreadable.length} chunk(s) could not be read, which says nothing about their bytes (first: ${unreadable[0]}); run it again once they read`, { target: repo.location });
    }
    return { ...report, repair: await dropDamaged(ctx, repo, damaged, indexRepair!, readSubset === undefined) };
  } finally {
    await lock.release();
  }
}

/** A chunk verify found missing or corrupt, and the points that name it. */
interface Damaged {
  chunk: string;
  points: string[];
}

async function verifyIn(ctx: OperationContext, repo: Repository, pointId: string | undefined, quick: boolean, subset: { part: number; of: number } | undefined, indexFresh: boolean): Promise<{ report: VerifyReport; damaged: Damaged[]; unreadable: string[]; badTables: { name: string; problem: string }[] }> {
  const problems: VerifyProblem[] = [];
  const damaged: Damaged[] = [];
  const unreadable: string[] = [];
  const points = await loadPoints(repo, pointId, problems, ctx.signal);
  // A damaged index object hides where its pack's chunks are: say so by name, besides the
  // chunks that then show up as missing below.
  let index = await repo.chunkIndex({ reread: !indexFresh, signal: ctx.signal });
  // Every object as stored, not a table standing in for some (repair's prune ends with a refresh that may store and use one).
  if (index.table) index = await repo.chunkIndex({ reread: true, signal: ctx.signal });
  for (const d of index.damaged) problems.push({ object: `<index/${d.name}>`, problem: `index object does not load: ${d.problem}`, points: [] });
  // Index tables stand in for index/ in every job's lookups: each must say what index/ says.
  const badTables: { name: string; problem: string }[] = [];
  if (pointId === undefined && subset === undefined) {
    for await (const name of repo.backend.listNames(ctx.signal, 'tables')) {
      const problem = await index.checkTable(repo.backend, repo.codec, name, ctx.signal);
      if (!problem) continue;
      badTables.push({ name, problem });
      problems.push({ object: `<tables/${name}>`, problem: `index table: ${problem}. A table only repeats index/: removing it loses nothing (verify --repair does)`, points: [] });
    }
  }
  const { users, segmentsChecked, failedSegments } = await chunkUsers(repo, points, problems, ctx.signal);
  // In pack order, so readChunks reads each pack's chunks in a few large ranged reads
  // instead of one open and read per chunk; chunks the index does not place go last.
  const ids = [...users.keys()].filter((id) => !segmentsChecked.has(id) && (!subset || inSubset(id, subset))).map((id) => {
    const loc = index.locate(id);
    return { id, pack: loc?.pack ?? '\uffff', offset: loc?.offset ?? 0 };
  }).sort((a, b) => (a.pack < b.pack ? -1 : a.pack > b.pack ? 1 : a.offset - b.offset)).map((c) => c.id);
  if (quick) {
    for (const d of await locateAll(repo, index, ids, ctx.signal)) {
      problems.push({ chunk: d.id, problem: d.problem, points: users.get(d.id)!() });
      damaged.push({ chunk: d.id, points: users.get(d.id)!() });
    }
    progress(ctx, { activity: 'verify', target: repo.location, done: ids.length, total: ids.length, completed: true });
    return { report: { repository: repo.location, pointsChecked: points.length, chunksChecked: ids.length + segmentsChecked.size, bytesChecked: 0, problems, ok: problems.length === 0 }, damaged, unreadable: [], badTables };
  }
  // A segment that did not load is damaged storage only if its chunk does not read back
  // intact (else it is a segment this HVBackup cannot decode: repair leaves it alone).
  let bytes = 0;
  let checked = 0;
  for await (const c of repo.readChunksSettled([...ids, ...failedSegments], { verify: true, signal: ctx.signal })) {
    const segment = checked >= ids.length;
    if (c.error) {
      const missing = isHvError(c.error, 'ERR_NOT_FOUND');
      if (!segment) problems.push({ chunk: c.id, problem: missing ? `chunk is missing: ${c.error.message}` : `chunk is corrupt: ${c.error.message}`, points: users.get(c.id)!() });
      // Only what is really not there, or not what it should be: a read that failed (an I/O
      // error on a share) says nothing about the bytes, and repair must not drop good ones.
      if (missing || c.error.code === 'ERR_CORRUPT') damaged.push({ chunk: c.id, points: users.get(c.id)!() });
      else unreadable.push(`<chunks/${c.id}>: ${c.error.message}`);
    } else {
      if (!segment) bytes += c.data.length;
      repo.pool.release(c.data);
    }
    if (++checked % 64 === 0 && !segment) progress(ctx, { activity: 'verify', target: repo.location, done: checked, total: ids.length });
  }
  progress(ctx, { activity: 'verify', target: repo.location, done: ids.length, total: ids.length, completed: true });
  return { report: { repository: repo.location, pointsChecked: points.length, chunksChecked: ids.length + segmentsChecked.size, bytesChecked: bytes, problems, ok: problems.length === 0 }, damaged, unreadable, badTables };
}

/**
 * The chunks of `ids` that are certainly not there, from metadata alone: not in the index, or
 * in a pack (loose object) that is gone or too short to hold them. One listing of packs/ and of
 * chunks/ (a size each), no data read.
 */
async function locateAll(repo: Repository, index: ChunkIndex, ids: readonly string[], signal?: AbortSignal): Promise<{ id: string; problem: string }[]> {
  const sizes = { packs: new Map<string, number>(), chunks: new Map<string, number>() };
  for (const type of ['packs', 'chunks'] as const) for await (const o of repo.backend.list(signal, type)) sizes[type].set(o.name, o.size);
  const out: { id: string; problem: string }[] = [];
  for (const id of ids) {
    const loc = index.locate(id);
    const file = loc?.pack === undefined ? `<chunks/${id}>` : `<packs/${loc.pack}>`;
    const size = loc?.pack === undefined ? sizes.chunks.get(id) : sizes.packs.get(loc.pack);
    if (!loc) out.push({ id, problem: 'chunk is missing: the index does not list it' });
    else if (size === undefined) out.push({ id, problem: `chunk is missing: ${file}, which holds it, does not exist` });
    else if (loc.pack !== undefined && loc.offset + loc.length > size) out.push({ id, problem: `chunk is missing: ${file} is ${size} bytes, cut short of its bytes ${loc.offset}..${loc.offset + loc.length}` });
  }
  return out;
}

/**
 * Repair, step 1: index objects that do not load are removed, and a prune that keeps every
 * chunk lists their packs again from the packs' own trailers (prune.ts "rescue"), so the
 * verification that follows sees every chunk that is really there. Nothing else changes.
 */
async function repairIndexObjects(ctx: OperationContext, repo: Repository): Promise<{ indexObjectsRemoved: number; packsRescued: number }> {
  const index = await repo.chunkIndex({ reread: true, signal: ctx.signal });
  if (index.damaged.length === 0) return { indexObjectsRemoved: 0, packsRescued: 0 };
  for (const d of index.damaged) {
    log(ctx, 'warning', `repair: removing index object <index/${d.name}>, which does not load (${d.problem}); its packs are listed again from their own indexes`, repo.location);
    await repo.backend.remove(ctx.signal, { type: 'index', name: d.name });
  }
  const pruned = await pruneChunks(repo, { has: () => true }, { signal: ctx.signal });
  for (const w of pruned.warnings) log(ctx, 'warning', w, repo.location);
  return { indexObjectsRemoved: index.damaged.length, packsRescued: pruned.packsRescued };
}

/**
 * Repair, step 2: the damaged chunks out of the index (prune keeping every other chunk: a
 * pack holding one is rewritten without it, a pack that is gone is left out), then a repair
 * record naming them and the points they break, so those VMs scan at their next backup.
 */
async function dropDamaged(ctx: OperationContext, repo: Repository, damaged: Damaged[], index: { indexObjectsRemoved: number; packsRescued: number }, whole: boolean): Promise<RepairSummary> {
  const chunks = new Set(damaged.map((d) => d.chunk));
  const points = new Set(damaged.flatMap((d) => d.points));
  const summary: RepairSummary = { ...index, chunksRemoved: 0, packsRewritten: 0, packsRemoved: 0, pointsToRescan: [...points].sort() };
  // Records that do not load make every VM scan. A verification of every chunk saw each one
  // the index lacks (what they named included) as missing, so the record below names all it
  // has to and they can go; after a read subset they stay.
  const { unreadable } = whole ? await repo.repairRecords(ctx.signal) : { unreadable: [] };
  const dropUnreadable = async () => {
    for (const u of unreadable) {
      log(ctx, 'warning', `repair: removing repair record <repairs/${u.name}>, which does not load (${u.problem})`, repo.location);
      await repo.removeRepairRecord(u.name, ctx.signal);
    }
  };
  if (chunks.size === 0) {
    await dropUnreadable();
    return summary;
  }
  const pruned = await pruneChunks(repo, { has: (id) => !chunks.has(id) }, { signal: ctx.signal });
  for (const w of pruned.warnings) log(ctx, 'warning', w, repo.location);
  summary.chunksRemoved = chunks.size;
  summary.packsRewritten = pruned.packsRewritten;
  summary.packsRemoved = pruned.packsRemoved;
  // After the index no longer lists them: a kill in between leaves the chunks out and no
  // record, and the next repair finds the same points broken (now by missing chunks) again.
  await repo.saveRepairRecord({ version: REPAIR_RECORD_VERSION, repairedAt: new Date().toISOString(), chunks: [...chunks].sort(), points: summary.pointsToRescan }, ctx.signal);
  await dropUnreadable();
  log(ctx, 'info', `repair: ${chunks.size} damaged chunk(s) out of the index; the next backup of the VMs of ${points.size} restore point(s) reads their disks whole and stores what it still finds`, repo.location);
  return summary;
}
