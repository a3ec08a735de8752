// The project's one test command (npm test, .ci/run): type-check, mocha (engine), then
// Pester (PowerShell module), and a last line totalling every suite: "N passed, N failed".
// HVB_TEST_GREP=<regex> runs only matching mocha tests; HVB_TEST_SUITES=mocha,spill,pester picks
// suites. "spill" runs the engine tests that go through a repository's chunk index (backup,
// restore, verify, repair, gc, prune, kept indexes, encryption) again with HVB_INDEX_MEMORY_RECORDS=3:
// the index and GC's referenced set spill to scratch runs every few records, as they do past
// 512 Ki records in a large repository, which no test repository here reaches; and with
// HVB_INDEX_TABLE_RECORDS=5, so writers store index tables and later loads use them; and the
// crash sweeps of a backup and a gc at every fourth change under those settings.
// Mocha runs in a child process of this script (--mocha-child <file>), which keeps its tally in
// <file> as it goes: a test that kills its process (out of memory, a native abort) is then a
// failure in the total, not a run that ends without one.
import { spawnSync } from 'node:child_process';
import { existsSync, globSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Mocha from 'mocha';
import module from 'node:module';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
// Every engine process the tests start (CLI, bridge) reuses compiled, type-stripped code.
process.env.NODE_COMPILE_CACHE ??= join(tmpdir(), 'node-compile-cache');
module.enableCompileCache?.(process.env.NODE_COMPILE_CACHE);
const suites = new Set((process.env.HVB_TEST_SUITES ?? 'typecheck,mocha,spill,pester').split(','));
const SPILL_FILES = ['test/repo/spill.test.ts', 'test/backup/backup.test.ts', 'test/backup/split-slices.test.ts', 'test/restore/restore.test.ts', 'test/restore/point-disk.test.ts',
  'test/repo/index-objects.test.ts', 'test/backup/segments.test.ts', 'test/repo/packs.test.ts', 'test/repo/repository.test.ts', 'test/repo/kept-index.test.ts', 'test/crypto/encrypted-repository.test.ts', 'test/backup/repair.test.ts'];

interface Tally { passed: number; failed: number; skipped: number }
const total: Tally = { passed: 0, failed: 0, skipped: 0 };
// Every failure is printed again just above the total: a CI log is often read from its tail,
// and mocha's own failure report scrolls away under the Pester output.
const failures: string[] = [];
const add = (name: string, t: Tally) => {
  total.passed += t.passed; total.failed += t.failed; total.skipped += t.skipped;
  process.stdout.write(`[${name}] ${t.passed} passed, ${t.failed} failed${t.skipped ? `, ${t.skipped} skipped` : ''}\n`);
};

function typecheck(): Tally {
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  const r = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.json'), '--noEmit'], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  const out = `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? `${r.error.message}\n` : ''}`;
  process.stdout.write(out);
  if (r.status === 0) return { passed: 1, failed: 0, skipped: 0 };
  failures.push(`[typecheck] tsc exited ${r.status ?? r.signal}\n    ${out.trim().split('\n').slice(0, 40).join('\n    ')}`);
  return { passed: 0, failed: 1, skipped: 0 };
}

interface MochaState extends Tally { failures: string[]; done: boolean; current?: string }

/** The child: run mocha, keeping the tally in `stateFile` after every test. */
async function mochaChild(stateFile: string): Promise<void> {
  const m = new Mocha({ reporter: 'spec', timeout: 120_000, grep: process.env.HVB_TEST_GREP });
  const files = process.env.HVB_TEST_FILES ? process.env.HVB_TEST_FILES.split(',') : globSync('test/**/*.test.ts', { cwd: root }).sort();
  for (const f of files) m.addFile(join(root, f));
  const state: MochaState = { passed: 0, failed: 0, skipped: 0, failures: [], done: false };
  const save = () => writeFileSync(stateFile, JSON.stringify(state));
  save();
  await m.loadFilesAsync();
  await new Promise<void>((resolve) => {
    const runner = m.run(() => {
      const s = runner.stats!;
      Object.assign(state, { passed: s.passes, failed: s.failures, skipped: s.pending, done: true });
      save();
      resolve();
    });
    runner.on('test', (test) => { state.current = test.fullTitle(); save(); });
    runner.on('pass', () => { state.passed++; save(); });
    runner.on('pending', () => { state.skipped++; save(); });
    runner.on('fail', (test, err: Error) => {
      const stack = (err.stack ?? String(err)).split('\n').slice(0, 12).join('\n    ');
      state.failed++;
      state.failures.push(`[mocha] ${test.fullTitle()}\n    ${stack}`);
      save();
    });
  });
}

function mocha(name = 'mocha', env: Record<string, string> = {}): Tally {
  const dir = mkdtempSync(join(tmpdir(), 'hvb-mocha-'));
  const stateFile = join(dir, 'state.json');
  try {
    const run = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--mocha-child', stateFile], { stdio: 'inherit', cwd: root, env: { ...process.env, ...env } });
    const s = existsSync(stateFile) ? (JSON.parse(readFileSync(stateFile, 'utf8')) as MochaState) : undefined;
    failures.push(...(s?.failures ?? []).map((f) => f.replace(/^\[mocha\]/, `[${name}]`)));
    if (s?.done && run.status === 0) return { passed: s.passed, failed: s.failed, skipped: s.skipped };
    const ran = s ? s.passed + s.failed : 0;
    failures.push(`[${name}] the run ended early (${run.signal ? `killed by ${run.signal}` : `exit ${run.status}`}) after ${ran} tests${s?.current ? `, in: ${s.current}` : ''}; its output is above`);
    return { passed: s?.passed ?? 0, failed: (s?.failed ?? 0) + 1, skipped: s?.skipped ?? 0 };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function pester(): Tally {
  const script = join(root, 'Pester', 'run.ps1');
  if (!existsSync(script)) return { passed: 0, failed: 0, skipped: 0 };
  const pwshPath = spawnSync(process.execPath, [join(root, 'scripts', 'find-pwsh.mjs')], { encoding: 'utf8' }).stdout.trim();
  if (!pwshPath) {
    process.stderr.write('pester: PowerShell not found (npm run setup installs it)\n');
    failures.push('[pester] PowerShell not found (npm run setup installs it)');
    return { passed: 0, failed: 1, skipped: 0 };
  }
  const dir = mkdtempSync(join(tmpdir(), 'hvb-pester-'));
  const resultFile = join(dir, 'result.json');
  try {
    const run = spawnSync(pwshPath, ['-NoLogo', '-NoProfile', '-NonInteractive', '-File', script, '-ResultFile', resultFile], { stdio: 'inherit', cwd: root });
    if (!existsSync(resultFile)) {
      failures.push(`[pester] Pester/run.ps1 wrote no result (exit ${run.status ?? run.signal}): see its output above`);
      return { passed: 0, failed: 1, skipped: 0 };
    }
    const r = JSON.parse(readFileSync(resultFile, 'utf8')) as { passed: number; failed: number; skipped: number; failures?: string[] };
    for (const f of r.failures ?? []) failures.push(`[pester] ${f}`);
    return { passed: r.passed, failed: r.failed, skipped: r.skipped ?? 0 };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const child = process.argv.indexOf('--mocha-child');
if (child >= 0) {
  await mochaChild(process.argv[child + 1]!);
  // Done and tallied: a handle a test left open must not keep this child (and npm test) waiting.
  process.exit(0);
}
if (suites.has('typecheck')) add('typecheck', typecheck());
if (suites.has('mocha')) add('mocha', mocha());
// The crash sweeps of a backup and a gc once more, with tables stored and used (a kill while a
// table is written, GC deleting tables and its closing refresh storing a new one), at every
// fourth change (and the last): the sweep of every change takes ~3 minutes here.
if (suites.has('spill')) add('mocha, index spilled', mocha('mocha, index spilled', { HVB_INDEX_MEMORY_RECORDS: '3', HVB_INDEX_TABLE_RECORDS: '5', HVB_TEST_FILES: [...SPILL_FILES, 'test/e2e/crash-sweep.test.ts'].join(','), HVB_SWEEP_PHASES: 'backup,gc', HVB_SWEEP_EVERY: '4' }));
if (suites.has('pester')) add('pester', pester());
if (failures.length) process.stdout.write(`\nFailures (${failures.length}), repeated from above:\n${failures.map((f, i) => `${i + 1}) ${f}`).join('\n')}\n\n`);
process.stdout.write(`${total.passed} passed, ${total.failed} failed${total.skipped ? `, ${total.skipped} skipped` : ''}\n`);
process.exitCode = total.failed > 0 || total.passed === 0 ? 1 : 0;
