// Memory and speed of the chunk index: ChunkIndex held whole in typed arrays ('typed'), the same
// spilling past its memory budget to sorted runs in scratch files ('spilled', the default
// budget), and the Map of objects it replaced ('map', copied below as MapIndex). Each (index,
// size) runs in its own process with --expose-gc so one's garbage is not the other's measurement.
//
//   node_modules/.bin/node bench/repo/index-memory.ts [chunks ...]   (default: 1000000 5000000)
//
// Per run: bytes per chunk (heapUsed + external after gc, minus the same before building, so the
// ids kept for the lookups are not counted), the build (addPack of 32-entry packs, as 8 MiB packs
// of 256 KiB chunks hold; best of 3), has() and locate() of 1 M hex ids present and has() of 1 M
// absent (best of 3), has() of ids made into hex strings one by one as the chunk writer gets them
// (the Map's hits above reuse strings whose hash V8 has cached), hasBytes() of raw ids, and how
// long a full gc takes with the index alive (best of 3).

import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { ChunkIndex, setIndexMemoryRecords, type ChunkLocation } from '../../core/repo/chunk-index.ts';
import type { PackEntry } from '../../core/repo/pack-format.ts';
import { collect, usedAfterGc } from './heap.ts';

/** The index before ChunkIndex (core/repo/chunk-index.ts at 3b2c57c), the parts a build and lookups use. */
class MapIndex {
  readonly #byId = new Map<string, ChunkLocation>();
  readonly packs = new Map<string, PackEntry[]>();
  has(id: string): boolean {
    return this.#byId.has(id);
  }
  locate(id: string): ChunkLocation | undefined {
    return this.#byId.get(id);
  }
  get size(): number {
    return this.#byId.size;
  }
  addPack(name: string, entries: PackEntry[]): void {
    this.packs.set(name, entries);
    for (const e of entries) {
      if (!this.#byId.has(e.id)) this.#byId.set(e.id, { pack: name, offset: e.offset, length: e.length, plainLength: e.plainLength });
    }
  }
}

type Index = Pick<ChunkIndex, 'has' | 'locate' | 'size'> & { addPack(name: string, entries: PackEntry[]): void };

const PER_PACK = 32;
const LOOKUPS = 1_000_000;

const used = usedAfterGc;

/** Build from the raw ids the way load() does: one decoded pack's entries (fresh objects and hex strings) at a time. */
function build(kind: string, raw: Buffer, n: number): { index: Index; ms: number } {
  // 'typed': never spilled; 'spilled': the default budget (HVB_INDEX_MEMORY_RECORDS, if set).
  if (kind === 'typed') setIndexMemoryRecords(Number.MAX_SAFE_INTEGER);
  const index: Index = kind === 'map' ? new MapIndex() : new ChunkIndex();
  let ms = 0;
  for (let p = 0; p < n; p += PER_PACK) {
    const entries: PackEntry[] = [];
    for (let i = p; i < Math.min(n, p + PER_PACK); i++) {
      entries.push({ id: raw.toString('hex', i * 32, i * 32 + 32), offset: (i - p) * 200_000, length: 150_000 + (i & 0xffff), plainLength: 262_144 });
    }
    const name = randomBytes(32).toString('hex');
    const t0 = performance.now();
    index.addPack(name, entries);
    ms += performance.now() - t0;
  }
  return { index, ms };
}

function bestOf3(fn: () => void): number {
  let best = Infinity;
  for (let k = 0; k < 3; k++) {
    const t0 = performance.now();
    fn();
    best = Math.min(best, performance.now() - t0);
  }
  return best;
}

function child(kind: string, n: number): void {
  const raw = randomBytes(n * 32);
  const before = used();
  let { index, ms } = build(kind, raw, n);
  if (index.size !== n) throw new Error(`${kind}: ${index.size} chunks indexed, ${n} added`);
  const bytes = used() - before;
  const rssMiB = Math.round(process.memoryUsage().rss / 2 ** 20);
  const gcMs = bestOf3(() => collect());

  const present = Array.from({ length: LOOKUPS }, (_, k) => {
    const i = Math.floor((k / LOOKUPS) * n + Math.random() * (n / LOOKUPS)) % n;
    return raw.toString('hex', i * 32, i * 32 + 32);
  });
  const absent = Array.from({ length: LOOKUPS }, () => randomBytes(32).toString('hex'));
  let found = 0;
  const hasMs = bestOf3(() => { for (const id of present) if (index.has(id)) found++; });
  const locateMs = bestOf3(() => { for (const id of present) if (index.locate(id)!.length > 0) found++; });
  const missMs = bestOf3(() => { for (const id of absent) if (index.has(id)) found--; });
  // As the chunk writer looks up: each id a new string (from a worker's bytes), looked up once.
  const at = present.map(() => Math.floor(Math.random() * n) * 32);
  const freshMs = bestOf3(() => { for (const i of at) if (index.has(raw.toString('hex', i, i + 32))) found++; });
  const typed = index instanceof ChunkIndex ? index : undefined;
  const bytesMs = typed ? bestOf3(() => { for (const i of at) if (typed.hasBytes(raw, i)) found++; }) : NaN;
  if (found !== (typed ? 12 : 9) * LOOKUPS) throw new Error(`${kind}: lookups found ${found} of ${6 * LOOKUPS}`);

  let buildMs = ms;
  for (let k = 0; k < 2; k++) {
    if (index instanceof ChunkIndex) index.close();
    index = undefined as unknown as Index;
    collect();
    ({ index, ms } = build(kind, raw, n));
    buildMs = Math.min(buildMs, ms);
  }
  const perSec = (count: number, msTaken: number) => Math.round(count / (msTaken / 1000));
  console.log(JSON.stringify({
    index: kind, chunks: n,
    bytesPerChunk: +(bytes / n).toFixed(1),
    indexMiB: +(bytes / 2 ** 20).toFixed(1),
    rssAfterBuildMiB: rssMiB,
    insertsPerSec: perSec(n, buildMs),
    hasPerSec: perSec(LOOKUPS, hasMs),
    locatePerSec: perSec(LOOKUPS, locateMs),
    missPerSec: perSec(LOOKUPS, missMs),
    freshHexHasPerSec: perSec(LOOKUPS, freshMs),
    hasBytesPerSec: Number.isNaN(bytesMs) ? undefined : perSec(LOOKUPS, bytesMs),
    fullGcMs: +gcMs.toFixed(1),
  }));
}

if (process.argv[2] === '--child') {
  child(process.argv[3]!, Number(process.argv[4]));
} else {
  const sizes = process.argv.length > 2 ? process.argv.slice(2).map(Number) : [1_000_000, 5_000_000];
  for (const n of sizes) {
    for (const kind of ['map', 'typed', 'spilled']) {
      const r = spawnSync(process.execPath, ['--expose-gc', '--max-old-space-size=8192', fileURLToPath(import.meta.url), '--child', kind, String(n)], { stdio: 'inherit' });
      if (r.status !== 0) process.exitCode = 1;
    }
  }
}
