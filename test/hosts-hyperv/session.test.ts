// User text never becomes script text: VM names travel as base64 JSON and are decoded inside
// PowerShell. Proven on the invocation line, through the driver, and in a real PowerShell.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { toVmDescription } from '../../core/hosts/hyperv/mapping.ts';
import type { RawVm } from '../../core/hosts/hyperv/mapping.ts';
import { ALL_SCRIPTS, ENVELOPE } from '../../core/hosts/hyperv/scripts.ts';
import * as S from '../../core/hosts/hyperv/scripts.ts';
import { PassThrough } from 'node:stream';
import { buildInvocation, encodeParams, NodePowerShellSession, parseAnswer, readBulkFromOutput, startPowerShell } from '../../core/hosts/hyperv/session.ts';
import { fx, hostWith, rejectsWith } from './testing.ts';

const root = join(import.meta.dirname, '..', '..');

const HOSTILE = [
  "web'; Remove-Item C:\\ -Recurse #",
  'db$(Remove-Item C:\\Windows -Recurse -Force)01',
  'back`ticks`n and `$env:PATH',
  'quotes "double" \'single\' ‘curly’ “curly”',
  'new\nline\r\nand\ttab; Stop-Computer',
  'ünïcødé 名前 web01',
];

const b64 = '[A-Za-z0-9+/]+={0,2}';
const INVOCATION = new RegExp(
  `^& \\(\\[ScriptBlock\\]::Create\\(\\[Text\\.Encoding\\]::UTF8\\.GetString\\(\\[Convert\\]::FromBase64String\\('${b64}'\\)\\)\\)\\) '${b64}' '${b64}'$`);

function decodeInvocation(line: string): { envelope: string; script: string; params: unknown } {
  const parts = [...line.matchAll(/'([A-Za-z0-9+/=]+)'/g)].map((m) => Buffer.from(m[1]!, 'base64').toString('utf8'));
  return { envelope: parts[0]!, script: parts[1]!, params: JSON.parse(parts[2]!) };
}

