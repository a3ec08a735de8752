#!/usr/bin/env node
// Install everything the project needs, idempotently, so that `npm start` and `npm test`
// work on a fresh clone: npm packages (incl. the pinned Node 24), Debian tools used by
// interop tests (qemu-img, 7zz), and PowerShell 7 + Pester for the module's tests.
// Runs on whatever node npm found first (it may be an old system Node): plain ESM only.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = new Set(process.argv.slice(2));
const quiet = args.has('--quiet');
const say = (m) => { if (!quiet) process.stderr.write(`setup: ${m}\n`); };

function have(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

function npmPackages() {
  const lock = join(root, 'package-lock.json');
  const stamp = join(root, 'node_modules', '.hvbackup-install-stamp');
  const want = createHash('sha256').update(readFileSync(lock)).digest('hex');
  if (existsSync(stamp) && readFileSync(stamp, 'utf8') === want && existsSync(join(root, 'node_modules', 'node', 'bin'))) return;
  say('installing npm packages (npm ci)');
  execFileSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
  writeFileSync(stamp, want);
}

// --bench adds the peers the benchmarks run beside us (bench/run_peers.sh and friends).
const BENCH_TOOLS = [['restic', 'restic'], ['borg', 'borgbackup'], ['zstd', 'zstd'], ['/usr/bin/time', 'time']];

function debianTools() {
  const tools = [['qemu-img', 'qemu-utils'], ['7zz', '7zip'], ...(args.has('--bench') ? BENCH_TOOLS : [])];
  const wanted = tools.filter(([cmd]) => !have(cmd));
  if (wanted.length === 0) return;
  const pkgs = wanted.map(([, p]) => p);
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (!isRoot || !have('apt-get')) {
    say(`missing ${wanted.map(([c]) => c).join(', ')}: install ${pkgs.join(' ')} (interop tests and benchmarks need them)`);
    return;
  }
  say(`installing Debian packages: ${pkgs.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  execFileSync('apt-get', ['update', '-qq'], { stdio: ['ignore', 'ignore', 'inherit'], env });
  execFileSync('apt-get', ['install', '-y', '-qq', ...pkgs], { stdio: ['ignore', 'ignore', 'inherit'], env });
}

npmPackages();
debianTools();
if (!args.has('--no-powershell') && existsSync(join(root, 'scripts', 'setup-powershell.mjs'))) {
  const r = spawnSync(process.execPath, [join(root, 'scripts', 'setup-powershell.mjs'), ...(quiet ? ['--quiet'] : [])], { stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
