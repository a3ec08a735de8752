// Restore-point manifests in the repository: manifests/<id> holds
// codec.seal('manifests', encodeObject(JSON)). Ids are random 32 bytes (hex), chosen
// before the manifest is written (the manifest names its own id). Manifests never
// change once written, so loaded ones are cached.

import { randomBytes } from 'node:crypto';
import { HvError, wrapError } from '../errors.ts';
import type { Backend } from './backend.ts';
import type { ObjectCodec } from './crypto/codec.ts';
import { decodeManifest, encodeManifest, isRestorePointId } from './manifest.ts';
import type { RestorePointManifest } from './manifest-types.ts';
import { decodeObject, encodeObject } from './object-format.ts';

export const MIN_ID_PREFIX = 8;

export class ManifestStore {
  readonly #backend: Backend;
  readonly #codec: ObjectCodec;
  readonly #cache = new Map<string, RestorePointManifest>();

  constructor(backend: Backend, codec: ObjectCodec) {
    this.#backend = backend;
    this.#codec = codec;
  }

  async save(m: RestorePointManifest, signal?: AbortSignal): Promise<string> {
    const manifest = m.id ? m : { ...m, id: randomBytes(32).toString('hex') };
    const stored = this.#codec.seal('manifests', encodeObject(encodeManifest(manifest)), manifest.id);
    await this.#backend.save(signal, { type: 'manifests', name: manifest.id }, stored);
    this.#cache.set(manifest.id, manifest);
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
    for await (const o of this.#backend.list(signal, 'manifests')) if (isRestorePointId(o.name)) ids.push(o.name);
    return ids;
  }

  /** Every manifest, loaded 16 at a time (one after another, a repository of a few hundred points took a noticeable part of an incremental's fixed cost). */
  async list(signal?: AbortSignal): Promise<RestorePointManifest[]> {
    const ids = await this.ids(signal);
    const out: RestorePointManifest[] = new Array(ids.length);
    let next = 0;
    const worker = async () => {
      while (next < ids.length) {
        const i = next++;
        out[i] = await this.load(ids[i]!, signal);
      }
    };
    await Promise.all(Array.from({ length: Math.min(16, ids.length) }, worker));
    return out;
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

  async find(query: { vmName?: string; latest?: boolean }, signal?: AbortSignal): Promise<RestorePointManifest[]> {
    const want = query.vmName?.toLowerCase();
    const all = (await this.list(signal)).filter((m) => want === undefined || m.vm.name.toLowerCase() === want);
    all.sort((a, b) => b.createdAt.localeCompare(a.createdAt) || b.finishedAt.localeCompare(a.finishedAt));
    if (!query.latest) return all;
    const seen = new Set<string>();
    return all.filter((m) => !seen.has(m.vm.id) && seen.add(m.vm.id));
  }

  async remove(id: string, signal?: AbortSignal): Promise<void> {
    await this.#backend.remove(signal, { type: 'manifests', name: id });
    this.#cache.delete(id);
  }
}
