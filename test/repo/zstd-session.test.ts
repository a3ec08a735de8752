import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { zstdDecompressSync } from 'node:zlib';
import { decodeObject, encodeCompressedInto, encodeObject, FORMAT_RAW, FORMAT_ZSTD, looksIncompressible } from '../../core/repo/object-format.ts';
import { sharedAlignedBuffer } from '../../core/disk/file-io.ts';
import { ZstdDecompressSession, ZstdSession, zstdBound, zstdContentSize } from '../../core/repo/zstd-session.ts';

const text = (n: number, seed: number) => Buffer.from(Array.from({ length: Math.ceil(n / 20) + 1 }, (_, i) => `${seed} INFO GET /api/v1/items/${(i * 7919 + seed) % 1000} 200\n`).join('')).subarray(0, n);

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
      // Every frame states its content size (restore sizes its output buffer from it).
      inputs.forEach((p, i) => assert.equal(zstdContentSize(frames[i]!), p.length, `frame ${i} states its size`));
      // Same input, same frame: nothing of the previous frame leaks into the next one.
      assert.ok(frames[0]!.equals(frames[5]!));
      // The zstd command line reads the frame too (what docs/repository-format.md's by-hand restore uses).
      const cli = spawnSync('zstd', ['-d', '-c'], { input: frames[3]! });
      assert.equal(cli.status, 0, String(cli.stderr));
      assert.ok(cli.stdout.equals(inputs[3]!));
    });
  }

  for (const reuse of [true, false]) {
    it(`compressInto writes the frame where it is asked, only when shorter than the limit, and a frame cut short spoils nothing after it (${reuse ? 'reused context' : 'fallback'})`, () => {
      const s = new ZstdSession(1, { reuse });
      const t = text(256 * 1024, 4);
      const expected = Buffer.from(new ZstdSession(1).compress(t));
      // Into shared memory (a pack being filled), at an offset, the bytes before it untouched.
      const out = sharedAlignedBuffer(1024 * 1024) ?? Buffer.alloc(1024 * 1024);
      out.fill(0xaa);
      const n = s.compressInto(t, out, 1000, t.length);
      assert.ok(n > 0 && n < t.length, `frame of ${n} bytes`);
      assert.ok(zstdDecompressSync(out.subarray(1000, 1000 + n)).equals(t));
      assert.ok(out.subarray(1000, 1000 + n).equals(expected), 'the same frame compress() gives');
      assert.equal(out[999], 0xaa, 'nothing written before the frame');
      // Not shorter than the limit: 0, whatever it wrote.
      assert.equal(s.compressInto(t, out, 0, n), 0);
      assert.equal(s.compressInto(randomBytes(64 * 1024), out, 0, 64 * 1024), 0, 'random data does not shrink');
      // Less room than zstd's worst case: through the scratch buffer, the same frame when it
      // fits with room to spare, else 0; the context stays as it was (same frame after).
      const snug = Buffer.alloc(n + 1);
      assert.equal(s.compressInto(t, snug, 0, t.length), n);
      assert.ok(snug.subarray(0, n).equals(expected));
      assert.equal(s.compressInto(t, Buffer.alloc(n - 1), 0, t.length), 0);
      assert.equal(s.compressInto(t, Buffer.alloc(n), 0, t.length), 0, 'a frame filling the room exactly counts as not fitting');
      const again = Buffer.alloc(zstdBound(t.length));
      const m = s.compressInto(t, again, 0, t.length);
      assert.ok(again.subarray(0, m).equals(expected), 'the same frame again');
      assert.equal(s.reusing, reuse);
    });
  }

  it('encodeCompressedInto: zstd in place for text, 0 (store raw) for random data, empty or what does not shrink', () => {
    const t = text(256 * 1024, 11);
    const out = sharedAlignedBuffer(600 * 1024) ?? Buffer.alloc(600 * 1024);
    const n = encodeCompressedInto(t, out, 7, 1);
    assert.equal(out[7], FORMAT_ZSTD);
    assert.ok(decodeObject(out.subarray(7, 7 + n), '<test>').equals(t));
    assert.ok(out.subarray(7, 7 + n).equals(encodeObject(t, 1)), 'the same stored bytes encodeObject makes');
    assert.equal(encodeCompressedInto(randomBytes(256 * 1024), out, 0), 0);
    assert.equal(encodeCompressedInto(Buffer.alloc(0), out, 0), 0);
    assert.equal(encodeCompressedInto(Buffer.from('abc'), out, 0), 0, 'a frame is longer than 3 bytes');
    assert.throws(() => encodeCompressedInto(t, out, out.length - t.length), /room/);
  });

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

  it('reads the content size of frames from the zstd command line, of every header size, and nothing from other data', () => {
    // From a file, the CLI knows the size and states it in 1, 2, 4 (or 8) bytes.
    const dir = mkdtempSync(join(tmpdir(), 'hvb-zstd-'));
    try {
      for (const n of [0, 200, 300, 70_000, 300_000]) {
        writeFileSync(join(dir, 'in'), text(n, 5));
        const cli = spawnSync('zstd', ['-1', '-c', '--no-check', join(dir, 'in')]);
        assert.equal(cli.status, 0, String(cli.stderr));
        assert.equal(zstdContentSize(cli.stdout), n, `zstd CLI frame of ${n} bytes`);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const streamed = spawnSync('sh', ['-c', 'head -c 100000 /dev/zero | zstd -1 -c']);
    assert.equal(zstdContentSize(streamed.stdout), undefined, 'a frame compressed from a pipe states no size');
    assert.equal(zstdContentSize(randomBytes(64)), undefined);
    assert.equal(zstdContentSize(Buffer.from([0x28, 0xb5, 0x2f])), undefined);
  });
});

