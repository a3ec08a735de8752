// Remove stored chunks no restore point needs, at the storage level: whole packs whose
// blobs are all unused are deleted; packs that mix used and unused blobs are rewritten
// with the used ones only (blobs are copied sealed: a blob is bound to its chunk id, not to
// its pack); unused loose chunk objects are deleted. The caller holds the exclusive lock
// and passes the complete set of referenced chunk ids.
//
// The index is rewritten as consolidated index objects (at most `pruneLimits.indexEntries`
// entries each) listing every pack that stays; this is also how a repository's one-object-
// per-pack index (format 2 to 4) and a backup's one object per flush get merged into few.
// Order, so that a kill at any moment loses no referenced chunk: the new packs (with their
// index object), then the consolidated index objects, are durable before any old index
// object is removed, and every old index object is removed before any pack. What a kill
// leaves behind is a pack listed twice (read once), a duplicate blob, or a pack with no
// index object; the next prune finds such a pack, reads the index in its trailer, and
// either lists it in the index again (it holds chunks nothing else has) or deletes it.

import { randomBytes } from 'node:crypto';
import { HvError, wrapError } from '../errors.ts';
import type { Backend } from './backend.ts';
import type { ChunkIndex } from './chunk-index.ts';
import { decodePackIndex, decodePackTrailer, encodeIndexObject, PACK_NAME, PACK_TRAILER_SIZE, type PackEntry } from './pack-format.ts';
import { PackWriter } from './pack-writer.ts';
import type { Repository } from './repository.ts';

/** Entries per consolidated index object: ~44 MiB, read in one piece at every start. Tests lower it. */
export const pruneLimits = { indexEntries: 1024 * 1024 };

export interface PruneResult {
  /** Distinct chunks stored before. */
  chunksTotal: number;
  chunksReferenced: number;
  /** Distinct chunks no longer stored anywhere. */
  chunksRemoved: number;
  /**
   * Stored bytes given back: deleted packs, loose chunks and index objects, less the blobs
   * copied into new packs. What GC writes beside those blobs (the new packs' own indexes, the
   * consolidated index objects) is not counted, so what-if can give the same figure.
   */
  bytesFreed: number;
  packsRemoved: number;
  packsRewritten: number;
  /** Packs that no index object listed and are listed again because they hold needed chunks. */
  packsRescued: number;
  /** Problems that did not stop the prune (an index naming a pack that is gone). */
  warnings: string[];
}

export interface PruneOptions {
  whatIf?: boolean;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
}

interface PackPlan {
  name: string;
  size: number;
  entries: PackEntry[];
  used: PackEntry[];
}

/**
 * Missing packs named one by one in the warnings; past this, one line counts the rest. A
 * repository whose packs/ was lost (a restore of the folder that missed it) named each of
 * 125,000 packs in a line of its own, ~37 MB of warnings held and printed.
 */
const GONE_NAMED = 20;

/** What prune asks of the referenced ids: a Set, or GC's compact ChunkIdSet. */
export interface ChunkIdLookup {
  has(id: string): boolean;
}

