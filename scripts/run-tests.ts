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
const add = (name: string, t: Tally) => {
  total.passed += t.passed; total.failed += t.failed; total.skipped += t.skipped;
  process.stdout.write(`[${name}] ${t.passed} passed, ${t.failed} failed${t.skipped ? `, ${t.skipped} skipped` : ''}\n`);
};

function typecheck(): Tally {
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  const r = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.json'), '--noEmit'], { stdio: 'inherit' });
  return r.status === 0 ? { passed: 1, failed: 0, skipped: 0 } : { passed: 0, failed: 1, skipped: 0 };
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
  });
}

function pester(): Tally {
  const script = join(root, 'Pester', 'run.ps1');
  if (!existsSync(script)) return { passed: 0, failed: 0, skipped: 0 };
  const pwshPath = spawnSync(process.execPath, [join(root, 'scripts', 'find-pwsh.mjs')], { encoding: 'utf8' }).stdout.trim();
  if (!pwshPath) {
    process.stderr.write('pester: PowerShell not found (npm run setup installs it)\n');
    return { passed: 0, failed: 1, skipped: 0 };
  }
  const dir = mkdtempSync(join(tmpdir(), 'hvb-pester-'));
  const resultFile = join(dir, 'result.json');
  try {
    spawnSync(pwshPath, ['-NoLogo', '-NoProfile', '-NonInteractive', '-File', script, '-ResultFile', resultFile], { stdio: 'inherit', cwd: root });
    if (!existsSync(resultFile)) return { passed: 0, failed: 1, skipped: 0 };
    const r = JSON.parse(readFileSync(resultFile, 'utf8')) as { passed: number; failed: number; skipped: number };
    return { passed: r.passed, failed: r.failed, skipped: r.skipped ?? 0 };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (suites.has('typecheck')) add('typecheck', typecheck());
if (suites.has('mocha')) add('mocha', await mocha());
if (suites.has('pester')) add('pester', pester());
process.stdout.write(`${total.passed} passed, ${total.failed} failed${total.skipped ? `, ${total.skipped} skipped` : ''}\n`);
process.exitCode = total.failed > 0 || total.passed === 0 ? 1 : 0;
