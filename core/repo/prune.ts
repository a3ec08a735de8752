// Remove stored chunks no restore point needs, at the storage level: whole packs whose
// blobs are all unused are deleted; packs that mix used and unused blobs are rewritten
// with the used ones only (blobs are copied sealed: a blob is bound to its chunk id, not to
// its pack); unused loose chunk objects are deleted. The caller holds the exclusive lock
// and passes the complete set of referenced chunk ids.
//
// Order, so that a kill at any moment loses no referenced chunk: new packs and their index
// objects are stored before the old index object is removed, and an index object is
// removed before its pack. What a kill leaves behind is a duplicate blob or a pack with no
// index; the next prune finds such a pack, reads the index in its trailer, and either
// re-creates its index object (it holds chunks nothing else has) or deletes it.

import { HvError, wrapError } from '../errors.ts';
import type { Backend } from './backend.ts';
import { decodePackIndex, decodePackTrailer, PACK_TRAILER_SIZE, type PackEntry } from './pack-format.ts';
import { PackWriter } from './pack-writer.ts';
import type { Repository } from './repository.ts';

export interface PruneResult {
  /** Distinct chunks stored before. */
  chunksTotal: number;
  chunksReferenced: number;
  /** Distinct chunks no longer stored anywhere. */
  chunksRemoved: number;
  /** Stored bytes given back (deleted objects minus rewritten packs). */
  bytesFreed: number;
  packsRemoved: number;
  packsRewritten: number;
  /** Packs that had lost their index object and got it back because they hold needed chunks. */
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

/** What prune asks of the referenced ids: a Set, or GC's compact ChunkIdSet. */
export interface ChunkIdLookup {
  has(id: string): boolean;
}

export async function pruneChunks(repo: Repository, referenced: ChunkIdLookup, opts: PruneOptions = {}): Promise<PruneResult> {
  const { signal } = opts;
  const backend = repo.backend;
  if (repo.readOnly && !opts.whatIf) throw new HvError('ERR_UNSUPPORTED', `${repo.location} is a format 1 repository (made before packs): garbage collection does not delete from it`, { target: repo.location });
  const index = await repo.chunkIndex({ refresh: true, signal });
  if (index.damaged.length > 0) {
    const d = index.damaged[0]!;
    throw new HvError('ERR_CORRUPT', `prune stopped, nothing deleted: index object <index/${d.name}> does not load, so the chunks of its pack are unknown (${d.problem})`, { target: `<index/${d.name}>` });
  }
  const result: PruneResult = { chunksTotal: index.size, chunksReferenced: 0, chunksRemoved: 0, bytesFreed: 0, packsRemoved: 0, packsRewritten: 0, packsRescued: 0, warnings: [] };
  for (const [id] of index.entries()) if (referenced.has(id)) result.chunksReferenced++;

  const packSizes = new Map<string, number>();
  for await (const o of backend.list(signal, 'packs')) packSizes.set(o.name, o.size);
  const indexSizes = new Map<string, number>();
  for await (const o of backend.list(signal, 'index')) indexSizes.set(o.name, o.size);

  // Index objects whose pack is gone: their chunks cannot be read from there anyway.
  for (const name of [...index.packs.keys()]) {
    if (packSizes.has(name)) continue;
    result.warnings.push(`index object <index/${name}> names pack <packs/${name}>, which does not exist; its chunks are missing (run verify)`);
    if (!opts.whatIf) await backend.remove(signal, { type: 'index', name });
    index.removePack(name);
  }

  // Packs without an index object: left by a killed backup or prune. Rescue or delete.
  for (const [name, size] of packSizes) {
    if (index.packs.has(name)) continue;
    const entries = await readPackIndex(backend, repo, name, size, signal).catch((err: unknown) => {
      result.warnings.push(`pack <packs/${name}> has no index object and its own index does not read (${(err as Error).message}); left in place`);
      return undefined;
    });
    if (!entries) continue;
    if (entries.some((e) => referenced.has(e.id) && !index.has(e.id))) {
      if (!opts.whatIf) await backend.save(signal, { type: 'index', name }, await loadSealedIndex(backend, name, size, signal));
      index.addPack(name, entries);
      result.packsRescued++;
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
  const writer = opts.whatIf ? undefined : new PackWriter(backend, repo.codec, index, { signal });
  for (const p of plans) {
    const freed = p.size + (indexSizes.get(p.name) ?? 0);
    if (p.used.length === 0) {
      if (!opts.whatIf) await removePack(backend, p.name, signal);
      result.packsRemoved++;
      result.bytesFreed += freed;
    } else {
      // Copy the used blobs into new packs; only once those are durable may the old one go.
      let written = 0;
      if (writer) {
        for (const e of p.used) {
          const blob = await backend.load(signal, { type: 'packs', name: p.name }, { offset: e.offset, length: e.length }).catch((err: unknown) => {
            throw wrapError(err, `prune: read <chunks/${e.id}> from <packs/${p.name}>`, `<packs/${p.name}>`);
          });
          await writer.add(e.id, blob, e.plainLength);
          written += blob.length;
        }
        await writer.flush();
        await removePack(backend, p.name, signal);
      } else {
        written = p.used.reduce((a, e) => a + e.length, 0);
      }
      result.packsRewritten++;
      result.bytesFreed += freed - written;
    }
    if (!opts.whatIf) index.removePack(p.name);
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
  // Chunks of rewritten packs now live in new packs: read the index afresh.
  if (!opts.whatIf) await repo.chunkIndex({ refresh: true, signal });
  return result;
}

/** Index object first: a pack without one is found and handled by the next prune; an index without its pack would name missing chunks. */
async function removePack(backend: Backend, name: string, signal?: AbortSignal): Promise<void> {
  await backend.remove(signal, { type: 'index', name });
  await backend.remove(signal, { type: 'packs', name });
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

