import assert from 'node:assert/strict';
import { batGeometry, payloadEntryIndex, readBatEntry, sectorBitmapEntryIndex, writeBatEntry } from '../../core/vhdx/format/bat.ts';
import { crc32c } from '../../core/vhdx/format/crc32c.ts';
import { decodeGuid, encodeGuid, newGuid, NULL_GUID } from '../../core/vhdx/format/guid.ts';
import { decodeFileIdentifier, decodeHeader, encodeFileIdentifier, encodeHeader, selectHeader, type VhdxHeader } from '../../core/vhdx/format/header.ts';
import { decodeLogEntry, encodeLogEntry } from '../../core/vhdx/format/log.ts';
import {
  decodeDiskMetadata, decodeMetadataTable, decodeParentLocator, encodeDiskMetadataItems, encodeMetadataRegion, encodeParentLocator,
} from '../../core/vhdx/format/metadata.ts';
import { decodeRegionTable, encodeRegionTable } from '../../core/vhdx/format/region-table.ts';
import { PARENT_LOCATOR_TYPE_VHDX, REGION_BAT } from '../../core/vhdx/format/constants.ts';

const MiB = 1024 * 1024;

describe('VHDX format codecs', () => {
  it('CRC-32C known answers: "123456789" → 0xE3069283, empty → 0, chained equals whole', () => {
    assert.equal(crc32c(Buffer.from('123456789')), 0xe3069283);
    assert.equal(crc32c(Buffer.alloc(0)), 0);
    assert.equal(crc32c(Buffer.alloc(32)), 0x8a9136aa); // RFC 3720 B.4: 32 bytes of zeros
    const data = Buffer.from('The quick brown fox jumps over the lazy dog, repeatedly and at length.');
    assert.equal(crc32c(data.subarray(13), crc32c(data.subarray(0, 13))), crc32c(data));
  });

  it('GUIDs are stored mixed-endian as MS-VHDX says', () => {
    const b = Buffer.alloc(16);
    encodeGuid('2DC27766-F623-4200-9D64-115E9BFD4A08', b);
    assert.equal(b.toString('hex'), '6677c22d23f600429d64115e9bfd4a08');
    assert.equal(decodeGuid(b), '2dc27766-f623-4200-9d64-115e9bfd4a08');
    const g = newGuid();
    encodeGuid(g, b);
    assert.equal(decodeGuid(b), g);
  });

  it('file identifier and header round-trip; a flipped byte fails the checksum; higher sequence wins', () => {
    assert.equal(decodeFileIdentifier(encodeFileIdentifier({ creator: 'HVBackup test' }))?.creator, 'HVBackup test');
    const h: VhdxHeader = { sequenceNumber: 5n, fileWriteGuid: newGuid(), dataWriteGuid: newGuid(), logGuid: NULL_GUID, logVersion: 0, version: 1, logLength: MiB, logOffset: MiB };
    const enc = encodeHeader(h);
    const dec = decodeHeader(enc);
    assert.ok(dec.ok);
    assert.deepEqual(dec.header, h);
    const damaged = Buffer.from(enc);
    damaged[100] ^= 1;
    const bad = decodeHeader(damaged);
    assert.ok(!bad.ok && /checksum/.test(bad.problem));
    const newer = decodeHeader(encodeHeader({ ...h, sequenceNumber: 6n }));
    const sel = selectHeader(dec, newer);
    assert.ok('header' in sel && sel.index === 1 && sel.header.sequenceNumber === 6n);
    const one = selectHeader(bad, dec);
    assert.ok('header' in one && one.index === 1);
    assert.ok('problem' in selectHeader(bad, bad));
  });

  it('region table round-trips and detects damage', () => {
    const entries = [{ guid: REGION_BAT, fileOffset: 3 * MiB, length: MiB, required: true }];
    const enc = encodeRegionTable(entries);
    const dec = decodeRegionTable(enc);
    assert.ok(dec.ok);
    assert.deepEqual(dec.entries, entries);
    enc[40] ^= 0xff;
    assert.ok(!decodeRegionTable(enc).ok);
  });

  it('metadata table, items and parent locator round-trip (offsets relative to the item)', () => {
    const loc = { locatorType: PARENT_LOCATOR_TYPE_VHDX, entries: [['parent_linkage', '{0b2a9d5c-0000-4000-8000-000000000001}'], ['relative_path', '..\\base\\p.vhdx']] as [string, string][] };
    const meta = { fileParameters: { blockSize: 32 * MiB, leaveBlockAllocated: false, hasParent: true }, virtualDiskSize: 10 * 2 ** 30, page83: newGuid(), logicalSectorSize: 512, physicalSectorSize: 4096, parentLocator: loc };
    const region = encodeMetadataRegion(encodeDiskMetadataItems(meta), MiB);
    const table = decodeMetadataTable(region);
    assert.ok(table.ok);
    assert.equal(table.entries.length, 6);
    const items = new Map(table.entries.map((e) => [e.itemId, region.subarray(e.offset, e.offset + e.length)]));
    assert.deepEqual(decodeDiskMetadata(items), meta);
    const pl = encodeParentLocator(loc);
    assert.equal(pl.readUInt32LE(20), 20 + 2 * 12, 'first key starts right after the entry array');
    assert.deepEqual(decodeParentLocator(pl), loc);
  });

  it('BAT geometry: chunk ratio, interleaved indexes and entry counts', () => {
    const g = batGeometry(10 * 2 ** 30, 8 * MiB, 512, false);
    assert.equal(g.chunkRatio, 512);
    assert.equal(g.payloadBlocks, 1280);
    assert.equal(g.totalEntries, 1280 + 2);
    assert.equal(payloadEntryIndex(g, 511), 511);
    assert.equal(payloadEntryIndex(g, 512), 513);
    assert.equal(sectorBitmapEntryIndex(g, 0), 512);
    assert.equal(sectorBitmapEntryIndex(g, 1), 1025);
    assert.equal(batGeometry(64 * MiB, MiB, 512, false).chunkRatio, 4096);
    assert.equal(batGeometry(64 * MiB, MiB, 4096, false).chunkRatio, 32768);
    const d = batGeometry(10 * 2 ** 30, 8 * MiB, 512, true);
    assert.equal(d.totalEntries, 3 * 513);
    const bat = Buffer.alloc(16);
    writeBatEntry(bat, 1, { state: 6, fileOffset: 5000 * MiB });
    assert.deepEqual(readBatEntry(bat, 1), { state: 6, fileOffset: 5000 * MiB });
    assert.equal(bat.readBigUInt64LE(8), (5000n << 20n) | 6n);
  });

  it('log entries round-trip with data and zero descriptors, and any damage is detected', () => {
    const page = Buffer.alloc(4096);
    for (let i = 0; i < page.length; i++) page[i] = (i * 7) & 0xff;
    const logGuid = newGuid();
    const enc = encodeLogEntry({ tail: 0, sequenceNumber: 0x1_0000_0002n, logGuid, flushedFileOffset: 8 * MiB, lastFileOffset: 9 * MiB },
      [{ fileOffset: 3 * MiB, data: page }, { fileOffset: 4 * MiB, zeroLength: 8192 }]);
    assert.equal(enc.length, 2 * 4096);
    const dec = decodeLogEntry(enc);
    assert.ok(dec.ok);
    assert.equal(dec.entry.logGuid, logGuid);
    const [d0, d1] = dec.entry.descriptors;
    assert.ok(d0.kind === 'data' && d0.data!.equals(page) && d0.fileOffset === 3 * MiB);
    assert.ok(d1.kind === 'zero' && d1.length === 8192);
    const bad = Buffer.from(enc);
    bad[5000] ^= 1;
    assert.ok(!decodeLogEntry(bad).ok);
  });
});
