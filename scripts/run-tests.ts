// The project's one test command (npm test, .ci/run): type-check, mocha (engine), then
// Pester (PowerShell module), and a last line totalling every suite: "N passed, N failed".
// HVB_TEST_GREP=<regex> runs only matching mocha tests; HVB_TEST_SUITES=mocha,pester picks suites.
import { spawnSync } from 'node:child_process';
import { existsSync, globSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Mocha from 'mocha';
import module from 'node:module';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
// Every engine process the tests start (CLI, bridge) reuses compiled, type-stripped code.
process.env.NODE_COMPILE_CACHE ??= join(tmpdir(), 'node-compile-cache');
module.enableCompileCache?.(process.env.NODE_COMPILE_CACHE);
const suites = new Set((process.env.HVB_TEST_SUITES ?? 'typecheck,mocha,pester').split(','));

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

async function mocha(): Promise<Tally> {
  const m = new Mocha({ reporter: 'spec', timeout: 120_000, grep: process.env.HVB_TEST_GREP });
  const files = globSync('test/**/*.test.ts', { cwd: root }).sort();
  for (const f of files) m.addFile(join(root, f));
  await m.loadFilesAsync();
  return new Promise((resolve) => {
    const runner = m.run(() => {
      const s = runner.stats!;
      resolve({ passed: s.passes, failed: s.failures, skipped: s.pending });
    });
    runner.on('fail', (test, err: Error) => {
      const stack = (err.stack ?? String(err)).split('\n').slice(0, 12).join('\n    ');
      failures.push(`[mocha] ${test.fullTitle()}\n    ${stack}`);
    });
  });
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

if (suites.has('typecheck')) add('typecheck', typecheck());
if (suites.has('mocha')) add('mocha', await mocha());
if (suites.has('pester')) add('pester', pester());
if (failures.length) process.stdout.write(`\nFailures (${failures.length}), repeated from above:\n${failures.map((f, i) => `${i + 1}) ${f}`).join('\n')}\n\n`);
process.stdout.write(`${total.passed} passed, ${total.failed} failed${total.skipped ? `, ${total.skipped} skipped` : ''}\n`);
process.exitCode = total.failed > 0 || total.passed === 0 ? 1 : 0;
