import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import sinon from 'sinon';
import { patternBuffer } from '../../core/disk/testing.ts';
import { createVhdx, openDisk, readVhdxInfo, type VhdxDisk } from '../../core/vhdx/index.ts';
import { VhdxFile } from '../../core/vhdx/io/vhdx-file.ts';
import { currentHeader, sevenZipFlat, MiB, qemuCheck, qemuCompare, qemuToRaw, qemuWrite, run, scratch } from './helpers.ts';

const SIZE = 64 * MiB;
const WRITES: [number, number, number][] = [[0xab, 0, 4096], [0x11, 3 * MiB - 512, 2 * MiB + 1024], [0x5c, 40 * MiB + 4096, 100 * 1024], [0xee, SIZE - MiB, MiB]];

describe('VHDX interop with qemu-img', function () {
  let s: ReturnType<typeof scratch>;
  beforeEach(() => { s = scratch(); });
  afterEach(() => s.cleanup());

  for (const sub of ['dynamic', 'fixed']) {
    for (const bs of ['1M', '8M', '32M']) {
      for (const bsz of ['on', 'off']) {
        it(`reads a qemu ${sub} disk (block ${bs}, block_state_zero=${bsz}) byte-identical to qemu-img convert, extents from the BAT`, async () => {
          const f = s.path('q.vhdx');
          run('qemu-img', ['create', '-q', '-f', 'vhdx', '-o', `subformat=${sub},block_size=${bs},block_state_zero=${bsz}`, f, String(SIZE)]);
          qemuWrite(f, WRITES);
          const expected = qemuToRaw(f, s.path('q.raw'));
          const disk = await openDisk(f);
          try {
            const got = Buffer.alloc(SIZE);
            await disk.read(got, 0);
            assert.ok(got.equals(expected), 'contents differ from qemu-img convert');
            const ext = await disk.extents();
            for (const e of ext.filter((x) => x.kind === 'zero')) assert.ok(expected.subarray(e.offset, e.offset + e.length).every((b) => b === 0));
            if (sub === 'dynamic' || bsz === 'on') {
              // Exactly the blocks qemu-io touched are data; the rest come from the BAT as zero.
              const blockSize = parseInt(bs, 10) * MiB;
              const touched = new Set(WRITES.flatMap(([, off, len]) => {
                const out: number[] = [];
                for (let b = Math.floor(off / blockSize); b * blockSize < off + len; b++) out.push(b);
                return out;
              }));
              const dataBytes = ext.filter((x) => x.kind === 'data').reduce((a, e) => a + e.length, 0);
              assert.equal(dataBytes, touched.size * blockSize);
            }
          } finally {
            await disk.close();
          }
        });
      }
    }
  }

  const ours: [string, number, 512 | 4096][] = [['dynamic', MiB, 512], ['dynamic', 32 * MiB, 4096], ['dynamic', 256 * MiB, 512], ['fixed', MiB, 4096], ['fixed', 8 * MiB, 512]];
  for (const [type, blockSize, lss] of ours) {
    it(`writes a ${type} disk (block ${blockSize / MiB} MiB, ${lss}-byte sectors) that passes qemu-img check and compare`, async () => {
      const f = s.path('ours.vhdx');
      const disk = await createVhdx(f, { size: SIZE, type: type as 'dynamic' | 'fixed', blockSize, logicalSectorSize: lss });
      const model = Buffer.alloc(SIZE);
      const writes: [number, number][] = [[0, 5 * MiB + 4096], [17 * MiB + 512 * 3, 64 * 1024], [SIZE - 3 * MiB, 3 * MiB]];
      for (const [i, [off, len]] of writes.entries()) {
        const b = patternBuffer(len, i + 10);
        await disk.write(b, off);
        b.copy(model, off);
      }
      await disk.zero(MiB, 2 * MiB);
      model.fill(0, MiB, 3 * MiB);
      await disk.close();
      writeFileSync(s.path('expected.raw'), model);
      if (lss === 512) {
        qemuCheck(f);
        qemuCompare(s.path('expected.raw'), f);
      } else {
        // qemu's VHDX driver only supports 512-byte logical sectors; 7-Zip reads 4 KiB ones.
        assert.ok(sevenZipFlat(f, s.path('x')).equals(model), '7zz extracted image differs');
      }
      const info = await readVhdxInfo(f);
      assert.equal(info.type, type);
      assert.equal(info.logicalSectorSize, lss);
      assert.equal(info.logPending, false);
    });
  }

  for (const sub of ['dynamic', 'fixed']) {
    it(`writes into a qemu-created ${sub} disk; qemu-img check and compare still pass`, async () => {
      const f = s.path('q.vhdx');
      run('qemu-img', ['create', '-q', '-f', 'vhdx', '-o', `subformat=${sub},block_size=2M,block_state_zero=off`, f, String(SIZE)]);
      qemuWrite(f, WRITES);
      const model = qemuToRaw(f, s.path('before.raw'));
      const disk = await openDisk(f, { writable: true });
      const data = patternBuffer(5 * MiB + 512, 21);
      await disk.write(data, 9 * MiB - 512);
      data.copy(model, 9 * MiB - 512);
      await disk.zero(40 * MiB, 2 * MiB);
      model.fill(0, 40 * MiB, 42 * MiB);
      await disk.close();
      writeFileSync(s.path('expected.raw'), model);
      qemuCheck(f);
      qemuCompare(s.path('expected.raw'), f);
    });
  }

  it('first data write changes DataWriteGuid (both headers, two sequence numbers); later writes do not', async () => {
    const f = s.path('g.vhdx');
    const disk = (await createVhdx(f, { size: SIZE, blockSize: MiB })) as VhdxDisk;
    const before = disk.info.dataWriteGuid;
    const seq0 = currentHeader(f).header.sequenceNumber;
    await disk.write(Buffer.alloc(4096, 1), 0);
    const after = disk.info.dataWriteGuid;
    assert.notEqual(after, before);
    await disk.write(Buffer.alloc(4096, 2), 8192);
    assert.equal(disk.info.dataWriteGuid, after);
    await disk.close();
    const h = currentHeader(f).header;
    assert.equal(`{${h.dataWriteGuid}}`, after);
    assert.ok(h.sequenceNumber >= seq0 + 2n);
    const reopened = (await openDisk(f, { writable: true })) as VhdxDisk;
    assert.equal(reopened.info.dataWriteGuid, after, 'opening for write alone does not change it');
    await reopened.write(Buffer.alloc(512, 3), 0);
    assert.notEqual(reopened.info.dataWriteGuid, after);
    await reopened.close();
  });

  it('one write call of many blocks is one log transaction, and payload is allocated at the end of the file', async () => {
    const f = s.path('t.vhdx');
    const disk = (await createVhdx(f, { size: SIZE, blockSize: MiB })) as VhdxDisk;
    const spy = sinon.spy(VhdxFile.prototype, 'commitPages');
    try {
      const sizeBefore = disk.info.fileSize;
      await disk.write(patternBuffer(16 * MiB, 3), 4 * MiB);
      assert.equal(spy.callCount, 1);
      assert.equal(disk.info.fileSize, sizeBefore + 16 * MiB);
      await disk.write(patternBuffer(4 * MiB, 4), 4 * MiB);
      assert.equal(spy.callCount, 2, 'in-place rewrite needs no BAT transaction (commitPages returns early on no pages)');
    } finally {
      spy.restore();
      await disk.close();
    }
    const raw = readFileSync(f);
    assert.ok(raw.length >= 16 * MiB);
    qemuCheck(f);
  });
});
