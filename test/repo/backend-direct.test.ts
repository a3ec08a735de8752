import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalBackend } from '../../core/repo/backend-local.ts';
import { alignedBuffer, isPageAligned } from '../../core/disk/file-io.ts';

describe('LocalBackend large objects from parts (packs: direct writes where the file system has them)', () => {
  let dir: string;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'hvb-direct-')); });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('stores parts of odd sizes byte for byte, whatever falls on the last partial page, and leaves no temp file', async () => {
    const b = new LocalBackend(dir);
    // Sizes around the 4 KiB alignment: the bulk ends inside a part; exact multiples; a lone tail.
    const cases = [
      [1024 * 1024 + 5, 4091, 7, 262_144, 33],
      [2 * 1024 * 1024, 4096],
      [3 * 1024 * 1024 + 100],
      [512 * 1024, 512 * 1024 + 1, 1, 0, 4095],
    ];
    for (const [n, sizes] of cases.entries()) {
      const parts = sizes.map((s) => randomBytes(s));
      const name = `${n}`.padStart(2, '0') + 'a'.repeat(62);
      await b.save(undefined, { type: 'packs', name }, parts);
      const file = join(dir, 'packs', name.slice(0, 2), name);
      assert.ok(readFileSync(file).equals(Buffer.concat(parts)), `case ${n} (${sizes.join('+')} bytes) reads back as written`);
      const whole = Buffer.concat(parts);
      const at = Math.min(sizes[0]! - 3, whole.length - 10);
      assert.ok((await b.load(undefined, { type: 'packs', name }, { offset: at, length: 10 })).equals(whole.subarray(at, at + 10)));
    }
    assert.deepEqual(readdirSync(join(dir, 'tmp')), []);
  });

  it('stores page-aligned buffers (pack buffers) as they are, whole pages and tail, and the buffer may be reused at once', async () => {
    const b = new LocalBackend(dir);
    const mem = alignedBuffer(3 * 1024 * 1024)!;
    assert.ok(isPageAligned(mem) && isPageAligned(mem.subarray(8192)) && !isPageAligned(mem.subarray(1)) && !isPageAligned(Buffer.alloc(8192)));
    for (const [n, size] of [1024 * 1024 + 4095, 2 * 1024 * 1024, 3 * 1024 * 1024 - 1].entries()) {
      const want = randomBytes(size);
      want.copy(mem);
      const name = `${n}`.padStart(2, '0') + 'b'.repeat(62);
      await b.save(undefined, { type: 'packs', name }, n === 2 ? [mem.subarray(0, size - 10), want.subarray(size - 10)] : mem.subarray(0, size));
      mem.fill(0xee); // the next pack reuses the memory: the stored object must not change
      assert.ok(readFileSync(join(dir, 'packs', name.slice(0, 2), name)).equals(want), `case ${n} (${size} bytes) reads back as written`);
    }
    assert.deepEqual(readdirSync(join(dir, 'tmp')), []);
  });
});
