// Restore-point manifests in the repository: manifests/<id> holds
// codec.seal('manifests', encodeObject(JSON)). Ids are random 32 bytes (hex), chosen
// before the manifest is written (the manifest names its own id). Manifests never
// change once written, so loaded ones are cached. Beside each manifest, points/<id> holds
// its summary (no chunk lists), written right after it: listing and choosing points reads
// those, not every manifest's chunk list (tens of MB each for a large disk). A manifest
// without a summary (a writer killed in between, media, older repositories) is read whole.

import { randomBytes } from 'node:crypto';
import { HvError, wrapError } from '../errors.ts';
import type { Backend } from './backend.ts';
import type { ObjectCodec } from './crypto/codec.ts';
import { decodeManifest, decodeSummary, decodeSummarySet, encodeManifest, encodeSummary, encodeSummarySet, isRestorePointId, summarize } from './manifest.ts';
import type { RestorePointManifest, RestorePointSummary } from './manifest-types.ts';
import { decodeObject, encodeObject } from './object-format.ts';

export const MIN_ID_PREFIX = 8;

/**
 * points/ names of summary sets: `set-<ms since 1970, 13 digits>-<c: complete | p: partial>-<16
 * hex random>`. Sorted by name, they are in the order written (within a millisecond, either).
 */
const SET_NAME = /^set-(\d{13})-([cp])-[0-9a-f]{16}$/;

/** Index in `sorted` (set names in order) of the newest complete set, -1 if none: readers start there. */
function newestComplete(sorted: readonly string[]): number {
  return sorted.findLastIndex((n) => SET_NAME.exec(n)![2] === 'c');
}

/**
 * A backup that read at least this many summaries one by one stores them as one set: the
 * next job reads one object for them. 3,000 points, read one by one, took a tracked
 * incremental's engine time from ~0.48 s to ~0.9 s.
 */
export const SET_MIN = 32;
/** Sets a reader had to read past which the next set a backup writes is complete (every point): readers start from the newest complete set. */
export const SETS_MAX = 8;

export interface SummariesOptions {
  /**
   * May store a summary set (points/set-…) if this read had to read many summaries one by one:
   * only callers holding the repository lock (a backup), never a listing or a what-if.
   */
  consolidate?: boolean;
  /** Tests: SET_MIN and SETS_MAX. */
  setMin?: number;
  setsMax?: number;
}

export class ManifestStore {
  readonly #backend: Backend;
  readonly #codec: ObjectCodec;
  readonly #cache = new Map<string, RestorePointManifest>();
  /**
   * Summaries already read, by point id. A point never changes once written (its id is random
   * and names it), so a long-lived process hands this map from one handle of a repository to
   * the next (core/repo/repository.ts keepChunkIndexes): each backup then reads only the
   * summaries of points it has not seen, not every point's. Which points exist is still listed
   * each time, so removed points drop out.
   */
  readonly summaryCache: Map<string, RestorePointSummary>;

  constructor(backend: Backend, codec: ObjectCodec, summaryCache = new Map<string, RestorePointSummary>()) {
    this.#backend = backend;
    this.#codec = codec;
    this.summaryCache = summaryCache;
  }

  async save(m: RestorePointManifest, signal?: AbortSignal): Promise<string> {
    const manifest = m.id ? m : { ...m, id: randomBytes(32).toString('hex') };
    const stored = this.#codec.seal('manifests', encodeObject(encodeManifest(manifest)), manifest.id);
    // The summary is stored beside the manifest, not after it: listing goes by manifests and
    // ignores a summary without one (a kill between the two; GC removes it), and a summary
    // that failed to be written only means this point is listed the slow way (from its manifest).
    const summary = this.#backend.save(signal, { type: 'points', name: manifest.id }, this.#codec.seal('points', encodeObject(encodeSummary(summarize(manifest))), manifest.id)).catch(() => {});
    try {
      await this.#backend.save(signal, { type: 'manifests', name: manifest.id }, stored);
    } finally {
      await summary;
    }
    this.#cache.set(manifest.id, manifest);
    this.summaryCache.set(manifest.id, summarize(manifest));
    return manifest.id;
  }

