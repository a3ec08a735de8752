// hvbackup demo (npm start): a sample VM in a scratch folder; full backup; the guest
// writes; an incremental backup while the guest keeps writing; restore the latest point;
// verify the repository; check the restored disk equals the disk at that checkpoint.
// Exits non-zero if any step fails.

import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { backupVMs } from '../../api/backup.ts';
import { initRepository } from '../../api/repository.ts';
import { restoreVM } from '../../api/restore.ts';
import { verifyRepository } from '../../api/verify.ts';
import { applyWrites, compareDisks, createSampleVM, guestWriteVM, missingWrites, startGuestWriter } from '../../api/vm.ts';
import type { BackupResult } from '../../api/types.ts';
import { HvError } from '../../errors.ts';
import { cliContext, mib } from './backup.ts';

const MARKER = '.hvbackup-demo';

function scratch(dir: string): string {
  const d = resolve(dir);
  if (existsSync(d) && readdirSync(d).length > 0) {
    if (!existsSync(join(d, MARKER))) throw new HvError('ERR_ALREADY_EXISTS', `${d} is not empty and is not an earlier demo folder; choose another --dir`, { target: d });
    rmSync(d, { recursive: true, force: true });
  }
  mkdirSync(d, { recursive: true });
  writeFileSync(join(d, MARKER), 'scratch folder of "hvbackup demo"; deleted by the next demo run\n');
  return d;
}

function check(ok: boolean, what: string): void {
  if (!ok) throw new HvError('ERR_INTERNAL', `demo: ${what}`);
}

function qemuCompare(a: string, b: string): string {
  const r = spawnSync('qemu-img', ['compare', a, b], { encoding: 'utf8' });
  if (r.error) return 'qemu-img not available (skipped)';
  check(r.status === 0, `qemu-img compare ${a} ${b}: ${r.stdout}${r.stderr}`);
  return r.stdout.trim();
}

function line(r: BackupResult, secs: number): string {
  return `${r.method} backup in ${secs.toFixed(1)} s: read ${mib(r.readBytes)} of ${mib(r.totalBytes)}, stored ${mib(r.storedBytes)} (${r.consistency})`;
}

async function runDemo(cmd: Command, opts: { dir: string; size: number }): Promise<void> {
  const base = cliContext(cmd);
  const ctx = { ...base, onLog: (e: { level: string; message: string }) => { if (e.level === 'warning') process.stderr.write(`warning: ${e.message}\n`); } };
  const say = (s: string) => { base.endProgress(); process.stdout.write(`${s}\n`); };
  const dir = scratch(opts.dir);
  const vmDir = join(dir, 'vms', 'demo-vm');
  const repo = join(dir, 'repo');
  const sample = await createSampleVM(ctx, { dir: vmDir, sizeBytes: Math.round(opts.size * 1024) * 1048576, name: 'demo-vm' });
  say(`1. sample VM demo-vm: ${mib(sample.sizeBytes)} dynamic VHDX in ${vmDir}`);
  await initRepository(ctx, { path: repo });
  let t = Date.now();
  const [full] = await backupVMs(ctx, { repository: repo, sources: [vmDir] });
  check(full?.status === 'success' && full.method === 'full', `full backup failed: ${full?.error?.message}`);
  say(`2. ${line(full!, (Date.now() - t) / 1000)}`);
  await guestWriteVM(ctx, { dir: vmDir, count: 32, size: 65536, seed: 7 });
  // The disk as the next checkpoint will freeze it, plus whatever the guest writes before the freeze.
  const expected = join(dir, 'expected.vhdx');
  copyFileSync(sample.disk, expected);
  const guest = await startGuestWriter(ctx, { dir: vmDir, seed: 11, pauseMs: 2 });
  t = Date.now();
  const [incr] = await backupVMs(ctx, { repository: repo, sources: [vmDir] });
  const during = await guest.stop();
  check(incr?.status === 'success', `incremental backup failed: ${incr?.error?.message}`);
  check(incr!.method === 'changed-blocks', `incremental used ${incr!.method}: ${incr!.methodReason}`);
  // Writes before the freeze landed in the parent ahead of the first one into the .avhdx;
  // parent writes after the .avhdx ones came after the merge.
  const firstChild = during.findIndex((w) => w.landed.file.endsWith('.avhdx'));
  check(firstChild >= 0, 'the guest made no write while the checkpoint existed');
  const before = during.slice(0, firstChild);
  await applyWrites(expected, before.map((w) => w.write));
  say(`3. guest wrote 32 x 64 KiB; ${line(incr!, (Date.now() - t) / 1000)}; the guest kept writing (${during.length - before.length} writes went to the checkpoint's .avhdx and were merged back)`);
  const to = join(dir, 'restored');
  t = Date.now();
  const restored = await restoreVM(ctx, { repository: repo, point: 'latest', vmName: 'demo-vm', to });
  say(`4. restored ${restored.pointId.slice(0, 12)} to ${to} in ${((Date.now() - t) / 1000).toFixed(1)} s`);
  const report = await verifyRepository(ctx, { repository: repo });
  check(report.ok, `verify found problems: ${report.problems.map((p) => p.problem).join('; ')}`);
  say(`5. verify: ${report.pointsChecked} points, ${report.chunksChecked} chunks re-hashed, no problems`);
  const diff = await compareDisks(restored.disks[0]!.path, expected);
  check(diff < 0, `restored disk differs from the disk at the checkpoint at byte ${diff}`);
  const lost = await missingWrites(vmDir, during.map((w) => w.write));
  check(lost === 0, `${lost} guest write(s) made during the backup are missing from the VM disk after the merge`);
  say(`6. restored disk equals the disk at the checkpoint (ours: identical; qemu-img: ${qemuCompare(restored.disks[0]!.path, expected)})`);
  say(`demo OK — files in ${dir}`);
}

export function register(program: Command): void {
  program.command('demo')
    .description('end-to-end demo on a sample VM: full + incremental backup with a writing guest, restore, verify')
    .option('--dir <dir>', 'scratch folder (deleted and recreated on each demo run)', join(process.env.TMPDIR ?? '.tmp', 'hvbackup-demo'))
    .option('--size <GiB>', 'sample disk size in GiB', (v) => Number(v), 0.5)
    .action(async (opts: { dir: string; size: number }, cmd: Command) => runDemo(cmd, opts));
}
