import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { qemuImg, scratch } from '../backup/testing.ts';
import type { Scratch } from '../backup/testing.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

function hvb(...args: string[]): { status: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [join(root, 'core', 'cli', 'main.ts'), ...args], { encoding: 'utf8', cwd: root, env: { ...process.env, HVBACKUP_PASSWORD: '' } });
  return { status: r.status, out: r.stdout, err: r.stderr };
}

describe('CLI: vm, backup, points, restore, verify', function () {
  this.timeout(180_000);
  let s: Scratch;
  before(() => { s = scratch('hvb-cli-'); });
  after(() => s.cleanup());

  it('runs a sample VM through backup, incremental, points, restore and verify with the documented exit codes', () => {
    const vm = s.path('vms', 'cli01');
    const repo = s.path('repo');
    assert.equal(hvb('vm', 'sample', vm, '--size', '0.03125').status, 0);
    assert.equal(hvb('repo', 'init', repo).status, 0);
    const full = hvb('backup', vm, '--repo', repo, '--json');
    assert.equal(full.status, 0, full.err);
    const lines = full.out.trim().split('\n').map((l) => JSON.parse(l));
    assert.ok(lines.some((l) => l.event === 'progress' && l.activity === 'backup'));
    const result = lines.at(-1);
    assert.equal(result.event, 'result');
    assert.equal(result.results[0].method, 'full');
    assert.equal(hvb('vm', 'guest-write', vm, '--count', '4', '--seed', '2').status, 0);
    const incr = hvb('backup', vm, '--repo', repo);
    assert.equal(incr.status, 0, incr.err);
    assert.match(incr.out, /cli01\s+success\s+changed-blocks/);
    const points = JSON.parse(hvb('points', '--repo', repo, '--vm', 'cli01', '--json').out);
    assert.deepEqual(points.map((p: { method: string }) => p.method), ['changed-blocks', 'full']);
    const restore = hvb('restore', 'latest', '--repo', repo, '--vm', 'cli01', '--to', s.path('r'), '--name', 'cli01-restored');
    assert.equal(restore.status, 0, restore.err);
    assert.match(restore.out, /restored cli01-restored/);
    const again = hvb('restore', 'latest', '--repo', repo, '--vm', 'cli01', '--to', s.path('r'), '--name', 'cli01-restored');
    assert.equal(again.status, 1);
    assert.match(again.err, /already exists/);
    const verify = hvb('verify', '--repo', repo);
    assert.equal(verify.status, 0, verify.err);
    assert.match(verify.out, /repository is OK/);
    const mixed = hvb('backup', vm, s.path('vms', 'nope'), '--repo', repo);
    assert.equal(mixed.status, 1, 'exit 1 when any VM failed');
    assert.match(mixed.out, /nope\s+failed/);
    assert.match(mixed.out, /cli01\s+success/);
    const noRepo = hvb('backup', vm, '--repo', s.path('no-repo'));
    assert.equal(noRepo.status, 1);
    assert.match(noRepo.err, /no-repo does not exist/);
    const repair = hvb('vm', 'repair', vm);
    assert.equal(repair.status, 0);
    assert.match(repair.out, /no leftover backup checkpoint/);
    const list = hvb('vm', 'list', s.path('vms'));
    assert.match(list.out, /cli01/);
  });

  it('verify --repair: nothing to repair on a sound repository; a lost pack is repaired and the next backup scans', () => {
    const vm = s.path('vms', 'cli02');
    const repo = s.path('repo2');
    assert.equal(hvb('vm', 'sample', vm, '--size', '0.03125').status, 0);
    assert.equal(hvb('repo', 'init', repo).status, 0);
    assert.equal(hvb('backup', vm, '--repo', repo).status, 0);
    const clean = hvb('verify', '--repo', repo, '--repair');
    assert.equal(clean.status, 0, clean.err);
    assert.match(clean.out, /repository is OK\nrepair: nothing to repair/);
    const packs = readdirSync(join(repo, 'packs'), { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
    const largest = packs.sort((a, b) => statSync(b).size - statSync(a).size)[0]!;
    rmSync(largest);
    writeFileSync(s.path('a-file'), 'x');
    const onFile = hvb('restore', 'latest', '--repo', repo, '--to', s.path('a-file'));
    assert.equal(onFile.status, 1);
    assert.match(onFile.err, /a-file \(a file, not a folder\)/);
    const strict = hvb('restore', 'latest', '--repo', repo, '--to', s.path('r2-strict'));
    assert.equal(strict.status, 1);
    assert.equal(existsSync(join(s.path('r2-strict'), 'Virtual Hard Disks', 'cli02.vhdx')), false, 'a failed restore leaves no disk');
    const salvage = hvb('restore', 'latest', '--repo', repo, '--to', s.path('r2-salvage'), '--allow-damaged');
    assert.equal(salvage.status, 1, 'restored, but not faithfully');
    assert.match(salvage.out, /WITH DAMAGE/);
    assert.match(salvage.out, /range\(s\), [\d.]+ MiB, written as zeros/);
    assert.equal(qemuImg('check', '-f', 'vhdx', join(s.path('r2-salvage'), 'Virtual Hard Disks', 'cli02.vhdx')).status, 0);
    const quick = hvb('verify', '--repo', repo, '--quick');
    assert.equal(quick.status, 1);
    assert.match(quick.out, /no data read \(quick\)/);
    assert.match(quick.out, /which holds it, does not exist/);
    const fixed = hvb('verify', '--repo', repo, '--repair');
    assert.equal(fixed.status, 1, 'what verify found is still reported');
    assert.match(fixed.out, /repair: took \d+ missing or corrupt chunk\(s\) out of the index/);
    assert.match(hvb('repo', 'stats', repo).out, /Scan next \(repair\)\s+cli02/);
    const scan = hvb('backup', vm, '--repo', repo);
    assert.equal(scan.status, 0, scan.err);
    assert.match(scan.out, /cli02\s+success\s+scan/);
    const after = hvb('verify', '--repo', repo);
    assert.equal(after.status, 0, after.out);
    assert.doesNotMatch(hvb('repo', 'stats', repo).out, /Scan next/);
    const part = hvb('verify', '--repo', repo, '--read-subset', '2/3');
    assert.equal(part.status, 0, part.err);
    assert.equal(hvb('verify', '--repo', repo, '--read-subset', '4/3').status, 2, 'a usage error');
    // Output nobody reads (a pipe closed early, `| head -1`) is dropped, not an EPIPE crash.
    const gone = spawnSync('bash', ['-c', '"$0" "$1" verify --repo "$2" | true; exit ${PIPESTATUS[0]}', process.execPath, join(root, 'core', 'cli', 'main.ts'), repo], { encoding: 'utf8', env: { ...process.env, HVBACKUP_PASSWORD: '' } });
    assert.equal(gone.status, 0, gone.stderr);
    assert.doesNotMatch(gone.stderr, /EPIPE|Unhandled/);
    const limited = hvb('verify', '--repo', repo, '--repair', '--point', 'latest');
    assert.equal(limited.status, 2, 'a usage error');
    assert.match(limited.err, /whole repository/);
  });

  it('verify names a damaged index object without points of its own, and each chunk it located with the point that needs it', () => {
    const vm = s.path('vms', 'cli03');
    const repo = s.path('repo3');
    assert.equal(hvb('vm', 'sample', vm, '--size', '0.03125').status, 0);
    assert.equal(hvb('repo', 'init', repo).status, 0);
    assert.equal(hvb('backup', vm, '--repo', repo).status, 0);
    const point = JSON.parse(hvb('points', '--repo', repo, '--json').out)[0].id as string;
    const [object] = readdirSync(join(repo, 'index'));
    const file = join(repo, 'index', object!);
    const bytes = readFileSync(file);
    bytes[200] ^= 0xff;
    writeFileSync(file, bytes);
    const r = hvb('verify', '--repo', repo);
    assert.equal(r.status, 1, r.err);
    const lines = r.out.split('\n');
    const objectLine = lines.find((l) => l.includes(`<index/${object}>: index object does not load`));
    assert.ok(objectLine, r.out);
    assert.doesNotMatch(objectLine!, /breaks/);
    assert.ok(lines.some((l) => /^problem: chunk [0-9a-f]{64}: chunk is missing/.test(l) && l.endsWith(`(breaks ${point.slice(0, 12)})`)), r.out);
  });
});
