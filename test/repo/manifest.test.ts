import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { isHvError } from '../../core/errors.ts';
import { MemoryBackend } from '../../core/repo/backend-memory.ts';
import { decodeManifest, encodeManifest, namedChunks } from '../../core/repo/manifest.ts';
import { encodeObject } from '../../core/repo/object-format.ts';
import { decodeSegment, encodeSegment, PIECE_SIZE, SAME_AS_BEFORE, SegmentView, sliceChunkIds, type SliceEntry } from '../../core/repo/manifest-segments.ts';
import type { PieceRef, SliceRef } from '../../core/repo/manifest-types.ts';
import { Repository } from '../../core/repo/repository.ts';
import { makeManifest, storeDisk } from '../../core/repo/testing.ts';

const CHUNK = 64 * 1024;

function hasCode(code: string, ...mentions: string[]) {
  return (err: unknown) => {
    assert.ok(isHvError(err), String(err));
    assert.equal(err.code, code, err.message);
    for (const m of mentions) assert.ok(err.message.includes(m), `"${err.message}" should mention ${m}`);
    return true;
  };
}

describe('Restore-point manifests (encode/decode)', () => {
  it('round-trips a manifest and lists its chunks', () => {
    const a = randomBytes(32).toString('hex');
    const m = makeManifest({ id: 'ab'.repeat(32), disks: [{ key: 'k', fileName: 'd.vhdx', format: 'vhdx', virtualSize: 3 * CHUNK - 5, blockSize: 1 << 25, logicalSectorSize: 512, physicalSectorSize: 4096, chunkSize: CHUNK, chunks: [a, null, a] }] });
    const back = decodeManifest(encodeManifest(m), '<manifests/x>');
    assert.deepEqual(back, m);
    assert.deepEqual(namedChunks(back), new Set([a]));
  });

  it('refuses manifests that restore could not use, naming the object', () => {
    const base = makeManifest({ id: 'cd'.repeat(32) });
    assert.throws(() => encodeManifest({ ...base, id: 'xyz' }), hasCode('ERR_INVALID_ARGUMENT', 'id'));
    const badDisk = { ...base, version: 1, disks: [{ key: 'k', fileName: 'd', format: 'vhdx' as const, virtualSize: 2 * CHUNK, blockSize: 1, logicalSectorSize: 512, physicalSectorSize: 512, chunkSize: CHUNK, chunks: [null] }] };
    assert.throws(() => decodeManifest(Buffer.from(JSON.stringify(badDisk)), '<manifests/cdcd>'), hasCode('ERR_CORRUPT', '<manifests/cdcd>', 'needs 2'));
    assert.throws(() => decodeManifest(Buffer.from('{"version":1,'), '<manifests/cdcd>'), hasCode('ERR_CORRUPT', '<manifests/cdcd>', 'not valid JSON'));
    assert.throws(() => decodeManifest(Buffer.from(JSON.stringify({ ...base, version: 9 })), '<manifests/cdcd>'), hasCode('ERR_UNSUPPORTED', 'version 9'));
    assert.throws(() => decodeManifest(encodeManifest(base), '<manifests/x>', 'ef'.repeat(32)), hasCode('ERR_CORRUPT', 'says its id'));
  });

  it('version 2: segments instead of inline chunks, counted against the disk size', () => {
    const seg = randomBytes(32).toString('hex');
    const disk = { key: 'k', fileName: 'd.vhdx', format: 'vhdx' as const, virtualSize: 10 * CHUNK - 1, blockSize: 1 << 25, logicalSectorSize: 512, physicalSectorSize: 4096, chunkSize: CHUNK, segmentSlices: 4, segments: [seg, null, seg], dataSlices: 5 };
    const m = makeManifest({ id: 'ab'.repeat(32), disks: [disk] });
    assert.equal(m.version, 2);
    const back = decodeManifest(encodeManifest(m), '<manifests/x>');
    assert.deepEqual(back, m);
    assert.deepEqual(namedChunks(back), new Set([seg]), 'the segment ids; their chunks are in the repository');
    const bad = (d: object, ...words: string[]) => assert.throws(() => decodeManifest(Buffer.from(JSON.stringify({ ...m, disks: [{ ...disk, ...d }] })), '<manifests/abab>'), hasCode('ERR_CORRUPT', '<manifests/abab>', ...words));
    bad({ segments: [seg, null] }, 'has 2 segments', 'need 3');
    bad({ segmentSlices: 0 }, 'bad segmentSlices');
    bad({ chunks: [] }, 'not inline');
    bad({ dataSlices: 11 }, 'bad dataSlices');
    bad({ segments: [seg, 'zz', null] }, 'segments must be');
    assert.throws(() => decodeManifest(Buffer.from(JSON.stringify({ ...m, version: 1 })), '<manifests/abab>'), hasCode('ERR_CORRUPT', 'no segments'));
  });
});