describe('ZstdDecompressSession (one reused zstd decompression context)', () => {
  it('reuses the context on this Node, so the fast path is the one measured', () => {
    assert.equal(new ZstdDecompressSession().reusing, true, 'node:zlib internals changed: decoding fell back to zstdDecompressSync');
  });

  it('decodes frame after frame into buffers of their own, whatever came before', () => {
    const d = new ZstdDecompressSession();
    const enc = new ZstdSession(1);
    const inputs = [text(256 * 1024, 1), randomBytes(4096), text(300_000, 3), text(100, 4), text(256 * 1024, 1)];
    const outs = inputs.map((p) => {
      const frame = Buffer.from(enc.compress(p));
      const out = d.decompress(frame, zstdContentSize(frame)!);
      assert.ok(out, 'fast path');
      return out;
    });
    inputs.forEach((p, i) => {
      assert.ok(outs[i]!.equals(p), `frame ${i}`);
      assert.equal(outs[i]!.byteOffset, 0);
      assert.equal(outs[i]!.buffer.byteLength, p.length, 'fills its own ArrayBuffer (transferable)');
    });
    assert.equal(d.reusing, true);
  });

  it('gives up (undefined) on a frame that does not end where its header says, and never reuses that context', () => {
    const p = text(256 * 1024, 7);
    const frame = Buffer.from(new ZstdSession(1).compress(p));
    const damaged = Buffer.from(frame);
    damaged[40]! ^= 0xff;
    damaged[41]! ^= 0x55;
    const cases: [string, Buffer, number][] = [
      ['cut short', frame.subarray(0, frame.length - 10), p.length],
      ['longer than stated', frame, p.length - 1],
      ['followed by another frame', Buffer.concat([frame, frame]), p.length],
      ['damaged', damaged, p.length],
    ];
    for (const [what, f, size] of cases) {
      const d = new ZstdDecompressSession();
      // ok(=== undefined), not equal(): a failure would diff a 256 KiB buffer for minutes.
      assert.ok(d.decompress(f, size) === undefined, what);
      assert.equal(d.reusing, false, `${what}: context dropped`);
      assert.ok(d.decompress(frame, p.length) === undefined, `${what}: no second try on that context`);
    }
    // decodeObject then reports the damage as it always did (through zstdDecompressSync).
    assert.throws(() => decodeObject(Buffer.concat([Buffer.from([FORMAT_ZSTD]), damaged]), '<chunks/x>'), (e: Error & { code?: string }) => e.code === 'ERR_CORRUPT' && /<chunks\/x>/.test(e.message));
    // …and the next good object still decodes, on a context made anew (worked: this Node reuses one).
    assert.ok(decodeObject(Buffer.concat([Buffer.from([FORMAT_ZSTD]), frame]), '<chunks/y>').equals(p));
    const d = new ZstdDecompressSession();
    d.decompress(damaged, p.length);
    assert.equal(d.reusing, false);
    assert.equal(d.worked, true, 'a dropped context still says the fast path works here, so decodeObject makes another');
  });
});
