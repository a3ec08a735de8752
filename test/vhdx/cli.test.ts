import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { patternBuffer } from '../../core/disk/testing.ts';
import { createDifferencingVhdx, createVhdx, openDisk } from '../../core/vhdx/index.ts';
import { hvbackup, makeReplayFixture, MiB, qemuCheck, qemuCompare, scratch, writeAtSync } from './helpers.ts';

describe('hvbackup vhdx CLI', () => {
  let s: ReturnType<typeof scratch>;
  beforeEach(() => { s = scratch(); });
  afterEach(() => s.cleanup());

  it('convert raw → vhdx (zero blocks unallocated) → raw round-trips, and never overwrites', async () => {
    const raw = Buffer.alloc(24 * MiB);
    patternBuffer(3 * MiB, 1).copy(raw, MiB);
    patternBuffer(512, 2).copy(raw, 20 * MiB + 4096);
    writeFileSync(s.path('in.raw'), raw);
    let r = hvbackup(['vhdx', 'convert', s.path('in.raw'), s.path('d.vhdx'), '--block-size', '1']);
    assert.equal(r.status, 0, r.stderr);
    qemuCheck(s.path('d.vhdx'));
    qemuCompare(s.path('in.raw'), s.path('d.vhdx'));
    r = hvbackup(['vhdx', 'info', s.path('d.vhdx'), '--json']);
    assert.equal(r.status, 0, r.stderr);
    const info = JSON.parse(r.stdout);
    assert.equal(info.type, 'dynamic');
    assert.equal(info.blockSize, MiB);
    assert.equal(info.allocatedBytes, 4 * MiB, 'only the four blocks holding data are allocated');
    r = hvbackup(['vhdx', 'convert', s.path('d.vhdx'), s.path('out.img'), '--to', 'raw']);
    assert.equal(r.status, 0, r.stderr);
    assert.ok(readFileSync(s.path('out.img')).equals(raw));
    const before = readFileSync(s.path('out.img'));
    r = hvbackup(['vhdx', 'convert', s.path('d.vhdx'), s.path('out.img'), '--to', 'raw']);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /already exists/);
    assert.ok(readFileSync(s.path('out.img')).equals(before));
    r = hvbackup(['vhdx', 'convert', s.path('in.raw'), s.path('f.vhdx'), '--type', 'fixed', '--block-size', '2']);
    assert.equal(r.status, 0, r.stderr);
    qemuCompare(s.path('in.raw'), s.path('f.vhdx'));
    assert.match(hvbackup(['vhdx', 'info', s.path('f.vhdx')]).stdout, /type: fixed/);
  });

  it('check exits 0 on a valid file, 1 with one line per problem, and --repair replays a log', async () => {
    const d = await createVhdx(s.path('ok.vhdx'), { size: 8 * MiB, blockSize: MiB });
    await d.close();
    let r = hvbackup(['vhdx', 'check', s.path('ok.vhdx')]);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    writeAtSync(s.path('ok.vhdx'), 64 * 1024 + 100, Buffer.from('x'));
    writeAtSync(s.path('ok.vhdx'), 192 * 1024 + 100, Buffer.from('x'));
    r = hvbackup(['vhdx', 'check', s.path('ok.vhdx')]);
    assert.equal(r.status, 1);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.length, 2, r.stdout);
    assert.match(lines[0], /ok\.vhdx: header 1 .*invalid/);
    assert.match(lines[1], /ok\.vhdx: region table 1 .*invalid/);
    makeReplayFixture(s.path('nr.vhdx'));
    r = hvbackup(['vhdx', 'check', s.path('nr.vhdx')]);
    assert.equal(r.status, 1);
    assert.match(r.stdout, /log has 1 pending entry/);
    r = hvbackup(['vhdx', 'check', '--repair', s.path('nr.vhdx')]);
    assert.equal(r.status, 0, r.stdout);
    assert.match(r.stdout, /repaired: log replayed/);
    qemuCheck(s.path('nr.vhdx'));
  });

  it('write through a differencing chain, diff lists the child\'s ranges, merge folds it into the parent', async () => {
    const p = await createVhdx(s.path('p.vhdx'), { size: 16 * MiB, blockSize: MiB });
    await p.write(patternBuffer(16 * MiB, 3), 0);
    await p.close();
    await createDifferencingVhdx(s.path('c.avhdx'), s.path('p.vhdx'));
    let r = hvbackup(['vhdx', 'write', s.path('c.avhdx'), '--offset', String(2 * MiB + 512), '--pattern', '0xcd', '--length', '1024']);
    assert.equal(r.status, 0, r.stderr);
    writeFileSync(s.path('blob'), patternBuffer(MiB, 4));
    r = hvbackup(['vhdx', 'write', s.path('c.avhdx'), '--offset', String(8 * MiB), '--from', s.path('blob')]);
    assert.equal(r.status, 0, r.stderr);
    r = hvbackup(['vhdx', 'diff', s.path('p.vhdx'), s.path('c.avhdx')]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^${2 * MiB + 512}\\t1024\\n${8 * MiB}\\t${MiB}\\n`));
    const expected = patternBuffer(16 * MiB, 3);
    expected.fill(0xcd, 2 * MiB + 512, 2 * MiB + 1536);
    patternBuffer(MiB, 4).copy(expected, 8 * MiB);
    r = hvbackup(['vhdx', 'merge', s.path('c.avhdx')]);
    assert.equal(r.status, 0, r.stderr);
    assert.ok(!existsSync(s.path('c.avhdx')));
    const d = await openDisk(s.path('p.vhdx'));
    const got = Buffer.alloc(16 * MiB);
    await d.read(got, 0);
    await d.close();
    assert.ok(got.equals(expected));
  });

  it('bad arguments and bad files give exit codes 2 and 1 with the file named', async () => {
    let r = hvbackup(['vhdx', 'write', s.path('nope.vhdx'), '--offset', '0', '--pattern', '0x1ff', '--length', '1']);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--pattern/);
    writeFileSync(s.path('junk.vhdx'), Buffer.alloc(4096, 1));
    r = hvbackup(['vhdx', 'info', s.path('junk.vhdx')]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /junk\.vhdx.*not a VHDX/);
  });
});