describe('Segments (encode/decode)', () => {
  const id = (n: number) => createHash('sha256').update(String(n)).digest('hex');

  it('round-trips ids and zero slices, byte for byte as documented', () => {
    const refs = [id(1), null, null, id(2), id(1), null, null, null, id(3)];
    const buf = encodeSegment(refs);
    assert.equal(buf.toString('latin1', 0, 4), 'HVSG');
    assert.equal(buf[4], 1);
    assert.equal(buf.readUInt32LE(8), 9);
    // Bitmap: slices 0, 3, 4 in byte 12 (0b00011001), slice 8 in byte 13 (bit 0).
    assert.deepEqual([...buf.subarray(12, 14)], [0b00011001, 0b00000001]);
    assert.equal(buf.length, 12 + 2 + 4 * 32);
    assert.equal(buf.toString('hex', 14, 46), id(1));
    assert.equal(buf.toString('hex', 14 + 3 * 32), id(3));
    assert.deepEqual(decodeSegment(buf, 9, 'seg'), refs);
    assert.deepEqual(decodeSegment(encodeSegment([null]), 1, 'seg'), [null]);
  });

  it('refuses damaged or mismatched segments with ERR_CORRUPT naming them', () => {
    const buf = encodeSegment([id(1), null, id(2)]);
    const bad = (b: Buffer, expected: number, word: string) => assert.throws(() => decodeSegment(b, expected, '<chunks/s>'), hasCode('ERR_CORRUPT', '<chunks/s>', word));
    bad(buf, 4, 'covers 3 slices');
    bad(Buffer.concat([buf, Buffer.alloc(1)]), 3, 'after the last');
    bad(buf.subarray(0, buf.length - 1), 3, 'too short');
    bad(Buffer.from('XXXX' + buf.toString('latin1', 4), 'latin1'), 3, 'HVSG');
    const v = Buffer.from(buf); v[4] = 3;
    bad(v, 3, 'format 3');
    const past = Buffer.from(buf); past[12]! |= 0x10;
    bad(past, 3, 'past the end');
    assert.throws(() => encodeSegment([]), hasCode('ERR_INVALID_ARGUMENT'));
    // An id that is not 64 hex characters is refused, wherever the bad character is, for whole slices and pieces.
    const good = id(3);
    for (const badId of [good.slice(1), `${good}0`, `${good.slice(0, 63)}g`, `zz${good.slice(2)}`, `${good.slice(0, 30)}-${good.slice(31)}`]) {
      assert.throws(() => encodeSegment([id(1), badId]), hasCode('ERR_INVALID_ARGUMENT', 'slice 1'), badId);
      assert.throws(() => encodeSegment([{ pieces: [null, { id: badId, offset: 0 }, null, null] }], 4 * PIECE_SIZE), hasCode('ERR_INVALID_ARGUMENT', 'piece 1'), badId);
    }
  });

  it('format 2 (split slices) round-trips pieces, byte for byte as documented; a segment without splits stays format 1', () => {
    const CS = 4 * PIECE_SIZE;
    const refs: SliceRef[] = [id(1), { pieces: [{ id: id(1), offset: 0 }, null, { id: id(2), offset: 0 }, { id: id(1), offset: 3 * PIECE_SIZE }] }, null];
    const buf = encodeSegment(refs, CS);
    assert.equal(buf[4], 2);
    assert.deepEqual([buf.readUInt32LE(8), buf.readUInt32LE(12), buf.readUInt32LE(16)], [3, 65536, 4]);
    assert.deepEqual([...buf.subarray(20, 22)], [0b011, 0b010], 'data bitmap, then split bitmap');
    assert.equal(buf.toString('hex', 22, 54), id(1), 'slice 0: a whole chunk id');
    assert.equal(buf[54], 0b1101, 'slice 1: piece bitmap');
    assert.deepEqual([buf.toString('hex', 55, 87), buf.readUInt32LE(87)], [id(1), 0]);
    assert.deepEqual([buf.toString('hex', 91, 123), buf.readUInt32LE(123)], [id(2), 0]);
    assert.deepEqual([buf.toString('hex', 127, 159), buf.readUInt32LE(159)], [id(1), 3 * PIECE_SIZE]);
    assert.equal(buf.length, 163);
    assert.deepEqual(decodeSegment(buf, 3, 'seg', CS), refs);
    assert.equal(encodeSegment([id(1), null], CS)[4], 1);
    assert.deepEqual(sliceChunkIds(refs[1]!), [id(1), id(2)]);
  });

  it('refuses damaged format 2 segments with ERR_CORRUPT naming them, and pieces that cannot be written', () => {
    const CS = 4 * PIECE_SIZE;
    const buf = encodeSegment([{ pieces: [null, { id: id(1), offset: PIECE_SIZE }, null, null] }, id(2)], CS);
    const bad = (b: Buffer, word: string, chunkSize = CS) => assert.throws(() => decodeSegment(b, 2, '<chunks/s>', chunkSize), hasCode('ERR_CORRUPT', '<chunks/s>', word));
    bad(buf, 'pieces of 65536 bytes', 8 * PIECE_SIZE);
    const size = Buffer.from(buf); size.writeUInt32LE(4096, 12);
    bad(size, 'piece size 4096');
    const off = Buffer.from(buf); off.writeUInt32LE(PIECE_SIZE + 1, 22 + 1 + 32);
    bad(off, 'offset 65537');
    const noPieces = Buffer.from(buf); noPieces[22] = 0;
    bad(noPieces, 'split into no pieces');
    const splitZero = Buffer.from(buf); splitZero[20] = 0b10;
    bad(splitZero, 'marked split but holds no data');
    const pastM = Buffer.from(buf); pastM[22]! |= 0x10;
    bad(pastM, 'pieces past the end');
    bad(buf.subarray(0, buf.length - 2), 'too short');
    bad(Buffer.concat([buf, Buffer.alloc(1)]), 'after the last');
    assert.throws(() => encodeSegment([{ pieces: [null, null, null, null] }], CS), hasCode('ERR_INVALID_ARGUMENT', 'all zeros'));
    assert.throws(() => encodeSegment([{ pieces: [{ id: id(1), offset: 5 }, null, null, null] }], CS), hasCode('ERR_INVALID_ARGUMENT', 'offset 5'));
    assert.throws(() => encodeSegment([{ pieces: [{ id: id(1), offset: 0 }, null] }], CS), hasCode('ERR_INVALID_ARGUMENT', '2 pieces, not 4'));
    assert.throws(() => encodeSegment([{ pieces: [{ id: id(1), offset: 0 }] }], PIECE_SIZE), hasCode('ERR_INVALID_ARGUMENT', 'multiple of 65536'));
  });

  it('a segment decoded a slice at a time (SegmentView) gives every slice as decodeSegment does, and slices kept as they are (SAME_AS_BEFORE) encode to the same bytes as the slices themselves', () => {
    const CS = 4 * PIECE_SIZE;
    let seed = 7;
    const rnd = (n: number) => { seed = (seed * 1103515245 + 12345) % 2147483648; return Math.floor(seed / 65536) % n; };
    const piece = (): PieceRef | null => (rnd(3) === 0 ? null : { id: id(1 + rnd(9)), offset: rnd(4) * PIECE_SIZE });
    const slice = (splits: boolean): SliceRef => {
      const r = rnd(splits ? 4 : 3);
      if (r === 0) return null;
      if (r < 3) return id(1 + rnd(9));
      const pieces: (PieceRef | null)[] = [piece(), piece(), piece(), piece()];
      if (!pieces.some(Boolean)) pieces[rnd(4)] = { id: id(2), offset: 0 };
      return { pieces };
    };
    for (let round = 0; round < 40; round++) {
      const n = 1 + rnd(70);
      const previous = Array.from({ length: n }, () => slice(round % 2 === 0));
      const bytes = encodeSegment(previous, CS);
      const view = SegmentView.decode(bytes, n, 'seg', CS);
      assert.equal(view.length, n);
      previous.forEach((r, j) => {
        assert.deepEqual(view.ref(j), r, `round ${round} slice ${j}`);
        assert.equal(view.isNull(j), r === null);
      });
      // A next window: most slices kept, some replaced (new whole ids, new splits, zeros).
      const entries: SliceEntry[] = previous.map(() => (rnd(3) === 0 ? slice(round % 4 < 2) : SAME_AS_BEFORE));
      const resolved = entries.map((e, j) => (e === SAME_AS_BEFORE ? view.ref(j) : e));
      assert.ok(encodeSegment(entries, CS, view).equals(encodeSegment(resolved, CS)), `round ${round}: kept slices encode as themselves`);
    }
    const view = SegmentView.decode(encodeSegment([id(1), null], CS), 2, 'seg', CS);
    assert.throws(() => encodeSegment([SAME_AS_BEFORE, null], CS), hasCode('ERR_INVALID_ARGUMENT', 'slice 0', 'there is none'));
    assert.throws(() => encodeSegment([SAME_AS_BEFORE], CS, view), hasCode('ERR_INVALID_ARGUMENT', 'one of 2'));
    const split8 = SegmentView.decode(encodeSegment([{ pieces: [null, { id: id(1), offset: 0 }, null, null, null, null, null, null] }], 8 * PIECE_SIZE), 1, 'seg', 8 * PIECE_SIZE);
    assert.throws(() => encodeSegment([SAME_AS_BEFORE], CS, split8), hasCode('ERR_INVALID_ARGUMENT', 'split slices of 8'));
    assert.throws(() => SegmentView.decode(encodeSegment([id(1), null], CS).subarray(0, 20), 2, '<chunks/v>', CS), hasCode('ERR_CORRUPT', '<chunks/v>', 'too short'));
  });
});

