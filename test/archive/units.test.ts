import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { assertSafeEntryName, objectEntryName, parseEntryName } from '../../core/archive/entries.ts';
import { decodeLabel, encodeLabel, ARCHIVE_FORMAT, type MediumLabel } from '../../core/archive/label.ts';
import { RecordBlocker } from '../../core/archive/records.ts';
import { parseSize, formatSize } from '../../core/archive/size.ts';
import { emptyCatalog, objectIndex, putMedium, expiredMedia, type CatalogMedium } from '../../core/archive/catalog.ts';
import { isHvError } from '../../core/errors.ts';

const ID = 'ab'.repeat(32);

describe('archive units', () => {
  it('parses sizes with K/M/G/T suffixes and LTO names, refusing junk', () => {
    assert.equal(parseSize('4M'), 4 * 1024 * 1024);
    assert.equal(parseSize('100G'), 100 * 2 ** 30);
    assert.equal(parseSize('2t'), 2 * 2 ** 40);
    assert.equal(parseSize('256KiB'), 256 * 1024);
    assert.equal(parseSize('LTO-8'), 12e12);
    assert.equal(parseSize('512'), 512);
    assert.equal(formatSize(4 * 1024 * 1024), '4M');
    for (const bad of ['', '4X', '-1M', '0', 'M']) assert.throws(() => parseSize(bad, 'capacity'), (e) => isHvError(e, 'ERR_INVALID_ARGUMENT') && /capacity/.test(e.message));
  });

  it('re-blocks a stream into exact records and pads the last one with zeros', async () => {
    const b = new RecordBlocker(1024);
    const out: Buffer[] = [];
    b.on('data', (c: Buffer) => out.push(Buffer.from(c)));
    const src = new PassThrough();
    src.pipe(b);
    const input = Buffer.alloc(3000);
    for (let i = 0; i < input.length; i++) input[i] = (i % 251) + 1;
    src.write(input.subarray(0, 100));
    src.write(input.subarray(100, 2500));
    src.end(input.subarray(2500));
    await new Promise((r) => b.on('end', r));
    assert.deepEqual(out.map((c) => c.length), [1024, 1024, 1024]);
    const all = Buffer.concat(out);
    assert.ok(all.subarray(0, 3000).equals(input));
    assert.ok(all.subarray(3000).equals(Buffer.alloc(72)));
    assert.equal(b.written, 3072);
  });

  it('without exact records (media files) passes data through uncopied and pads the end the same way', async () => {
    const collect = async (exact: boolean) => {
      const b = new RecordBlocker(1024, { exact });
      const out: Buffer[] = [];
      b.on('data', (c: Buffer) => out.push(Buffer.from(c)));
      for (const n of [100, 2400, 500]) b.write(Buffer.alloc(n, n % 251));
      b.end();
      await new Promise((r) => b.on('end', r));
      return { bytes: Buffer.concat(out), sizes: out.map((c) => c.length), written: b.written };
    };
    const exact = await collect(true);
    const loose = await collect(false);
    assert.ok(loose.bytes.equals(exact.bytes));
    assert.equal(loose.written, 3072);
    assert.deepEqual(exact.sizes, [1024, 1024, 1024]);
    assert.deepEqual(loose.sizes, [100, 2400, 500, 72]);
  });

  it('names split chunks so a person understands them, and parses them back', () => {
    assert.equal(objectEntryName('chunks', ID, 2, 3), `chunks/${ID}.part2of3`);
    assert.deepEqual(parseEntryName(`chunks/${ID}.part2of3`, 'm'), { type: 'chunks', name: ID, part: 2, parts: 3 });
    assert.deepEqual(parseEntryName('config', 'm'), { type: 'config', name: 'config', part: 1, parts: 1 });
    assert.equal(parseEntryName('README.txt', 'm'), undefined);
    assert.throws(() => parseEntryName(`chunks/${ID}.part4of3`, 'pool-0001.tar'), (e) => isHvError(e, 'ERR_CORRUPT') && /pool-0001\.tar/.test(e.message));
    assert.throws(() => parseEntryName('etc/passwd', 'm'), /not written by HVBackup/);
  });

  it('refuses entry names that escape the destination', () => {
    for (const bad of ['../x', 'chunks/../../x', '/etc/passwd', 'C:/Windows/x', 'c:x', 'chunks\\x', '..']) {
      assert.throws(() => assertSafeEntryName(bad, 'evil.tar'), (e) => isHvError(e, 'ERR_CORRUPT') && /evil\.tar/.test(e.message) && /escape/.test(e.message), bad);
    }
    assert.doesNotThrow(() => assertSafeEntryName(`chunks/${ID}`, 'ok.tar'));
  });

  it('decodes labels and names the medium in every error', () => {
    const label: MediumLabel = { format: ARCHIVE_FORMAT, formatVersion: 1, mediumId: 'p-0001', pool: 'p', seq: 1, set: '0011223344556677', volume: 1, writtenAt: '2026-01-01T00:00:00.000Z', recordSize: 262144, capacity: 4194304, retentionDays: 7, repositoryId: ID, encrypted: false };
    assert.deepEqual(decodeLabel(encodeLabel(label), 'x'), label);
    assert.throws(() => decodeLabel(Buffer.from('{'), 'tape7.tar'), (e) => isHvError(e, 'ERR_CORRUPT') && /tape7\.tar/.test(e.message));
    assert.throws(() => decodeLabel(encodeLabel({ ...label, formatVersion: 9 }), 'tape7.tar'), (e) => isHvError(e, 'ERR_UNSUPPORTED'));
    assert.throws(() => decodeLabel(Buffer.from(JSON.stringify({ ...label, seq: 'one' })), 'tape7.tar'), /"seq"/);
  });

  it('indexes only complete objects and forgets what a reused medium held', () => {
    const pool = { name: 'p', capacity: 1 << 22, recordSize: 512, retentionDays: 1 };
    const medium = (id: string, seq: number, writtenAt: string, names: string[]): CatalogMedium => ({
      id, seq, set: 's', volume: seq, continues: false, writtenAt, expiresAt: new Date(Date.parse(writtenAt) + 86_400_000).toISOString(), bytes: 0,
      entries: names.map((name, i) => ({ name, offset: 512 * (2 * i + 1), length: 10 })),
    });
    let cat = emptyCatalog(pool, ID, false);
    cat = putMedium(cat, medium('p-0001', 1, '2026-01-01T00:00:00.000Z', [`chunks/${'01'.repeat(32)}`, `chunks/${'02'.repeat(32)}.part1of2`]));
    cat = putMedium(cat, medium('p-0002', 2, '2026-01-01T00:00:00.000Z', [`chunks/${'02'.repeat(32)}.part2of2`, `chunks/${'03'.repeat(32)}.part1of2`]));
    const idx = objectIndex(cat);
    assert.deepEqual([...idx.keys()].sort(), [`chunks/${'01'.repeat(32)}`, `chunks/${'02'.repeat(32)}`]);
    assert.deepEqual(idx.get(`chunks/${'02'.repeat(32)}`)!.map((p) => p.medium), ['p-0001', 'p-0002']);
    assert.deepEqual(expiredMedia(cat, new Date('2026-01-02T00:00:01Z')).map((m) => m.id), ['p-0001', 'p-0002']);
    assert.deepEqual(expiredMedia(cat, new Date('2026-01-01T12:00:00Z')), []);
    cat = putMedium(cat, medium('p-0001', 1, '2026-01-03T00:00:00.000Z', [`chunks/${'04'.repeat(32)}`]));
    assert.deepEqual([...objectIndex(cat).keys()].sort(), [`chunks/${'04'.repeat(32)}`]);
  });
});
