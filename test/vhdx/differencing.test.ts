import assert from 'node:assert/strict';
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { patternBuffer } from '../../core/disk/testing.ts';
import { isHvError } from '../../core/errors.ts';
import {
  createDifferencingVhdx, createVhdx, differencingChangedRanges, mergeDifferencingVhdx, openDisk, readVhdxInfo, type VhdxDisk,
} from '../../core/vhdx/index.ts';
import { openVhdxDisk } from '../../core/vhdx/io/open.ts';
import { MiB, qemuCheck, qemuCompare, scratch, sevenZipFlat } from './helpers.ts';
import { readWhole } from '../support/disk-read.ts';

const SIZE = 32 * MiB;

const readAll = (path: string) => readWhole(path);

async function writeAt(path: string, model: Buffer | undefined, data: Buffer, off: number): Promise<void> {
  const d = await openDisk(path, { writable: true });
  try {
    await d.write(data, off);
  } finally {
    await d.close();
  }
  if (model) data.copy(model, off);
}

describe('VHDX differencing disks', () => {
  let s: ReturnType<typeof scratch>;
  let model: Buffer;
  beforeEach(async () => {
    s = scratch();
    model = patternBuffer(SIZE, 1);
    model.fill(0, 20 * MiB, 24 * MiB);
    const p = await createVhdx(s.path('base.vhdx'), { size: SIZE, blockSize: MiB });
    await p.write(model.subarray(0, 20 * MiB), 0);
    await p.write(model.subarray(24 * MiB), 24 * MiB);
    await p.close();
  });
  afterEach(() => s.cleanup());

  it('a partial-block write sets bitmap bits for the written sectors only (PARTIALLY_PRESENT, parent not copied)', async () => {
    await createDifferencingVhdx(s.path('c.avhdx'), s.path('base.vhdx'));
    const info = await readVhdxInfo(s.path('c.avhdx'));
    assert.equal(info.type, 'differencing');
    assert.match(info.parent!.linkage, /^\{[0-9a-f-]{36}\}$/);
    assert.equal(info.parent!.relativePath, 'base.vhdx');
    assert.match(info.parent!.absoluteWin32Path!, /^\\\\\?\\Z:\\.*\\base\.vhdx$/);
    assert.ok((await readAll(s.path('c.avhdx'))).equals(model), 'an empty child reads as its parent');
    await writeAt(s.path('c.avhdx'), model, patternBuffer(1536, 2), 3 * MiB + 1024);
    await writeAt(s.path('c.avhdx'), model, patternBuffer(100, 3), 5 * MiB + 10); // unaligned: whole sector written
    assert.deepEqual(await differencingChangedRanges(s.path('c.avhdx')), [
      { offset: 3 * MiB + 1024, length: 1536 }, { offset: 5 * MiB, length: 512 },
    ]);
    assert.ok((await readAll(s.path('c.avhdx'))).equals(model));
    const layer = await openVhdxDisk(s.path('c.avhdx'), { withoutParent: true });
    const own = Buffer.alloc(MiB);
    await layer.read(own, 3 * MiB);
    await layer.close();
    assert.ok(own.subarray(0, 1024).every((b) => b === 0), 'sectors before the write were not copied from the parent');
    assert.ok(own.subarray(2560).every((b) => b === 0), 'sectors after the write were not copied from the parent');
  });

  it('7-Zip accepts our child: 7zz t passes and 7zz x -tvhdx yields the expected flat image', async () => {
    await createDifferencingVhdx(s.path('c.avhdx'), s.path('base.vhdx'));
    await writeAt(s.path('c.avhdx'), model, patternBuffer(2 * MiB + 512, 4), 7 * MiB - 512);
    await writeAt(s.path('c.avhdx'), model, patternBuffer(4096, 5), 21 * MiB);
    const d = await openDisk(s.path('c.avhdx'), { writable: true });
    await d.zero(10 * MiB, MiB);
    await d.close();
    model.fill(0, 10 * MiB, 11 * MiB);
    assert.ok(sevenZipFlat(s.path('c.avhdx'), s.path('x')).equals(model));
    assert.ok((await readAll(s.path('c.avhdx'))).equals(model));
  });

  it('a chain of three children reads through every layer, and merges fold it back into the base', async () => {
    let parent = s.path('base.vhdx');
    for (let i = 1; i <= 3; i++) {
      const child = s.path(`c${i}.avhdx`);
      await createDifferencingVhdx(child, parent);
      await writeAt(child, model, patternBuffer(MiB + 512 * i, 10 + i), i * 3 * MiB + 512 * i);
      parent = child;
    }
    assert.ok((await readAll(s.path('c3.avhdx'))).equals(model));
    assert.ok(sevenZipFlat(s.path('c3.avhdx'), s.path('x')).equals(model));
    const c3 = await openDisk(s.path('c3.avhdx'));
    const ext = await c3.extents();
    await c3.close();
    assert.ok(ext.some((e) => e.kind === 'zero' && e.offset <= 20 * MiB && e.offset + e.length >= 24 * MiB), 'the base\'s zero blocks stay zero extents through the chain');
    const r3 = await mergeDifferencingVhdx(s.path('c3.avhdx'));
    assert.equal(r3.parentPath, s.path('c2.avhdx'));
    assert.deepEqual(r3.changed, [{ offset: 9 * MiB + 1536, length: MiB + 1536 }]);
    assert.ok(!existsSync(s.path('c3.avhdx')));
    assert.ok((await readAll(s.path('c2.avhdx'))).equals(model));
    await mergeDifferencingVhdx(s.path('c2.avhdx'));
    await mergeDifferencingVhdx(s.path('c1.avhdx'));
    assert.ok((await readAll(s.path('base.vhdx'))).equals(model));
    writeFileSync(s.path('expected.raw'), model);
    qemuCheck(s.path('base.vhdx'));
    qemuCompare(s.path('expected.raw'), s.path('base.vhdx'));
  });

  it('merge writes zeroed ranges into the parent and keeps the child when asked', async () => {
    await createDifferencingVhdx(s.path('c.avhdx'), s.path('base.vhdx'));
    const d = await openDisk(s.path('c.avhdx'), { writable: true });
    await d.zero(2 * MiB, 2 * MiB);
    await d.close();
    model.fill(0, 2 * MiB, 4 * MiB);
    const r = await mergeDifferencingVhdx(s.path('c.avhdx'), { keepChild: true });
    assert.deepEqual(r.changed, [{ offset: 2 * MiB, length: 2 * MiB }]);
    assert.ok(existsSync(s.path('c.avhdx')));
    assert.ok((await readAll(s.path('base.vhdx'))).equals(model));
  });

  it('finds the parent by relative path after both move, and by absolute path when only the child moves', async () => {
    await createDifferencingVhdx(s.path('c.avhdx'), s.path('base.vhdx'));
    await writeAt(s.path('c.avhdx'), model, patternBuffer(512, 6), 0);
    mkdirSync(s.path('other'));
    renameSync(s.path('c.avhdx'), s.path('other/c.avhdx'));
    assert.ok((await readAll(s.path('other/c.avhdx'))).equals(model), 'absolute_win32_path fallback');
    mkdirSync(s.path('moved'));
    renameSync(s.path('other/c.avhdx'), s.path('moved/c.avhdx'));
    renameSync(s.path('base.vhdx'), s.path('moved/base.vhdx'));
    const d = (await openDisk(s.path('moved/c.avhdx'))) as VhdxDisk;
    assert.equal(d.info.parent?.resolvedPath, s.path('moved/base.vhdx'));
    await d.close();
  });

  it('a missing parent or a modified parent is ERR_PARENT naming both files', async () => {
    await createDifferencingVhdx(s.path('c.avhdx'), s.path('base.vhdx'));
    await writeAt(s.path('base.vhdx'), undefined, Buffer.alloc(512, 1), 0);
    await assert.rejects(openDisk(s.path('c.avhdx')), (e) => isHvError(e, 'ERR_PARENT') && e.message.includes(s.path('c.avhdx')) && e.message.includes(s.path('base.vhdx')) && /DataWriteGuid/.test(e.message));
    await assert.rejects(mergeDifferencingVhdx(s.path('c.avhdx')), (e) => isHvError(e, 'ERR_PARENT'));
    renameSync(s.path('base.vhdx'), s.path('gone.vhdx'));
    await assert.rejects(openDisk(s.path('c.avhdx')), (e) => isHvError(e, 'ERR_PARENT') && e.message.includes(s.path('c.avhdx')) && e.message.includes('base.vhdx') && /not found/.test(e.message));
  });

  it('sector bitmaps of several chunks: writes either side of a 4 GiB chunk boundary read back and are listed exactly', async () => {
    const GiB = 1024 * MiB;
    const big = await createVhdx(s.path('big.vhdx'), { size: 10 * GiB, blockSize: 32 * MiB });
    await big.write(Buffer.alloc(64 * MiB, 0x11), 8 * GiB - 32 * MiB);
    await big.close();
    await createDifferencingVhdx(s.path('bigc.avhdx'), s.path('big.vhdx'));
    await writeAt(s.path('bigc.avhdx'), undefined, Buffer.alloc(512, 0x33), 8 * GiB - 512);
    await writeAt(s.path('bigc.avhdx'), undefined, Buffer.alloc(512, 0x44), 8 * GiB);
    await writeAt(s.path('bigc.avhdx'), undefined, Buffer.alloc(4096, 0x55), 9 * GiB + 512);
    assert.deepEqual(await differencingChangedRanges(s.path('bigc.avhdx')), [
      { offset: 8 * GiB - 512, length: 1024 }, { offset: 9 * GiB + 512, length: 4096 },
    ]);
    const d = await openDisk(s.path('bigc.avhdx'));
    const b = Buffer.alloc(2048);
    await d.read(b, 8 * GiB - 1024);
    await d.close();
    assert.deepEqual([b[0], b[511], b[512], b[1023], b[1024], b[1535], b[1536]], [0x11, 0x11, 0x33, 0x33, 0x44, 0x44, 0x11]);
  });
});
