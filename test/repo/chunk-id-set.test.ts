// GC's compact set of referenced chunk ids (core/repo/chunk-id-set.ts): membership checked
// against a Set of strings through table growth and segment growth, with ids that all want
// the same table slot, duplicates, and ids that are not chunk ids.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { isHvError } from '../../core/errors.ts';
import { ChunkIdSet } from '../../core/repo/chunk-id-set.ts';
import { setIndexMemoryRecords } from '../../core/repo/sorted-run.ts';

/** Distinct ids, the first `prefix` hex characters shared (so they all want the same table slot). */
function ids(n: number, seed: string, prefix = ''): string[] {
  return Array.from({ length: n }, (_, i) => (prefix + createHash('sha256').update(`${seed}/${i}`).digest('hex')).slice(0, 64));
}

// Each test as it is, and with the ids spilled to scratch runs every 1000 and every 3 ids.
for (const budget of [undefined, 1000, 3]) describe(`ChunkIdSet${budget ? `, spilled to scratch runs every ${budget} ids` : ''}`, () => {
  before(() => setIndexMemoryRecords(budget ?? Number.MAX_SAFE_INTEGER));
  after(() => setIndexMemoryRecords(undefined));

  it('answers as a Set of strings does, past several table and segment growths', () => {
    const set = new ChunkIdSet();
    const ref = new Set<string>();
    // 70 Ki ids: more than one 64 Ki segment, and the table grows from 1 Ki slots seven times.
    const added = ids(budget === 3 ? 2000 : 70_000, 'in');
    for (const id of added) {
      set.add(id);
      ref.add(id);
    }
    // Every id again: duplicates change nothing.
    for (const id of added.slice(0, 5000)) set.add(id);
    assert.equal(set.size, ref.size);
    for (const id of added) assert.ok(set.has(id), id);
    for (const id of ids(20_000, 'out')) assert.equal(set.has(id), false, id);
    if (budget === undefined) assert.deepEqual([...set], [...ref]);
    else assert.deepEqual([...set].sort(), [...ref].sort());
  });

  it('tells apart ids that share the word the table is keyed by', () => {
    const set = new ChunkIdSet();
    // 3000 ids with the same first 8 hex characters: one long probe run.
    const same = ids(3000, 'c', 'deadbeef');
    for (const id of same.slice(0, 2000)) set.add(id);
    for (const id of same.slice(0, 2000)) assert.ok(set.has(id));
    for (const id of same.slice(2000)) assert.equal(set.has(id), false);
    // An id equal to a member except in its last byte is not a member.
    const near = same[0]!.slice(0, 62) + (same[0]!.endsWith('00') ? '01' : '00');
    assert.equal(set.has(near), false);
    assert.equal(set.size, 2000);
  });

  it('refuses what is not a chunk id, and never finds one', () => {
    const set = new ChunkIdSet();
    const id = ids(1, 'x')[0]!;
    set.add(id);
    for (const bad of ['', id.toUpperCase(), id.slice(0, 63), `${id}0`, `${id.slice(0, 63)}g`, `${id.slice(0, 63)}é`]) {
      assert.throws(() => set.add(bad), (e: unknown) => isHvError(e, 'ERR_INVALID_ARGUMENT'), bad);
      assert.equal(set.has(bad), false, bad);
    }
    assert.equal(set.size, 1);
  });
});
