// Backup throughput, encrypted vs unencrypted, through the real engine (backupVMs of a bare
// raw disk: read, hash, compress, seal, write). Fresh repositories each round, alternating
// kinds so background load hits both alike. Data: per MiB half random, half constant.
// Run: node_modules/.bin/node bench/crypto/backup.ts [--size-mib 512] [--rounds 3] [--json]

import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { backupVMs } from '../../core/api/backup.ts';
import { initRepository } from '../../core/api/repository.ts';
import { restoreVM } from '../../core/api/restore.ts';
import { openRepository } from '../../core/repo/local.ts';

const MiB = 1024 * 1024;
const arg = (name: string, dflt: number) => (process.argv.includes(name) ? Number(process.argv[process.argv.indexOf(name) + 1]) : dflt);
const sizeMiB = arg('--size-mib', 512);
const rounds = arg('--rounds', 3);
const json = process.argv.includes('--json');

const dir = mkdtempSync(join(tmpdir(), 'hvb-bench-crypto-'));
try {
  const img = join(dir, 'bench.img');
  const disk = Buffer.alloc(sizeMiB * MiB);
  for (let off = 0; off < disk.length; off += MiB) {
    randomBytes(MiB / 2).copy(disk, off);
    disk.fill(off / MiB & 0xff, off + MiB / 2, off + MiB);
  }
  writeFileSync(img, disk);
  const runs: { kind: string; backupMBs: number; restoreMBs: number; cpuMsPerGB: number }[] = [];
  for (let r = 0; r < rounds; r++) {
    for (const kind of r % 2 === 0 ? ['plain', 'encrypted'] : ['encrypted', 'plain']) {
      const repo = join(dir, `${kind}-${r}`);
      const password = kind === 'encrypted' ? 'bench password' : undefined;
      await initRepository({}, { path: repo, encrypt: password !== undefined, password });
      let t0 = performance.now();
      const cpu0 = process.cpuUsage(); // every thread of the process: main and chunk workers
      const [res] = await backupVMs({}, { repository: repo, password, sources: [img] });
      if (res?.status !== 'success') throw new Error(`backup failed: ${JSON.stringify(res?.error)}`);
      const backupMBs = disk.length / 1e6 / ((performance.now() - t0) / 1000);
      const cpu = process.cpuUsage(cpu0);
      const cpuMsPerGB = Math.round((cpu.user + cpu.system) / 1000 / (disk.length / 1e9));
      t0 = performance.now();
      await restoreVM({}, { repository: repo, password, point: 'latest', to: join(dir, `out-${kind}-${r}`) });
      const restoreMBs = disk.length / 1e6 / ((performance.now() - t0) / 1000);
      runs.push({ kind, backupMBs: Math.round(backupMBs), restoreMBs: Math.round(restoreMBs), cpuMsPerGB });
      rmSync(repo, { recursive: true, force: true });
      rmSync(join(dir, `out-${kind}-${r}`), { recursive: true, force: true });
    }
  }
  // The one-off cost of unlocking (scrypt, default N=2^17) is paid at every open, whatever the size.
  const unlockRepo = join(dir, 'unlock-probe');
  await initRepository({}, { path: unlockRepo, encrypt: true, password: 'probe' });
  const u0 = process.cpuUsage();
  const t0 = performance.now();
  await (await openRepository(unlockRepo, { password: 'probe', threads: 0 })).close();
  const unlockWallMs = Math.round(performance.now() - t0);
  const uc = process.cpuUsage(u0);
  const unlockCpuMs = Math.round((uc.user + uc.system) / 1000);
  const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const med = (kind: string, k: 'backupMBs' | 'restoreMBs' | 'cpuMsPerGB') => median(runs.filter((x) => x.kind === kind).map((x) => x[k]));
  const summary = {
    sizeMiB, rounds, runs, unlockWallMs, unlockCpuMs,
    backupPlainMBs: med('plain', 'backupMBs'), backupEncryptedMBs: med('encrypted', 'backupMBs'),
    restorePlainMBs: med('plain', 'restoreMBs'), restoreEncryptedMBs: med('encrypted', 'restoreMBs'),
    backupCpuMsPerGBPlain: med('plain', 'cpuMsPerGB'), backupCpuMsPerGBEncrypted: med('encrypted', 'cpuMsPerGB'),
  };
  // On a CPU-bound machine, throughput follows CPU cost: plain CPU / encrypted CPU.
  const cpuRatio = summary.backupCpuMsPerGBPlain / summary.backupCpuMsPerGBEncrypted;
  const perGB = disk.length / 1e9;
  const steadyCpuRatio = summary.backupCpuMsPerGBPlain / (summary.backupCpuMsPerGBEncrypted - unlockCpuMs / perGB);
  const ratio = summary.backupEncryptedMBs / summary.backupPlainMBs;
  const rratio = summary.restoreEncryptedMBs / summary.restorePlainMBs;
  if (json) process.stdout.write(`${JSON.stringify({ ...summary, backupRatio: Number(ratio.toFixed(3)), restoreRatio: Number(rratio.toFixed(3)), backupCpuRatio: Number(cpuRatio.toFixed(3)), backupCpuRatioWithoutUnlock: Number(steadyCpuRatio.toFixed(3)) })}\n`);
  else {
    for (const x of runs) process.stdout.write(`${x.kind.padEnd(10)} backup ${String(x.backupMBs).padStart(5)} MB/s (${x.cpuMsPerGB} CPU-ms/GB)   restore ${String(x.restoreMBs).padStart(5)} MB/s\n`);
    process.stdout.write(`median backup: plain ${summary.backupPlainMBs} MB/s, encrypted ${summary.backupEncryptedMBs} MB/s = ${(ratio * 100).toFixed(1)} %\n`);
    process.stdout.write(`backup CPU per GB: plain ${summary.backupCpuMsPerGBPlain} ms, encrypted ${summary.backupCpuMsPerGBEncrypted} ms: CPU-bound throughput ratio ${(cpuRatio * 100).toFixed(1)} %\n`);
    process.stdout.write(`unlock (scrypt) per open: ${unlockWallMs} ms wall, ${unlockCpuMs} CPU-ms; without it the CPU-bound ratio is ${(steadyCpuRatio * 100).toFixed(1)} %\n`);
    process.stdout.write(`median restore: plain ${summary.restorePlainMBs} MB/s, encrypted ${summary.restoreEncryptedMBs} MB/s = ${(rratio * 100).toFixed(1)} %\n`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
