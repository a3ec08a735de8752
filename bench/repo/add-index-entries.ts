// bench helper: N synthetic chunk entries added to a plain repository's index/ (in objects of
// 256 Ki entries, 32 per pack, as 8 MiB packs of 256 KiB chunks hold), so a repository of a small
// VM looks to the chunk index like one with N more chunks of unique data (4 M ≈ 1 TiB). The packs
// they name do not exist: only jobs that never read those chunks (a backup, a restore of the
// real points) can run on it. Not for an encrypted repository (its index objects are sealed).
// Usage: node bench/repo/add-index-entries.ts <repo> <N>
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodeIndexObject, type PackEntry } from '../../core/repo/pack-format.ts';

const [repo, nArg] = process.argv.slice(2);
if (!repo || !nArg) throw new Error('usage: add-index-entries.ts <repo> <N>');
let left = Number(nArg);
const PER_PACK = 32;
const PER_OBJECT = 256 * 1024;
while (left > 0) {
  const packs: { name: string; entries: PackEntry[] }[] = [];
  for (let inObject = 0; inObject < PER_OBJECT && left > 0;) {
    const n = Math.min(PER_PACK, left);
    const raw = randomBytes(32 * n);
    const entries = Array.from({ length: n }, (_, i) => ({ id: raw.toString('hex', 32 * i, 32 * i + 32), offset: i * 150_000, length: 150_000, plainLength: 262_144 }));
    packs.push({ name: randomBytes(32).toString('hex'), entries });
    inObject += n;
    left -= n;
  }
  writeFileSync(join(repo, 'index', randomBytes(32).toString('hex')), encodeIndexObject(packs));
}
