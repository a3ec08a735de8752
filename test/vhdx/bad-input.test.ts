import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, renameSync, truncateSync, writeFileSync } from 'node:fs';
import { isHvError, type ErrorCode } from '../../core/errors.ts';
import { encodeGuid, newGuid } from '../../core/vhdx/format/guid.ts';
import { decodeRegionTable, encodeRegionTable } from '../../core/vhdx/format/region-table.ts';
import { checkVhdx, createDifferencingVhdx, createVhdx, openDisk, readVhdxInfo } from '../../core/vhdx/index.ts';
import { MiB, qemuCheck, readAtSync, regions, scratch, writeAtSync } from './helpers.ts';

const sha = (f: string) => createHash('sha256').update(readFileSync(f)).digest('hex');

async function makeDisk(path: string): Promise<void> {
  const d = await createVhdx(path, { size: 16 * MiB, blockSize: MiB });
  await d.write(Buffer.alloc(2 * MiB, 0x5a), 0);
  await d.close();
}

/** The open fails with `code`, the message names the file and matches `problem`, and the file is unchanged. */
async function expectRejected(path: string, code: ErrorCode, problem: RegExp, opts = {}): Promise<void> {
  const before = sha(path);
  await assert.rejects(openDisk(path, opts), (e) => {
    assert.ok(isHvError(e, code), `expected ${code}, got ${(e as Error).message}`);
    assert.ok(e.message.includes(path), `message names the file: ${e.message}`);
    assert.match(e.message, problem);
    return true;
  });
  assert.equal(sha(path), before, 'nothing was written');
}

function addRegion(file: string, required: boolean): void {
  const rt = decodeRegionTable(readAtSync(file, 192 * 1024, 64 * 1024));
  assert.ok(rt.ok);
  const table = encodeRegionTable([...rt.entries, { guid: newGuid(), fileOffset: 3 * MiB, length: MiB, required }]);
  writeAtSync(file, 192 * 1024, table);
  writeAtSync(file, 256 * 1024, table);
}

function addMetadataItem(file: string, required: boolean): void {
  const off = regions(file).metadata.fileOffset;
  const count = readAtSync(file, off + 10, 2).readUInt16LE(0);
  const entry = Buffer.alloc(32);
  encodeGuid(newGuid(), entry, 0);
  entry.writeUInt32LE(required ? 4 : 0, 24);
  writeAtSync(file, off + 32 + count * 32, entry);
  const c = Buffer.alloc(2);
  c.writeUInt16LE(count + 1);
  writeAtSync(file, off + 10, c);
}

