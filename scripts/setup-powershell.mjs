#!/usr/bin/env node
// Install PowerShell 7 and Pester 5 for the module's tests, unless the machine has them.
// - pwsh: a system pwsh (or Windows PowerShell 5.1) wins; else PowerShell 7.6.9 as a .NET
//   tool in tools/pwsh (the version is named: a later 7.7 may want a newer .NET).
// - Pester: a system Pester >= 5 wins; else Pester 5.7.1 restored from NuGet into
//   tools/nuget (module at tools/nuget/pester/5.7.1/tools/Pester.psd1).
// Idempotent and offline once done: existence checks and stamp files, no network then.
// Plain ESM JavaScript: it runs on whatever node npm found first. Flags: --quiet.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PESTER_VERSION, PWSH_VERSION, localPwshPath, onPath, root, runPwsh, systemPwsh } from './pwsh-locate.mjs';

const quiet = process.argv.includes('--quiet');
const say = (m) => { if (!quiet) process.stderr.write(`setup-powershell: ${m}\n`); };
const tools = join(root, 'tools');
const pesterPsd1 = join(tools, 'nuget', 'pester', PESTER_VERSION, 'tools', 'Pester.psd1');

function fail(message) {
  process.stderr.write(`setup-powershell: ${message}\n`);
  process.exit(1);
}

function run(cmd, args, what) {
  const r = spawnSync(cmd, args, { stdio: quiet ? ['ignore', 'ignore', 'inherit'] : ['ignore', 'inherit', 'inherit'], cwd: root });
  if (r.error) fail(`${what}: ${r.error.message}`);
  if (r.status !== 0) fail(`${what} failed (exit ${r.status})`);
}

/** The local pwsh's version, read from a stamp so that a present install costs no process start. */
function localPwshReady() {
  const pwsh = localPwshPath();
  const stamp = join(tools, 'pwsh', '.hvbackup-version');
  if (!existsSync(pwsh)) return false;
  if (existsSync(stamp) && readFileSync(stamp, 'utf8').trim() === PWSH_VERSION) return true;
  const v = runPwsh(pwsh, '$PSVersionTable.PSVersion.ToString()');
  if (v.status === 0 && v.stdout === PWSH_VERSION) {
    writeFileSync(stamp, PWSH_VERSION);
    return true;
  }
  return false;
}

function ensurePwsh() {
  const sys = systemPwsh();
  if (sys) { say(`using system PowerShell ${sys}`); return sys; }
  if (localPwshReady()) return localPwshPath();
  if (!onPath('dotnet')) fail('no pwsh on PATH and no dotnet to install PowerShell with: install PowerShell 7 (https://aka.ms/powershell) or the .NET SDK');
  say(`installing PowerShell ${PWSH_VERSION} as a .NET tool into tools/pwsh`);
  mkdirSync(join(tools, 'pwsh'), { recursive: true });
  if (existsSync(localPwshPath())) run('dotnet', ['tool', 'uninstall', 'PowerShell', '--tool-path', join(tools, 'pwsh')], 'dotnet tool uninstall PowerShell');
  run('dotnet', ['tool', 'install', 'PowerShell', '--version', PWSH_VERSION, '--tool-path', join(tools, 'pwsh')], 'dotnet tool install PowerShell');
  if (!localPwshReady()) fail(`tools/pwsh/pwsh does not report version ${PWSH_VERSION} after install`);
  return localPwshPath();
}

function ensurePester(pwsh) {
  if (existsSync(pesterPsd1)) return;
  // A system Pester found once is remembered (per pwsh), so later runs start no PowerShell.
  const stamp = join(tools, '.hvbackup-system-pester');
  if (existsSync(stamp) && readFileSync(stamp, 'utf8') === pwsh) return;
  const sys = runPwsh(pwsh, "if (Get-Module -ListAvailable Pester | Where-Object { $_.Version -ge [version]'5.0' }) { 'yes' } else { 'no' }");
  if (sys.status === 0 && sys.stdout === 'yes') {
    say('using the system Pester 5');
    mkdirSync(tools, { recursive: true });
    writeFileSync(stamp, pwsh);
    return;
  }
  if (!onPath('dotnet')) fail('Pester 5 is not installed: run "Install-Module Pester -MinimumVersion 5.0 -Scope CurrentUser" in PowerShell');
  say(`restoring Pester ${PESTER_VERSION} from NuGet into tools/nuget`);
  const dir = join(tools, 'pester-restore');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'pester-restore.csproj'), [
    '<Project Sdk="Microsoft.NET.Sdk">',
    '  <PropertyGroup><TargetFramework>netstandard2.0</TargetFramework></PropertyGroup>',
    `  <ItemGroup><PackageDownload Include="Pester" Version="[${PESTER_VERSION}]" /></ItemGroup>`,
    '</Project>', ''].join('\n'));
  run('dotnet', ['restore', join(dir, 'pester-restore.csproj'), '--packages', join(tools, 'nuget')], 'dotnet restore Pester');
  if (!existsSync(pesterPsd1)) fail(`Pester restore finished but ${pesterPsd1} is missing`);
}

ensurePester(ensurePwsh());
