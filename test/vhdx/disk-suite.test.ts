import assert from 'node:assert/strict';
import type { Disk } from '../../core/disk/disk.ts';
import { patternBuffer, testOnAllDisks } from '../../core/disk/testing.ts';
import { isHvError } from '../../core/errors.ts';
import { openDisk } from '../../core/vhdx/index.ts';

const MiB = 1024 * 1024;
const SIZE = 24 * MiB;

/** What every Disk must do, checked against an in-memory model of the expected bytes. */
async function expectBytes(disk: Disk, model: Buffer): Promise<void> {
  const got = Buffer.alloc(model.length);
  await disk.read(got, 0);
  assert.ok(got.equals(model), 'disk content differs from the model');
}

async function initialModel(disk: Disk): Promise<Buffer> {
  const m = Buffer.alloc(disk.size);
  await disk.read(m, 0);
  return m;
}

testOnAllDisks('Disk contract', ({ factory, dir }) => {
  it('reads back unaligned writes, zero() and any byte range, before and after reopen', async () => {
    const disk = await factory.create(dir(), SIZE);
    const model = await initialModel(disk);
    const writes: [number, number][] = [[0, 4096], [MiB - 100, 300], [5 * MiB + 7, 3 * MiB + 11], [SIZE - 512, 512], [2 * MiB, 2 * MiB]];
    for (const [i, [off, len]] of writes.entries()) {
      const data = patternBuffer(len, i + 1);
      await disk.write(data, off);
      data.copy(model, off);
    }
    await disk.zero(6 * MiB, 1500);
    model.fill(0, 6 * MiB, 6 * MiB + 1500);
    await disk.zero(12 * MiB, 4 * MiB);
    model.fill(0, 12 * MiB, 16 * MiB);
    await expectBytes(disk, model);
    const piece = Buffer.alloc(777);
    await disk.read(piece, 5 * MiB + 3);
    assert.ok(piece.equals(model.subarray(5 * MiB + 3, 5 * MiB + 780)));
    const path = disk.path;
    await disk.close();
    const again = await openDisk(path);
    try {
      await expectBytes(again, model);
    } finally {
      await again.close();
    }
  });

  it('extents cover the disk, in order, and every byte outside data extents reads as zero', async () => {
    const disk = await factory.create(dir(), SIZE);
    await disk.write(patternBuffer(MiB, 7), 9 * MiB);
    const ext = await disk.extents();
    let pos = 0;
    for (const e of ext) {
      assert.equal(e.offset, pos);
      pos += e.length;
    }
    assert.equal(pos, SIZE);
    const all = await initialModel(disk);
    for (const e of ext.filter((x) => x.kind === 'zero')) {
      assert.ok(all.subarray(e.offset, e.offset + e.length).every((b) => b === 0), `zero extent at ${e.offset} holds data`);
    }
    await disk.close();
  });

  it('refuses out-of-range I/O and writes to a read-only open with ERR_INVALID_ARGUMENT naming the file', async () => {
    const disk = await factory.create(dir(), SIZE);
    await assert.rejects(disk.read(Buffer.alloc(1024), SIZE - 512), (e) => isHvError(e, 'ERR_INVALID_ARGUMENT') && e.message.includes(disk.path));
    await assert.rejects(disk.write(Buffer.alloc(10), -1), (e) => isHvError(e, 'ERR_INVALID_ARGUMENT'));
    const path = disk.path;
    await disk.close();
    const ro = await openDisk(path);
    await assert.rejects(ro.write(Buffer.alloc(512), 0), (e) => isHvError(e, 'ERR_INVALID_ARGUMENT') && e.message.includes('read-only'));
    await ro.close();
  });
});