  async load(idOrPrefix: string, signal?: AbortSignal): Promise<RestorePointManifest> {
    const id = isRestorePointId(idOrPrefix) ? idOrPrefix : await this.resolve(idOrPrefix, signal);
    const cached = this.#cache.get(id);
    if (cached) return cached;
    const what = `<manifests/${id}>`;
    let stored: Buffer;
    try {
      stored = await this.#backend.load(signal, { type: 'manifests', name: id });
    } catch (err) {
      if (this.#backend.isNotFound(err)) throw new HvError('ERR_NOT_FOUND', `restore point ${id} does not exist in ${this.#backend.location}`, { target: id, cause: err });
      throw wrapError(err, `load ${what}`, what);
    }
    const m = decodeManifest(decodeObject(this.#codec.open('manifests', id, stored), what), what, id);
    this.#cache.set(id, m);
    return m;
  }

  async ids(signal?: AbortSignal): Promise<string[]> {
    const ids: string[] = [];
    for await (const name of this.#backend.listNames(signal, 'manifests')) if (isRestorePointId(name)) ids.push(name);
    return ids;
  }

  /** Every manifest, loaded 16 at a time (one after another, a repository of a few hundred points took a noticeable part of an incremental's fixed cost). */
  async list(signal?: AbortSignal): Promise<RestorePointManifest[]> {
    const ids = await this.ids(signal);
    return mapLimit(ids, 16, (id) => this.load(id, signal));
  }

  async resolve(prefix: string, signal?: AbortSignal): Promise<string> {
    const p = prefix.toLowerCase();
    if (!/^[0-9a-f]+$/.test(p) || p.length < MIN_ID_PREFIX || p.length > 64) {
      throw new HvError('ERR_INVALID_ARGUMENT', `restore point id "${prefix}" must be ${MIN_ID_PREFIX} to 64 hex characters`, { target: prefix });
    }
    const matches = (await this.ids(signal)).filter((id) => id.startsWith(p));
    if (matches.length === 0) throw new HvError('ERR_NOT_FOUND', `no restore point ${prefix} in ${this.#backend.location}`, { target: prefix });
    if (matches.length > 1) throw new HvError('ERR_INVALID_ARGUMENT', `restore point id prefix ${prefix} is ambiguous (${matches.length} matches)`, { target: prefix });
    return matches[0]!;
  }

  /**
   * Every restore point's summary: from the summary sets (the newest complete one and those
   * after it), else from points/<id>, else from the manifest itself; 16 loads at a time.
   */
  async summaries(signal?: AbortSignal, opts: SummariesOptions = {}): Promise<RestorePointSummary[]> {
    const ids = await this.ids(signal);
    const known = this.summaryCache;
    // Points gone since (retention, another process's removal) leave the cache.
    if (known.size > 0) {
      const listed = new Set(ids);
      for (const id of known.keys()) if (!listed.has(id)) known.delete(id);
    }
    const out: RestorePointSummary[] = new Array(ids.length);
    const missing: number[] = [];
    for (let i = 0; i < ids.length; i++) {
      const s = known.get(ids[i]!) ?? this.#cache.get(ids[i]!);
      if (s) out[i] = s;
      else missing.push(i);
    }
    if (missing.length === 0) return out;
    const have = new Set<string>();
    const sets: string[] = [];
    for await (const name of this.#backend.listNames(signal, 'points')) {
      if (SET_NAME.test(name)) sets.push(name);
      else have.add(name);
    }
    // Sets from the newest complete one on: an older one holds nothing the complete one lacks
    // but points removed since, or points also in a set after it, or in points/<id>.
    sets.sort();
    const from = newestComplete(sets);
    const read = sets.slice(Math.max(0, from));
    let complete = from >= 0;
    if (read.length > 0) {
      const wanted = new Map(missing.map((i) => [ids[i]!, i]));
      const loaded = await mapLimit(read, 16, (name) => this.#loadSet(name, signal).catch(() => undefined));
      for (const set of loaded) {
        // A set that did not load (damaged, or removed by GC meanwhile) leaves its points to be read one by one.
        if (!set) {
          complete = false;
          continue;
        }
        for (const p of set.points) {
          const i = wanted.get(p.id);
          if (i === undefined) continue;
          wanted.delete(p.id);
          out[i] = p;
          known.set(p.id, p);
        }
      }
      missing.splice(0, missing.length, ...wanted.values());
    }
    const one = await mapLimit(missing, 16, async (i) => {
      const id = ids[i]!;
      // A manifest read whole (no summary, or a summary that did not load) is kept as its
      // summary: the cache outlives this handle, and chunk lists can be tens of MB.
      const s = have.has(id) ? await this.#loadSummary(id, signal).catch(async () => summarize(await this.load(id, signal))) : summarize(await this.load(id, signal));
      out[i] = s;
      known.set(id, s);
      return s;
    });
    if (opts.consolidate && one.length >= (opts.setMin ?? SET_MIN)) {
      // Complete (every point) when there is none yet or readers now read many sets; else just those read one by one.
      const whole = !complete || read.length >= (opts.setsMax ?? SETS_MAX);
      await this.#saveSet(whole, whole ? out : one, signal).catch(() => {}); // a cache: a failed write costs the next reader time only
    }
    return out;
  }

  async #loadSet(name: string, signal?: AbortSignal): Promise<{ complete: boolean; points: RestorePointSummary[] }> {
    const what = `<points/${name}>`;
    const stored = await this.#backend.load(signal, { type: 'points', name });
    return decodeSummarySet(decodeObject(this.#codec.open('points', name, stored), what), what);
  }

  async #saveSet(complete: boolean, points: RestorePointSummary[], signal?: AbortSignal): Promise<string> {
    const name = `set-${String(Date.now()).padStart(13, '0')}-${complete ? 'c' : 'p'}-${randomBytes(8).toString('hex')}`;
    await this.#backend.save(signal, { type: 'points', name }, this.#codec.seal('points', encodeObject(encodeSummarySet({ complete, points })), name));
    return name;
  }

  /** Summary sets older than the newest complete one: nothing reads them (GC removes them). */
  async staleSets(signal?: AbortSignal): Promise<string[]> {
    const sets: string[] = [];
    for await (const name of this.#backend.listNames(signal, 'points')) if (SET_NAME.test(name)) sets.push(name);
    sets.sort();
    const from = newestComplete(sets);
    return from > 0 ? sets.slice(0, from) : [];
  }

  async #loadSummary(id: string, signal?: AbortSignal): Promise<RestorePointSummary> {
    const what = `<points/${id}>`;
    const stored = await this.#backend.load(signal, { type: 'points', name: id });
    return decodeSummary(decodeObject(this.#codec.open('points', id, stored), what), what, id);
  }

  /** Points with no manifest left (a removal killed between the two deletes): GC removes them. Summary sets are not summaries of a point. */
  async orphanSummaries(signal?: AbortSignal): Promise<string[]> {
    const ids = new Set(await this.ids(signal));
    const out: string[] = [];
    for await (const name of this.#backend.listNames(signal, 'points')) if (!ids.has(name) && !SET_NAME.test(name)) out.push(name);
    return out;
  }

  async removeSummary(id: string, signal?: AbortSignal): Promise<void> {
    await this.#backend.remove(signal, { type: 'points', name: id });
  }

  async find(query: { vmName?: string; latest?: boolean }, signal?: AbortSignal, opts: SummariesOptions = {}): Promise<RestorePointSummary[]> {
    const want = query.vmName?.toLowerCase();
    const all = (await this.summaries(signal, opts)).filter((m) => want === undefined || m.vm.name.toLowerCase() === want);
    // ISO-8601 UTC times order as plain strings; localeCompare's first call sets up ICU
    // collation (~9 ms of every backup's start, the lookup of the previous point).
    all.sort((a, b) => byString(b.createdAt, a.createdAt) || byString(b.finishedAt, a.finishedAt));
    if (!query.latest) return all;
    const seen = new Set<string>();
    return all.filter((m) => !seen.has(m.vm.id) && seen.add(m.vm.id));
  }

  async remove(id: string, signal?: AbortSignal): Promise<void> {
    // The manifest (the restore point) first: a kill between the two leaves only an orphan summary, which listing ignores.
    await this.#backend.remove(signal, { type: 'manifests', name: id });
    this.#cache.delete(id);
    this.summaryCache.delete(id);
    await this.#backend.remove(signal, { type: 'points', name: id });
  }
}

function byString(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** fn over items, at most `limit` at a time, results in order. */
async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