export async function pruneChunks(repo: Repository, referenced: ChunkIdLookup, opts: PruneOptions = {}): Promise<PruneResult> {
  const { signal } = opts;
  const backend = repo.backend;
  if (repo.readOnly && !opts.whatIf) throw new HvError('ERR_UNSUPPORTED', `${repo.location} is a format 1 repository (made before packs): garbage collection does not delete from it`, { target: repo.location });
  const index = await repo.chunkIndex({ reread: true, signal });
  if (index.damaged.length > 0) {
    const d = index.damaged[0]!;
    throw new HvError('ERR_CORRUPT', `prune stopped, nothing deleted: index object <index/${d.name}> does not load, so the chunks of the packs it lists are unknown (${d.problem})`, { target: `<index/${d.name}>` });
  }
  // Consolidated index objects list many packs: older HVBackup must refuse the repository from now on (the caller holds the exclusive lock).
  if (!opts.whatIf) await repo.upgradeFormat(signal, { locked: true });
  // The plans below change this index (packs forgotten, rescued): the next refresh reads it afresh.
  index.invalidate();
  const result: PruneResult = { chunksTotal: index.size, chunksReferenced: 0, chunksRemoved: 0, bytesFreed: 0, packsRemoved: 0, packsRewritten: 0, packsRescued: 0, warnings: [] };
  for (const [id] of index.entries()) if (referenced.has(id)) result.chunksReferenced++;

  const packSizes = new Map<string, number>();
  for await (const o of backend.list(signal, 'packs')) packSizes.set(o.name, o.size);
  const indexSizes = new Map<string, number>();
  for await (const o of backend.list(signal, 'index')) indexSizes.set(o.name, o.size);
  // Every index object read: all are replaced when the index is rewritten.
  const oldObjects = [...index.objects.keys()];
  let changed = false;

  // Packs an index object names that are gone: their chunks cannot be read from there anyway.
  // The object lists other packs too, so it stays until the rewrite below leaves the pack out.
  let packsGone = 0;
  for (const [object, packs] of index.objects) {
    for (const name of packs) {
      if (packSizes.has(name) || !index.packs.has(name)) continue;
      if (++packsGone <= GONE_NAMED) result.warnings.push(`index object <index/${object}> names pack <packs/${name}>, which does not exist; its chunks are missing (run verify); the rewritten index leaves it out`);
      index.removePack(name);
      changed = true;
    }
  }
  if (packsGone > GONE_NAMED) result.warnings.push(`${packsGone - GONE_NAMED} more packs that index objects name do not exist (${packsGone} in all; the first ${GONE_NAMED} are named above); their chunks are missing too (run verify)`);

  // Packs without an index object: left by a killed backup or prune. Rescue or delete.
  for (const [name, size] of packSizes) {
    if (index.packs.has(name)) continue;
    if (!PACK_NAME.test(name)) {
      // Not a name this program gives a pack (a copy someone left, a tool's temporary file): not ours to index or delete.
      result.warnings.push(`packs/ holds ${name}, which is not a pack name (64 lowercase hex); left in place`);
      continue;
    }
    const entries = await readPackIndex(backend, repo, name, size, signal).catch((err: unknown) => {
      result.warnings.push(`pack <packs/${name}> has no index object and its own index does not read (${(err as Error).message}); left in place`);
      return undefined;
    });
    if (!entries) continue;
    if (entries.some((e) => referenced.has(e.id) && !index.has(e.id))) {
      index.addPack(name, entries);
      result.packsRescued++;
      changed = true;
    } else {
      if (!opts.whatIf) await backend.remove(signal, { type: 'packs', name });
      result.packsRemoved++;
      result.bytesFreed += size;
    }
  }

  // Which copy of each chunk stays: the one the index reads, if the chunk is referenced.
  const keep = (pack: string, e: PackEntry) => {
    if (!referenced.has(e.id)) return false;
    const loc = index.locate(e.id);
    return loc?.pack === pack && loc.offset === e.offset;
  };
  const plans: PackPlan[] = [];
  for (const [name, entries] of index.packs) {
    const used = entries.filter((e) => keep(name, e));
    if (used.length < entries.length) plans.push({ name, size: packSizes.get(name) ?? 0, entries, used });
  }
  // A loop, not [...index.entries()]: that made a pair per chunk (~1 GB at 5 M chunks) to keep the few loose ones.
  const looseGarbage: [string, { length: number }][] = [];
  for (const [id, loc] of index.entries()) if (loc.pack === undefined && !referenced.has(id)) looseGarbage.push([id, loc]);
  const gone = new Set<string>();
  for (const p of plans) for (const e of p.entries) if (!referenced.has(e.id)) gone.add(e.id);
  for (const [id] of looseGarbage) gone.add(id);
  result.chunksRemoved = gone.size;

  const total = plans.length + looseGarbage.length;
  let done = 0;
  // 1. The used blobs of mixed packs into new packs (durable, with their index object, before anything old goes).
  if (!opts.whatIf && plans.some((p) => p.used.length > 0)) {
    const writer = new PackWriter(backend, repo.codec, index, { signal });
    for (const p of plans) {
      for (const e of p.used) {
        const blob = await backend.load(signal, { type: 'packs', name: p.name }, { offset: e.offset, length: e.length }).catch((err: unknown) => {
          throw wrapError(err, `prune: read <chunks/${e.id}> from <packs/${p.name}>`, `<packs/${p.name}>`);
        });
        await writer.add(e.id, blob, e.plainLength);
      }
    }
    await writer.flush();
  }
  for (const p of plans) {
    const written = p.used.reduce((a, e) => a + e.length, 0);
    if (p.used.length === 0) result.packsRemoved++;
    else result.packsRewritten++;
    result.bytesFreed += p.size - written;
    index.removePack(p.name);
  }

  // 2. The consolidated index: every pack that stays, durable before any old object goes.
  const groups = indexGroups(index);
  if (changed || plans.length > 0 || groups.length !== oldObjects.length) {
    const written = new Set<string>();
    if (!opts.whatIf) {
      for (const g of groups) {
        const name = randomBytes(32).toString('hex');
        const plain = encodeIndexObject(g.map((pack) => ({ name: pack, entries: index.packs.get(pack)! })));
        await backend.save(signal, { type: 'index', name }, repo.codec.seal('index', plain, name)).catch((err: unknown) => {
          throw wrapError(err, `prune: save consolidated index object <index/${name}> (${g.length} packs)`, `<index/${name}>`);
        });
        written.add(name);
      }
    }
    // 3. Every older index object (those read, and the new packs' own), and every index table:
    // each covers objects removed here (a later load would pass it over), and none may name a
    // pack removed below.
    for (const name of index.objects.keys()) {
      if (written.has(name)) continue;
      if (!opts.whatIf) await backend.remove(signal, { type: 'index', name });
      result.bytesFreed += indexSizes.get(name) ?? 0;
    }
    for await (const t of backend.list(signal, 'tables')) {
      if (!opts.whatIf) await backend.remove(signal, { type: 'tables', name: t.name });
      result.bytesFreed += t.size;
    }
  }
  // 4. Packs no index object lists any more.
  for (const p of plans) {
    if (!opts.whatIf) await backend.remove(signal, { type: 'packs', name: p.name });
    opts.onProgress?.(++done, total);
  }
  for (const [id, loc] of looseGarbage) {
    if (!opts.whatIf) {
      await backend.remove(signal, { type: 'chunks', name: id });
      index.removeLoose(id);
    }
    result.bytesFreed += loc.length;
    opts.onProgress?.(++done, total);
  }
  // The index is rewritten and the packs changed (or, for what-if, only the plans above): read it afresh.
  await repo.chunkIndex({ refresh: true, signal });
  return result;
}