describe('VHDX bad input', () => {
  let s: ReturnType<typeof scratch>;
  let f: string;
  beforeEach(async () => { s = scratch(); f = s.path('d.vhdx'); await makeDisk(f); });
  afterEach(() => s.cleanup());

  it('a truncated file is ERR_CORRUPT', async () => {
    truncateSync(f, 3 * MiB + 4096);
    await expectRejected(f, 'ERR_CORRUPT', /truncated|past the end/);
    truncateSync(f, 100_000);
    await expectRejected(f, 'ERR_CORRUPT', /truncated/);
  });

  it('one corrupted header (or region table) still opens from the other; check reports it and --repair rewrites it', async () => {
    writeAtSync(f, 64 * 1024 + 200, Buffer.from('garbage'));
    const d = await openDisk(f);
    const b = Buffer.alloc(4);
    await d.read(b, 0);
    await d.close();
    assert.deepEqual([...b], [0x5a, 0x5a, 0x5a, 0x5a]);
    const r = await checkVhdx(f);
    assert.equal(r.problems.length, 1);
    assert.match(r.problems[0], /header 1 .*checksum/);
    writeAtSync(f, 256 * 1024 + 16, Buffer.from('damage'));
    assert.match((await checkVhdx(f)).problems.join('\n'), /region table 2 .*checksum/);
    const fixed = await checkVhdx(f, { repair: true });
    assert.deepEqual(fixed.repaired, ['header 1 rewritten from header 2', 'region table 2 rewritten from region table 1']);
    assert.deepEqual(fixed.problems, []);
    qemuCheck(f);
  });

  it('both headers corrupted is ERR_CORRUPT and check lists each', async () => {
    writeAtSync(f, 64 * 1024 + 200, Buffer.from('garbage'));
    writeAtSync(f, 128 * 1024, Buffer.from('nope'));
    await expectRejected(f, 'ERR_CORRUPT', /no valid header/);
    const r = await checkVhdx(f, { repair: true });
    assert.deepEqual(r.repaired, []);
    assert.ok(r.problems.some((p) => /header 1 .*checksum/.test(p)));
    assert.ok(r.problems.some((p) => /header 2 .*signature/.test(p)));
  });

  it('a BAT entry past the end of the file is ERR_CORRUPT; check lists it and overlaps on their own lines', async () => {
    const bat = regions(f).bat.fileOffset;
    const e = Buffer.alloc(8);
    e.writeBigUInt64LE((4096n << 20n) | 6n);
    writeAtSync(f, bat + 8 * 5, e);
    await expectRejected(f, 'ERR_CORRUPT', /payload block 5 points past the end of the file/);
    e.writeBigUInt64LE(readAtSync(f, bat, 8).readBigUInt64LE(0));
    writeAtSync(f, bat + 8 * 6, e);
    const r = await checkVhdx(f);
    assert.ok(r.problems.some((p) => /payload block 5 points past the end/.test(p)), r.problems.join('\n'));
    assert.ok(r.problems.some((p) => /payload block 6 overlaps payload block 0/.test(p)), r.problems.join('\n'));
  });

  it('an unknown required metadata item or region is ERR_UNSUPPORTED; optional unknown ones are ignored', async () => {
    addMetadataItem(f, false);
    addRegion(f, false);
    await (await openDisk(f)).close();
    addMetadataItem(f, true);
    await expectRejected(f, 'ERR_UNSUPPORTED', /unknown required metadata item/);
    await makeDisk(s.path('r.vhdx'));
    addRegion(s.path('r.vhdx'), true);
    await expectRejected(s.path('r.vhdx'), 'ERR_UNSUPPORTED', /unknown required region/);
    assert.match((await checkVhdx(s.path('r.vhdx'))).problems.join('\n'), /unknown required region/);
  });

  it('a missing or mismatched parent is ERR_PARENT and leaves both files alone', async () => {
    await createDifferencingVhdx(s.path('c.avhdx'), f);
    const d = await openDisk(f, { writable: true });
    await d.write(Buffer.alloc(512, 1), 0);
    await d.close();
    await expectRejected(s.path('c.avhdx'), 'ERR_PARENT', /parent_linkage/);
    assert.match((await checkVhdx(s.path('c.avhdx'))).problems.join('\n'), /does not match its parent/);
    renameSync(f, s.path('elsewhere.vhdx'));
    await expectRejected(s.path('c.avhdx'), 'ERR_PARENT', /not found/);
  });

  it('a file that is not a VHDX is ERR_CORRUPT when a VHDX is asked for, and opens as raw otherwise', async () => {
    writeFileSync(s.path('plain.vhdx'), Buffer.alloc(2 * MiB, 7));
    await expectRejected(s.path('plain.vhdx'), 'ERR_CORRUPT', /not a VHDX file/);
    await assert.rejects(readVhdxInfo(s.path('plain.vhdx')), (e) => isHvError(e, 'ERR_CORRUPT') && e.message.includes('plain.vhdx'));
    assert.deepEqual((await checkVhdx(s.path('plain.vhdx'))).problems, ['not a VHDX file (no "vhdxfile" signature at offset 0)']);
    writeFileSync(s.path('disk.img'), Buffer.alloc(MiB, 7));
    const raw = await openDisk(s.path('disk.img'));
    assert.equal(raw.size, MiB);
    await raw.close();
    await assert.rejects(openDisk(s.path('missing.vhdx')), (e) => isHvError(e, 'ERR_NOT_FOUND'));
  });
});