describe('Repository manifests', () => {
  let repo: Repository;
  let backend: MemoryBackend;
  beforeEach(async () => {
    backend = new MemoryBackend();
    repo = await Repository.init(backend, { chunkSize: CHUNK, });
  });
  afterEach(async () => { await repo.close(); });

  it('saves create-only under a random id and loads it from a fresh open', async () => {
    const disk = await storeDisk(repo, randomBytes(3 * CHUNK));
    const id = await repo.saveManifest(makeManifest({ disks: [disk] }));
    assert.match(id, /^[0-9a-f]{64}$/);
    const fresh = await Repository.open(backend, { threads: 0 });
    const m = await fresh.loadManifest(id);
    assert.equal(m.id, id);
    assert.deepEqual(m.disks[0], disk);
    await assert.rejects(repo.saveManifest(m), hasCode('ERR_ALREADY_EXISTS'));
    const stored = await backend.load(undefined, { type: 'manifests', name: id });
    assert.equal(stored[0], 1, 'manifests are zstd-framed');
    await fresh.close();
  });

  it('reports a damaged manifest as ERR_CORRUPT naming it', async () => {
    const id = randomBytes(32).toString('hex');
    await backend.save(undefined, { type: 'manifests', name: id }, encodeObject(Buffer.from('{"version":1,"id":')));
    await assert.rejects(repo.loadManifest(id), hasCode('ERR_CORRUPT', `<manifests/${id}>`, 'not valid JSON'));
    const id2 = randomBytes(32).toString('hex');
    await backend.save(undefined, { type: 'manifests', name: id2 }, Buffer.from([7, 1, 2, 3]));
    await assert.rejects(repo.loadManifest(id2), hasCode('ERR_CORRUPT', `<manifests/${id2}>`, 'format byte'));
    const id3 = randomBytes(32).toString('hex');
    await backend.save(undefined, { type: 'manifests', name: id3 }, Buffer.from([1, 0x28, 0xb5, 0x2f, 0xfd, 9, 9]));
    await assert.rejects(repo.loadManifest(id3), hasCode('ERR_CORRUPT', `<manifests/${id3}>`, 'zstd'));
  });

  it('resolves unique id prefixes of at least 8 characters like git', async () => {
    const a = await repo.saveManifest(makeManifest({ id: 'abcdef01' + '0'.repeat(56) }));
    await repo.saveManifest(makeManifest({ id: 'abcdef01' + '1'.repeat(56) }));
    assert.equal(await repo.resolveManifestId('abcdef010'), a);
    assert.equal((await repo.loadManifest('ABCDEF010')).id, a);
    await assert.rejects(repo.resolveManifestId('abcdef01'), hasCode('ERR_INVALID_ARGUMENT', 'ambiguous'));
    await assert.rejects(repo.resolveManifestId('abcd'), hasCode('ERR_INVALID_ARGUMENT', '8 to 64'));
    await assert.rejects(repo.resolveManifestId('12345678'), hasCode('ERR_NOT_FOUND', '12345678'));
  });

  it('finds restore points newest first, per VM, and the latest of each', async () => {
    const at = (h: number) => new Date(Date.UTC(2026, 0, 1, h)).toISOString();
    const web = { id: 'vm-web', name: 'web01', generation: 2 as const, host: 'local' as const, hostName: 'h' };
    const db = { ...web, id: 'vm-db', name: 'DB01' };
    const w1 = await repo.saveManifest(makeManifest({ vm: web, createdAt: at(1) }));
    const w2 = await repo.saveManifest(makeManifest({ vm: web, createdAt: at(3) }));
    const d1 = await repo.saveManifest(makeManifest({ vm: db, createdAt: at(2) }));
    assert.deepEqual((await repo.findRestorePoints()).map((m) => m.id), [w2, d1, w1]);
    assert.deepEqual((await repo.findRestorePoints({ vmName: 'WEB01' })).map((m) => m.id), [w2, w1]);
    assert.deepEqual((await repo.findRestorePoints({ latest: true })).map((m) => m.id), [w2, d1]);
    assert.equal((await repo.listManifests()).length, 3);
  });

  it('removes restore points (manifests only) under an exclusive lock', async () => {
    const disk = await storeDisk(repo, randomBytes(2 * CHUNK));
    const id = await repo.saveManifest(makeManifest({ disks: [disk] }));
    const shared = await repo.lock({ exclusive: false, operation: 'backup' });
    await assert.rejects(repo.removeRestorePoints([id.slice(0, 10)]), hasCode('ERR_LOCKED', "for 'backup'"));
    await shared.release();
    assert.deepEqual(await repo.removeRestorePoints([id.slice(0, 10)]), [id]);
    await assert.rejects(repo.loadManifest(id), hasCode('ERR_NOT_FOUND', id));
    assert.equal((await repo.listChunkIds()).length, 2, 'chunks stay for garbage collection');
    for await (const l of backend.list(undefined, 'locks')) assert.fail(`lock ${l.name} left behind`);
  });
});