/** The packs `index` knows, in groups of at most pruneLimits.indexEntries entries (a larger pack alone). */
function indexGroups(index: ChunkIndex): string[][] {
  const groups: string[][] = [];
  let group: string[] = [];
  let entries = 0;
  for (const [name, packEntries] of index.packs) {
    if (group.length > 0 && entries + packEntries.length > pruneLimits.indexEntries) {
      groups.push(group);
      group = [];
      entries = 0;
    }
    group.push(name);
    entries += packEntries.length;
  }
  if (group.length > 0) groups.push(group);
  return groups;
}

async function loadSealedIndex(backend: Backend, name: string, size: number, signal?: AbortSignal): Promise<Buffer> {
  const what = `<packs/${name}>`;
  if (size < PACK_TRAILER_SIZE) throw new HvError('ERR_CORRUPT', `${what}: ${size} bytes is too short for a pack`, { target: what });
  const trailer = await backend.load(signal, { type: 'packs', name }, { offset: size - PACK_TRAILER_SIZE, length: PACK_TRAILER_SIZE });
  const at = decodePackTrailer(trailer, size, what);
  return backend.load(signal, { type: 'packs', name }, at);
}

/** A pack's own index, from its trailer (for a pack whose index object is lost). */
export async function readPackIndex(backend: Backend, repo: Pick<Repository, 'codec'>, name: string, size: number, signal?: AbortSignal): Promise<PackEntry[]> {
  const sealed = await loadSealedIndex(backend, name, size, signal);
  return decodePackIndex(repo.codec.open('index', name, sealed), `<packs/${name}>`, size - PACK_TRAILER_SIZE - sealed.length);
}

