import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { zstdDecompressSync } from 'node:zlib';
import { decodeObject, encodeObject, FORMAT_RAW, FORMAT_ZSTD, looksIncompressible } from '../../core/repo/object-format.ts';
import { ZstdSession, zstdBound } from '../../core/repo/zstd-session.ts';

const text = (n: number, seed: number) => Buffer.from(Array.from({ length: Math.ceil(n / 40) }, (_, i) => `${seed} INFO GET /api/v1/items/${(i * 7919 + seed) % 1000} 200\n`).join('')).subarray(0, n);

describe('ZstdSession (one reused zstd context)', () => {
  it('reuses the context on this Node, so the fast path is the one measured', () => {
    assert.equal(new ZstdSession(1).reusing, true, 'node:zlib internals changed: the session fell back to zstdCompressSync');
  });

  for (const reuse of [true, false]) {
    it(`gives one independent frame per call that zstd decodes (${reuse ? 'reused context' : 'fallback'})`, () => {
      const s = new ZstdSession(1, { reuse });
      const inputs = [text(256 * 1024, 1), text(12 * 1024, 2), Buffer.alloc(0), text(300_000, 3), randomBytes(64 * 1024), text(256 * 1024, 1)];
      const frames = inputs.map((p) => Buffer.from(s.compress(p)));
      inputs.forEach((p, i) => {
        assert.ok(zstdDecompressSync(frames[i]!).equals(p), `frame ${i} decodes to its own input`);
        assert.ok(frames[i]!.length <= zstdBound(p.length));
      });
      // Same input, same frame: nothing of the previous frame leaks into the next one.
      assert.ok(frames[0]!.equals(frames[5]!));
      // The zstd command line reads the frame too (what docs/repository-format.md's by-hand restore uses).
      const cli = spawnSync('zstd', ['-d', '-c'], { input: frames[3]! });
      assert.equal(cli.status, 0, String(cli.stderr));
      assert.ok(cli.stdout.equals(inputs[3]!));
    });
  }

  it('encodeObject returns buffers of their own, raw for random data, zstd for text', () => {
    const t = text(256 * 1024, 9);
    const r = randomBytes(256 * 1024);
    assert.equal(looksIncompressible(t), false);
    assert.equal(looksIncompressible(r), true);
    const et = encodeObject(t);
    const er = encodeObject(r);
    encodeObject(text(256 * 1024, 10)); // overwrites the session's scratch: et must not change
    assert.equal(et[0], FORMAT_ZSTD);
    assert.equal(er[0], FORMAT_RAW);
    for (const [e, p] of [[et, t], [er, r]] as const) {
      assert.equal(e.byteOffset, 0);
      assert.equal(e.buffer.byteLength, e.length, 'fills its own ArrayBuffer (transferable)');
      assert.ok(decodeObject(e, '<test>').equals(p));
    }
  });
});
