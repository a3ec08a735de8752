import assert from 'node:assert/strict';
import { BufferBin } from '../../core/repo/buffer-bin.ts';

describe('BufferBin (buffers kept for reuse)', () => {
  const buf = (n: number) => Buffer.alloc(n);

  it('gives back a kept buffer that fits, the smallest fit bound included, and each only once', () => {
    const bin = new BufferBin<Buffer>({});
    const small = buf(100), big = buf(1000);
    assert.ok(bin.give(small) && bin.give(big));
    assert.equal(bin.bytes, 1100);
    assert.equal(bin.take(500, 900), undefined, 'nothing between 500 and 900 bytes');
    assert.equal(bin.take(500), big);
    assert.equal(bin.take(500), undefined, 'taken out: not handed out twice');
    assert.equal(bin.take(100, 100), small);
    assert.equal(bin.bytes, 0);
  });

  it('refuses what would pass its byte or buffer limit, and drains everything it keeps', () => {
    const byBytes = new BufferBin<Buffer>({ maxBytes: 250 });
    assert.ok(byBytes.give(buf(100)) && byBytes.give(buf(150)));
    assert.equal(byBytes.give(buf(1)), false);
    const byCount = new BufferBin<Buffer>({ maxItems: 2 });
    assert.ok(byCount.give(buf(1)) && byCount.give(buf(1)));
    assert.equal(byCount.give(buf(1)), false);
    assert.deepEqual(byBytes.drain().map((b) => b.length), [100, 150]);
    assert.equal(byBytes.bytes, 0);
    assert.ok(byBytes.give(buf(250)), 'room again after drain');
  });
});