describe('HyperV PowerShell session: hostile VM names', () => {
  it('the invocation line holds only fixed text and base64, and decodes back to the exact name', () => {
    for (const name of HOSTILE) {
      const line = buildInvocation(S.DESCRIBE_VM, { ref: name });
      assert.match(line, INVOCATION, `invocation for ${JSON.stringify(name)}`);
      assert.ok(!line.includes('\n') && !line.includes('Remove-Item') && !line.includes('$(') && !line.includes('`'), line);
      const d = decodeInvocation(line);
      assert.equal(d.envelope, ENVELOPE);
      assert.equal(d.script, S.DESCRIBE_VM);
      assert.deepEqual(d.params, { ref: name });
      assert.equal(encodeParams({ ref: name }), line.split("'").at(-2));
    }
  });

  it('through the driver, every call is a fixed script and the names appear only in the parameters', async () => {
    for (const name of HOSTILE) {
      const raw = { ...fx<RawVm>('describe-vm-web01'), Name: name };
      const { host, session } = hostWith([
        [S.DESCRIBE_VM, raw],
        [S.HOST_INFO, fx('host-info-2022')],
        [S.LIST_CHECKPOINTS, [{ Id: '11111111-2222-4333-8444-555555555555', Name: name, SnapshotType: 0, CreationTime: '2026-11-10T18:22:40Z' }]],
      ]);
      const vm = await host.describeVM(name);
      assert.equal(vm.name, name);
      const err = await rejectsWith(host.createBackupCheckpoint(vm, { consistency: 'auto' }), 'ERR_UNSUPPORTED');
      assert.ok(err.message.startsWith(`VM ${name} has user checkpoints ("${name}")`), err.message);
      for (const call of session.invoke.getCalls()) {
        const [script, params] = call.args;
        assert.ok(ALL_SCRIPTS.includes(script), 'script is one of the constants');
        assert.ok(!script.includes(name));
        assert.match(buildInvocation(script, params), INVOCATION);
      }
      assert.deepEqual(session.invoke.getCall(0).args[1], { ref: name });
    }
  });

  it('no script constant interpolates anything at run time (every "$p." use reads the decoded parameters)', () => {
    for (const s of ALL_SCRIPTS.slice(1)) {
      assert.match(s, /^# hvbackup:[\w-]+\nparam\(\$p\)\n/, s.slice(0, 60));
      assert.ok(!/\$\{|Invoke-Expression|iex /i.test(s), `script ${s.slice(0, 40)} must not build code from strings`);
    }
    // A stray "\r" or "\v" in a TypeScript template literal would silently corrupt a WMI path.
    for (const s of ALL_SCRIPTS) assert.ok(![...s].some((c) => c < ' ' && c !== '\n'), `control character in ${S.scriptName(s)}`);
  });

  it('parseAnswer finds the answer line inside terminal noise and turns failures into ERR_HOST', async () => {
    const ok = 'HVB:' + Buffer.from(JSON.stringify({ ok: true, value: { a: 1 } })).toString('base64');
    assert.deepEqual(parseAnswer(`\x1b[?1h\x1b[?1l${ok}\r\n\x1b[?1h`, S.LIST_VMS), { a: 1 });
    const bad = 'HVB:' + Buffer.from(JSON.stringify({ ok: false, message: 'Hyper-V was unable to find a virtual machine with name "x".', category: 'InvalidArgument' })).toString('base64');
    await rejectsWith(Promise.resolve().then(() => parseAnswer(bad, S.LIST_VMS)), 'ERR_HOST', 'PowerShell step list-vms failed: Hyper-V was unable to find a virtual machine with name "x".');
    await rejectsWith(Promise.resolve().then(() => parseAnswer('The term \'Get-VM\' is not recognized', S.LIST_VMS)), 'ERR_HOST', 'list-vms gave no answer', "'Get-VM' is not recognized");
  });
});

describe('HyperV PowerShell session: the end of a call\'s output', () => {
  /** What readBulkFromOutput makes of `chunks` arriving one by one; "waits" if it does not finish. */
  async function read(chunks: string[]): Promise<string> {
    const s = new PassThrough();
    s.setEncoding('utf8');
    const out = readBulkFromOutput(s, 'DELIM');
    for (const c of chunks) {
      s.write(c);
      await new Promise((r) => setImmediate(r));
    }
    return Promise.race([out.then((b) => b.toString('utf8')), new Promise<string>((r) => setTimeout(() => r('waits'), 200))]);
  }

  it('ends at the second delimiter however the output is cut into chunks, earlier output before both included', async () => {
    // The last two hang child-shell 5's own check (node-powershell's shell) for good.
    assert.equal(await read(['DELIM\n', 'out\n', 'DELIM\n']), 'out');
    assert.equal(await read(['DELIM\nout\nDELIM\n']), 'out');
    assert.equal(await read(['DELIM\nout\nDE', 'LIM\n']), 'out', 'a delimiter split across chunks');
    assert.equal(await read(['some earlier output\n', 'DELIM\nout\nDELIM\n']), 'out');
    assert.equal(await read(['leftover line of the previous call\n', 'DELIM\nDELIM\n']), '');
    assert.equal(await read(['DELIM\nout\n']), 'waits', 'not before the second delimiter');
  });

  it('the session\'s shell reads its output this way, not with its own check', async () => {
    const pwsh = spawnSync(process.execPath, [join(root, 'scripts', 'find-pwsh.mjs')], { encoding: 'utf8' }).stdout.trim();
    const shell = await startPowerShell({ executable: pwsh });
    try {
      assert.equal(shell.readBulkFromOutput, readBulkFromOutput);
      const r = await shell.invoke('[Console]::Out.WriteLine("HVB:eA==")');
      assert.match(r.raw, /HVB:eA==/);
    } finally {
      await shell.dispose();
    }
  });
});

describe('HyperV PowerShell session: real PowerShell', function () {
  this.timeout(60_000);
  const pwsh = spawnSync(process.execPath, [join(root, 'scripts', 'find-pwsh.mjs')], { encoding: 'utf8' }).stdout.trim();
  let session: NodePowerShellSession;
  let dir: string;
  before(() => {
    assert.ok(pwsh, 'PowerShell not found: run npm run setup');
    session = new NodePowerShellSession({ executable: pwsh });
    dir = mkdtempSync(join(tmpdir(), 'hvb-hyperv-ps-'));
  });
  after(async () => {
    await session?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('round-trips hostile names exactly and runs none of them', async () => {
    const canary = join(dir, 'pwned');
    const names = [...HOSTILE, `x$(New-Item -ItemType File -Path '${canary}')`, `x'; New-Item -ItemType File -Path '${canary}' #`, `x\`"; New-Item -ItemType File -Path "${canary}"`];
    const echo = '# hvbackup:echo\nparam($p)\n@($p.names | ForEach-Object { [pscustomobject]@{ Name = $_; Length = $_.Length } })';
    const out = (await session.invoke(echo, { names })) as { Name: string; Length: number }[];
    assert.deepEqual(out.map((o) => o.Name), names);
    assert.deepEqual(out.map((o) => o.Length), names.map((n) => n.length), 'UTF-16 lengths agree');
    assert.equal(existsSync(canary), false, 'no name was executed');
  });

  it('a failing step becomes ERR_HOST with PowerShell\'s message, and the session stays usable', async () => {
    await rejectsWith(session.invoke("# hvbackup:boom\nparam($p)\nthrow ('no VM named ' + $p.name)", { name: 'web01' }), 'ERR_HOST', 'PowerShell step boom failed: no VM named web01');
    assert.equal(await session.invoke('# hvbackup:null\nparam($p)\n$null', {}), null);
  });

  const pidOf = async (s: NodePowerShellSession) => ((await s.invoke('# hvbackup:pid\nparam($p)\n[pscustomobject]@{ Pid = $PID }', {})) as { Pid: number }).Pid;
  /** Running (a killed child whose parent has not reaped it yet is a zombie here, not alive). */
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
    } catch {
      return false;
    }
    try {
      return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0] !== 'Z';
    } catch {
      return true; // no /proc: signal 0 said it is there
    }
  };
  const SLEEP = '# hvbackup:sleep\nparam($p)\nStart-Sleep -Seconds 60';

  it('a step past its time limit fails ERR_HOST naming it and the limit; its PowerShell is ended and the next step gets a new one', async () => {
    const before = await pidOf(session);
    const t0 = Date.now();
    const e = await rejectsWith(session.invoke(SLEEP, {}, { timeoutMs: 1500 }), 'ERR_HOST', 'PowerShell step sleep did not finish within 1.5 s', 'may be hung');
    assert.equal(e.target, 'sleep');
    assert.ok(Date.now() - t0 < 15_000, `gave up after ${Date.now() - t0} ms`);
    assert.equal(alive(before), false, 'the hung PowerShell process is gone');
    const after = await pidOf(session);
    assert.notEqual(after, before, 'a new PowerShell');
    assert.equal(await session.invoke('# hvbackup:one\nparam($p)\n1', {}, { timeoutMs: 30_000 }), 1, 'a step within its limit answers');
  });

  it('a signal stops a running step (ERR_CANCELLED), a step queued behind it fails ERR_HOST, and the session goes on', async () => {
    const before = await pidOf(session);
    const ac = new AbortController();
    const running = session.invoke(SLEEP, {}, { signal: ac.signal });
    const queued = session.invoke('# hvbackup:queued\nparam($p)\n2', {});
    queued.catch(() => {}); // it fails before it is awaited below
    setTimeout(() => ac.abort(), 500);
    await rejectsWith(running, 'ERR_CANCELLED', 'PowerShell step sleep cancelled');
    await rejectsWith(queued, 'ERR_HOST', 'PowerShell step queued');
    assert.equal(alive(before), false);
    assert.notEqual(await pidOf(session), before);
    await rejectsWith(session.invoke(SLEEP, {}, { signal: AbortSignal.abort() }), 'ERR_CANCELLED');
  });

  it('an idle session does not keep Node running (a CLI run exits without dispose)', () => {
    const script = join(dir, 'no-dispose.ts');
    writeFileSync(script, `import { NodePowerShellSession } from ${JSON.stringify(join(root, 'core', 'hosts', 'hyperv', 'session.ts'))};
const s = new NodePowerShellSession({ executable: ${JSON.stringify(pwsh)} });
console.log(await s.invoke('# hvbackup:pid\\nparam($p)\\n[pscustomobject]@{ Pid = $PID }', {}).then((r) => (r as { Pid: number }).Pid));\n`);
    const r = spawnSync(process.execPath, [script], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^\d+\n$/);
  });

  it('dispose waits for PowerShell to exit after an idle period', () => {
    const script = join(dir, 'dispose.ts');
    writeFileSync(script, `import { NodePowerShellSession } from ${JSON.stringify(join(root, 'core', 'hosts', 'hyperv', 'session.ts'))};
const s = new NodePowerShellSession({ executable: ${JSON.stringify(pwsh)} });
await s.invoke('# hvbackup:one\\nparam($p)\\n1', {});
await new Promise((r) => setTimeout(r, 50));
await s.dispose();
console.log('disposed');\n`);
    const r = spawnSync(process.execPath, [script], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, 'disposed\n');
  });

  it('every driver script parses without syntax errors', async () => {
    const check = `# hvbackup:parse
param($p)
@($p.scripts | ForEach-Object {
  $tokens = $null; $errors = $null
  [void][System.Management.Automation.Language.Parser]::ParseInput($_, [ref]$tokens, [ref]$errors)
  @($errors | ForEach-Object { $_.Message }) -join '; '
})`;
    const out = (await session.invoke(check, { scripts: ALL_SCRIPTS })) as string[];
    assert.equal(out.length, ALL_SCRIPTS.length);
    out.forEach((e, i) => assert.equal(e, '', `${S.scriptName(ALL_SCRIPTS[i]!)}: ${e}`));
  });

  it('DESCRIBE_VM matches the name exactly (no wildcards) against a Get-VM stand-in', async () => {
    // Stand-ins for the Hyper-V cmdlets, defined in the session: DESCRIBE_VM must pick the
    // VM whose name equals the parameter, even when the name holds wildcard characters.
    await session.invoke(`# hvbackup:define-fakes
param($p)
$global:fakeDir = [string]$p.dir
function global:Get-VM { @(
  [pscustomobject]@{ VMId = [guid]'6b1c3f0e-8e4b-4f5b-9c1a-2d7e5a9b0c11'; Name = 'web[01]*'; State = 'Running'; Generation = 2; Version = '10.0'; CheckpointType = 'Production'; IsClustered = $false; ConfigurationLocation = $global:fakeDir; Path = $global:fakeDir },
  [pscustomobject]@{ VMId = [guid]'0f9e8d7c-6b5a-4938-8271-605f4e3d2c1b'; Name = 'web01'; State = 'Off'; Generation = 1; Version = '9.0'; CheckpointType = 'Standard'; IsClustered = $false; ConfigurationLocation = $global:fakeDir; Path = $global:fakeDir }) }
function global:Get-VMHardDiskDrive { param($VM) @([pscustomobject]@{ ControllerType = 'SCSI'; ControllerNumber = 0; ControllerLocation = 0; Path = (Join-Path $VM.Path 'disk.vhdx'); DiskNumber = $null }) }
$null`, { dir });
    const raw = (await session.invoke(S.DESCRIBE_VM, { ref: 'web[01]*' })) as RawVm;
    const vm = toVmDescription(raw);
    assert.equal(vm.id, '6b1c3f0e-8e4b-4f5b-9c1a-2d7e5a9b0c11');
    assert.equal(vm.name, 'web[01]*');
    assert.deepEqual(vm.disks, [{ key: 'SCSI:0:0', path: join(dir, 'disk.vhdx'), format: 'vhdx' }]);
    assert.equal((toVmDescription((await session.invoke(S.DESCRIBE_VM, { ref: '0F9E8D7C-6B5A-4938-8271-605F4E3D2C1B' })) as RawVm)).name, 'web01', 'by id, any case');
    assert.equal(await session.invoke(S.DESCRIBE_VM, { ref: 'web*' }), null);
  });

  describe('IMPORT_VM against Compare-VM/Import-VM stand-ins', () => {
    // Stand-ins record what the script asks Hyper-V and play the copy Import-VM -Copy makes.
    const fakes = `# hvbackup:define-import-fakes
param($p)
$global:incompatible = [bool]$p.incompatible
$global:extraDrive = [bool]$p.extraDrive
$global:calls = @()
function global:Compare-VM { param($Path, [switch]$Copy, [bool]$GenerateNewId, $VirtualMachinePath, $SnapshotFilePath, $SmartPagingFilePath, $VhdDestinationPath, $CompatibilityReport)
  if ($CompatibilityReport) {
    $inc = @(); if ($global:incompatible) { $inc = @([pscustomobject]@{ MessageId = 33012; Message = "Could not find Ethernet switch 'External-LAN'." }) }
    $CompatibilityReport.Incompatibilities = $inc; return $CompatibilityReport }
  $global:calls += "compare copy=$Copy newid=$GenerateNewId vhd=$VhdDestinationPath"
  $drives = @([pscustomobject]@{ ControllerType = 'SCSI'; ControllerNumber = 0; ControllerLocation = 0; Path = 'C:\\orig\\web01.vhdx'; DiskNumber = $null })
  if ($global:extraDrive) { $drives += [pscustomobject]@{ ControllerType = 'SCSI'; ControllerNumber = 0; ControllerLocation = 1; Path = 'C:\\orig\\logs.vhdx'; DiskNumber = $null } }
  [pscustomobject]@{ VM = [pscustomobject]@{ Name = 'web01'; Drives = $drives }; Incompatibilities = @(); Dest = $VhdDestinationPath } }
function global:Get-VMHardDiskDrive { param($VM) $VM.Drives }
function global:Set-VMHardDiskDrive { param($VMHardDiskDrive, $Path) $VMHardDiskDrive.Path = $Path; $global:calls += "set $Path exists=$(Test-Path -LiteralPath $Path)" }
function global:Import-VM { param($CompatibilityReport)
  foreach ($d in $CompatibilityReport.VM.Drives) {
    $dest = Join-Path $CompatibilityReport.Dest (Split-Path -Leaf $d.Path)
    if (Test-Path -LiteralPath $dest) { throw "The file exists: $dest" }
    New-Item -ItemType Directory -Force -Path $CompatibilityReport.Dest | Out-Null
    Copy-Item -LiteralPath $d.Path -Destination $dest }
  [pscustomobject]@{ VMId = [guid]'e4d3c2b1-a098-4765-8432-10fedcba9876'; Name = 'web01'; State = 3; ConfigurationLocation = 'x' } }
function global:Rename-VM { param($VM, $NewName) $global:calls += "rename $NewName" }
function global:Get-VM { param($Id) [pscustomobject]@{ VMId = $Id; Name = 'web01-copy'; State = 3; ConfigurationLocation = 'x' } }
$null`;
    const calls = '# hvbackup:calls\nparam($p)\n@($global:calls)';

    function restoredFolder(): { to: string; disk: string; params: Record<string, unknown> } {
      const to = mkdtempSync(join(dir, 'restore-'));
      mkdirSync(join(to, 'Virtual Hard Disks'));
      const disk = join(to, 'Virtual Hard Disks', 'web01.vhdx');
      writeFileSync(disk, 'restored bytes');
      const params = { configPath: join(to, 'staging', 'x.vmcx'), newId: true, name: 'web01-copy', directory: to,
        vhdDestinationPath: join(to, 'Virtual Hard Disks'), stagingPath: join(to, '.hvbackup-import-job-1'), disks: [{ key: 'SCSI:0:0', path: disk }] };
      return { to, disk, params };
    }

    it('stages a disk already at the destination, imports a copy with a new id, renames, and cleans up', async () => {
      await session.invoke(fakes, { incompatible: false });
      const { to, disk, params } = restoredFolder();
      const r = (await session.invoke(S.IMPORT_VM, params)) as { Imported: boolean; Name: string; VMId: string };
      assert.deepEqual([r.Imported, r.Name, r.VMId], [true, 'web01-copy', 'e4d3c2b1-a098-4765-8432-10fedcba9876']);
      assert.deepEqual(await session.invoke(calls, {}), [
        `compare copy=True newid=True vhd=${join(to, 'Virtual Hard Disks')}`,
        `set ${join(to, '.hvbackup-import-job-1', 'web01.vhdx')} exists=True`,
        'rename web01-copy',
      ]);
      assert.equal(readFileSync(disk, 'utf8'), 'restored bytes');
      assert.deepEqual(readdirSync(to).sort(), ['Virtual Hard Disks']);
    });

    it('refuses when a drive of the configuration has no restored file (it would copy the live original)', async () => {
      await session.invoke(fakes, { incompatible: false, extraDrive: true });
      const { to, disk, params } = restoredFolder();
      const r = (await session.invoke(S.IMPORT_VM, params)) as { Imported: boolean; Incompatibilities: { Message: string }[] };
      assert.equal(r.Imported, false);
      assert.deepEqual(r.Incompatibilities.map((i) => i.Message), ['drive SCSI:0:1 (C:\\orig\\logs.vhdx) was not restored']);
      assert.equal(readFileSync(disk, 'utf8'), 'restored bytes');
      assert.deepEqual(readdirSync(to).sort(), ['Virtual Hard Disks']);
    });

    it('moves the disk back when Hyper-V reports incompatibilities, losing nothing', async () => {
      await session.invoke(fakes, { incompatible: true });
      const { to, disk, params } = restoredFolder();
      const r = (await session.invoke(S.IMPORT_VM, params)) as { Imported: boolean; Incompatibilities: { MessageId: number }[] };
      assert.equal(r.Imported, false);
      assert.equal(r.Incompatibilities[0]!.MessageId, 33012);
      assert.equal(readFileSync(disk, 'utf8'), 'restored bytes');
      assert.deepEqual(readdirSync(to).sort(), ['Virtual Hard Disks']);
      assert.deepEqual(readdirSync(join(to, 'Virtual Hard Disks')), ['web01.vhdx']);
    });
  });
});
