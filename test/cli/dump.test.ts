// hvbackup dump: a restore point's disk as raw bytes on stdout, whole or a range, into a pipe.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { damageChunk, diskSlices, qemuImg, scratch, type Scratch } from '../backup/testing.ts';

const main = join(import.meta.dirname, '..', '..', 'core', 'cli', 'main.ts');
const hvb = (...args: string[]) => spawnSync(process.execPath, [main, ...args], { maxBuffer: 1 << 30, timeout: 60_000, env: { ...process.env, HVBACKUP_PASSWORD: '' } });

describe('CLI: dump', function () {
  this.timeout(120_000);
  let s: Scratch;
  let repo: string;
  let raw: Buffer;
  before(() => {
    s = scratch('hvb-cli-dump-');
    const vm = s.path('vms', 'dump01');
    repo = s.path('repo');
    for (const args of [['vm', 'sample', vm, '--size', '0.03125'], ['repo', 'init', repo], ['backup', vm, '--repo', repo], ['vm', 'guest-write', vm, '--count', '6', '--seed', '5'], ['backup', vm, '--repo', repo]]) {
      const r = hvb(...args);
      assert.equal(r.status, 0, `${args.join(' ')}: ${r.stderr}`);
    }
    assert.equal(qemuImg('convert', '-f', 'vhdx', '-O', 'raw', join(vm, 'Virtual Hard Disks', 'dump01.vhdx'), s.path('disk.raw')).status, 0);
    raw = readFileSync(s.path('disk.raw'));
  });
  after(() => s.cleanup());

  it('writes the latest point\'s disk byte for byte, and a range of it', () => {
    const whole = hvb('dump', 'latest', '--repo', repo);
    assert.equal(whole.status, 0, whole.stderr.toString());
    assert.equal(whole.stdout.length, raw.length);
    assert.ok(whole.stdout.equals(raw), 'the disk, whole');
    const part = hvb('dump', 'latest', '--repo', repo, '--disk', 'dump01.vhdx', '--offset', '1000001', '--length', '3000017');
    assert.equal(part.status, 0, part.stderr.toString());
    assert.ok(part.stdout.equals(raw.subarray(1000001, 1000001 + 3000017)), 'bytes 1000001..4000018');
  });

  it('a range past the end, a disk the point lacks and a bad number are errors that say what is wrong; nothing is written', () => {
    const past = hvb('dump', 'latest', '--repo', repo, '--offset', String(raw.length - 10), '--length', '11');
    assert.equal(past.status, 2, 'a bad argument');
    assert.match(past.stderr.toString(), new RegExp(`not within disk .* which has ${raw.length}`));
    const nodisk = hvb('dump', 'latest', '--repo', repo, '--disk', 'other.vhdx');
    assert.equal(nodisk.status, 1, 'not found');
    assert.match(nodisk.stderr.toString(), /has no disk other\.vhdx \(disks: .*dump01\.vhdx\)/);
    const bad = hvb('dump', 'latest', '--repo', repo, '--offset', '12k');
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr.toString(), /--offset must be a whole number of bytes, got 12k/);
    for (const r of [past, nodisk, bad]) assert.equal(r.stdout.length, 0);
  });

  it('a reader that stops early ends the dump as SIGPIPE would (exit 141), with nothing on stderr', async () => {
    const child = spawn(process.execPath, [main, 'dump', 'latest', '--repo', repo], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    const first = await new Promise<Buffer>((resolve) => child.stdout.once('data', resolve));
    assert.ok(first.equals(raw.subarray(0, first.length)), 'the first bytes are the disk\'s');
    child.stdout.destroy();
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    assert.equal(code, 141);
    assert.equal(err, '');
  });

  it('--to writes a new raw image (sparse where the disk has zeros) and never over an existing file', () => {
    const out = s.path('out.raw');
    const r = hvb('dump', 'latest', '--repo', repo, '--to', out);
    assert.equal(r.status, 0, r.stderr.toString());
    assert.match(r.stdout.toString(), new RegExp(`wrote ${raw.length} bytes of dump01 disk .* to ${out.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    assert.ok(readFileSync(out).equals(raw), 'the disk, byte for byte');
    assert.ok(statSync(out).blocks * 512 < raw.length, `sparse: ${statSync(out).blocks * 512} bytes allocated of ${raw.length}`);
    const part = s.path('part.raw');
    assert.equal(hvb('dump', 'latest', '--repo', repo, '--to', part, '--offset', '4096', '--length', '1000000').status, 0);
    assert.ok(readFileSync(part).equals(raw.subarray(4096, 4096 + 1000000)), 'a range');
    const bad = hvb('dump', 'latest', '--repo', repo, '--to', s.path('bad.raw'), '--offset', String(raw.length + 1));
    assert.equal(bad.status, 2);
    assert.equal(existsSync(s.path('bad.raw')), false, 'a range outside the disk creates no file');
    writeFileSync(s.path('taken.raw'), 'keep me');
    const taken = hvb('dump', 'latest', '--repo', repo, '--to', s.path('taken.raw'));
    assert.equal(taken.status, 1);
    assert.match(taken.stderr.toString(), /taken\.raw already exists; dump never writes over a file/);
    assert.equal(readFileSync(s.path('taken.raw'), 'utf8'), 'keep me');
  });

  // Last: it damages the repository.
  it('--to: a dump that fails part-way leaves no file behind', async () => {
    const points = hvb('points', '--repo', repo, '--json');
    const latest = (JSON.parse(points.stdout.toString()) as { id: string }[])[0]!.id;
    const refs = await diskSlices(repo, latest);
    const last = refs.findLastIndex((r) => typeof r === 'string' && refs.indexOf(r) === refs.lastIndexOf(r));
    assert.ok(last > 0);
    await damageChunk(repo, refs[last] as string);
    const out = s.path('broken.raw');
    const r = hvb('dump', 'latest', '--repo', repo, '--to', out);
    assert.equal(r.status, 1, r.stderr.toString());
    assert.match(r.stderr.toString(), /corrupt|does not match/i);
    assert.equal(existsSync(out), false, 'the partial image was deleted');
  });
});
