// Where the project's PowerShell is: shared by find-pwsh.mjs and setup-powershell.mjs.
// Plain ESM JavaScript: it may run on an old system Node.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..');
export const PWSH_VERSION = '7.6.9';
export const PESTER_VERSION = '5.7.1';
const isWindows = process.platform === 'win32';

/** The pwsh installed by setup-powershell.mjs as a .NET tool. */
export function localPwshPath() {
  return join(root, 'tools', 'pwsh', isWindows ? 'pwsh.exe' : 'pwsh');
}

/** Full path of an executable on PATH, or undefined. */
export function onPath(name) {
  const exts = isWindows ? ['.exe', '.cmd', ''] : [''];
  for (const dir of (process.env.PATH || '').split(delimiter)) {
    if (!dir) continue;
    for (const ext of exts) {
      const candidate = join(dir, name + ext);
      if (existsSync(candidate)) return candidate;
    }
  }
  return undefined;
}

/** A system PowerShell: pwsh anywhere on PATH, or Windows PowerShell 5.1 on Windows. */
export function systemPwsh() {
  const pwsh = onPath('pwsh');
  if (pwsh && !pwsh.startsWith(join(root, 'tools'))) return pwsh;
  if (isWindows) return onPath('powershell');
  return undefined;
}

/** The PowerShell to use: a system one first, then the project's own copy. */
export function findPwsh() {
  if (process.env.HVBACKUP_PWSH && existsSync(process.env.HVBACKUP_PWSH)) return process.env.HVBACKUP_PWSH;
  const sys = systemPwsh();
  if (sys) return sys;
  const local = localPwshPath();
  return existsSync(local) ? local : undefined;
}

/** Run a short PowerShell command; returns { status, stdout }. */
export function runPwsh(pwsh, command) {
  const r = spawnSync(pwsh, ['-NoLogo', '-NoProfile', '-NonInteractive', '-Command', command], { encoding: 'utf8' });
  return { status: r.status, stdout: (r.stdout || '').trim(), stderr: (r.stderr || '').trim() };
}
