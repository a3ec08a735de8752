// bench helper: summary table with ratios and goals from a run_peers.sh results folder.
// Usage: node bench/backup/report.ts <results/RUN_ID>
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { meets } from './goals.ts';

const dir = process.argv[2]!;
interface Row { tool: string; op: string; secs: number; mbps: number; rss: number; repo: number; rc: string }
const rows: Row[] = readFileSync(join(dir, 'results.csv'), 'utf8').trim().split('\n').slice(1).map((l) => {
  const c = l.split(',');
  return { tool: c[0]!, op: c[1]!, secs: Number(c[2]), mbps: Number(c[3]), rss: Number(c[4]), repo: Number(c[6]), rc: c[7]! };
});
const get = (tool: string, op: string) => rows.find((r) => r.tool === tool && r.op === op);
const result = (op: string, tool = 'hvbackup'): { storedBytes: number; readBytes: number; method: string; methodReason?: string; durationMs?: number } | undefined => {
  const f = join(dir, 'logs', `${tool}-${op}.out`);
  if (!existsSync(f)) return undefined;
  const line = readFileSync(f, 'utf8').trim().split('\n').reverse().find((l) => l.includes('"event":"result"'));
  return line ? JSON.parse(line).results[0] : undefined;
};
const limits = existsSync(join(dir, 'limits.json')) ? JSON.parse(readFileSync(join(dir, 'limits.json'), 'utf8')) : {};
const MB = (b: number) => (b / 1e6).toFixed(1);
const ratio = (a?: number, b?: number) => (a && b ? `${(a / b).toFixed(2)}x` : 'n/a');
const changed = 328 * 65536; // mutate.sh / engine-mutate.ts: round(2 GiB * 1 % / 64 KiB) writes of 64 KiB
const hv = { full: get('hvbackup', 'full'), scan: get('hvbackup', 'incr1-qemu-io'), tracked: get('hvbackup', 'incr-tracked'), restore: get('hvbackup', 'restore-latest') };
const rs = { full: get('restic', 'full'), incr: get('restic', 'incr1-qemu-io'), restore: get('restic', 'restore-incr2'), writeback: get('restic', 'restore-incr2 write-back (sync after)') };
// Full backups through one bridge process, each into a new repository (bridge-full.ts).
const hvBridgeFull = { first: get('hvbackup', 'full (bridge first call)'), warm: get('hvbackup', 'full (bridge warm)') };
const bg = { full: get('borg-none', 'full'), incr: get('borg-none', 'incr1-qemu-io'), restore: get('borg-none', 'extract-incr2') };
const scanRes = result('incr1-qemu-io');
const trackedRes = result('incr-tracked');
const fullRes = result('full');
// In-engine time of a VM (the --json result's durationMs: describe to merge), beside the
// process wall time, which adds Node start-up and opening the repository (the lock is taken
// while the VM is described, so only a wait for it beyond that is in-engine).
const engineSecs = (r?: { durationMs?: number }) => (r?.durationMs === undefined ? undefined : r.durationMs / 1000);
const secs = (x?: number) => (x === undefined ? '?' : x.toFixed(2));
const pct = (a?: number, b?: number) => (a !== undefined && b ? `${((100 * a) / b).toFixed(1)} %` : '?');
const hvEngine = { full: engineSecs(fullRes), tracked: engineSecs(trackedRes) };
// The tracked incremental through one long-lived bridge process (bridge-backup.ts): request →
// result as the PowerShell module sees it, its first call and the median of the warm ones
// (engine.sh's bridge_rows, in ms).
const bridgeTracked = (tool = 'hvbackup') => ({ first: get(tool, 'incr-tracked (bridge first call)'), warm: get(tool, 'incr-tracked (bridge warm)') });
const bridge = bridgeTracked();
const peak = Math.max(...[hv.full, hv.scan, hv.tracked, hv.restore].map((r) => r?.rss ?? 0));
const ok = (b: boolean | undefined) => (b === undefined ? '?' : b ? 'met' : 'NOT met');
// The goals' figures, each from this run alone: the verdicts below, and repeat.sh's medians.
const num = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? null : +x.toFixed(4));
const figures = {
  fullVsRestic: num(hv.full && rs.full ? hv.full.mbps / rs.full.mbps : undefined),
  fullVsBorg: num(hv.full && bg.full ? hv.full.mbps / bg.full.mbps : undefined),
  fullBridgeWarmVsRestic: num(hvBridgeFull.warm && rs.full ? rs.full.secs / hvBridgeFull.warm.secs : undefined),
  fullBridgeWarmVsBorg: num(hvBridgeFull.warm && bg.full ? bg.full.secs / hvBridgeFull.warm.secs : undefined),
  untrackedVsRestic: num(hv.scan && rs.incr ? hv.scan.mbps / rs.incr.mbps : undefined),
  trackedPctWall: num(hv.tracked && hv.full ? (100 * hv.tracked.secs) / hv.full.secs : undefined),
  trackedPctInEngine: num(hvEngine.tracked !== undefined && hvEngine.full ? (100 * hvEngine.tracked) / hvEngine.full : undefined),
  trackedPctBridgeWarm: num(bridge.warm && hvEngine.full ? (100 * bridge.warm.secs) / hvEngine.full : undefined),
  restoreVsRestic: num(hv.restore && rs.restore ? hv.restore.mbps / rs.restore.mbps : undefined),
  repoVsRestic: num(hv.full && rs.full ? hv.full.repo / rs.full.repo : undefined),
  storedPerChanged: num(scanRes && trackedRes ? Math.max(scanRes.storedBytes, trackedRes.storedBytes) / changed : undefined),
  peakRssMiB: num(peak > 0 ? peak : undefined),
  fullSecs: num(hv.full?.secs), resticFullSecs: num(rs.full?.secs), borgFullSecs: num(bg.full?.secs),
  fullBridgeWarmSecs: num(hvBridgeFull.warm?.secs),
  restoreSecs: num(hv.restore?.secs), resticRestoreSecs: num(rs.restore?.secs), resticRestoreWritebackSecs: num(rs.writeback?.secs),
};
const lines = [
  `| measure | HVBackup | restic | borg (none, zstd,1) | vs restic | vs borg | goal |`,
  `|---|---:|---:|---:|---:|---:|---|`,
  `| full backup MB/s (s) | ${hv.full?.mbps} (${hv.full?.secs}) | ${rs.full?.mbps} (${rs.full?.secs}) | ${bg.full?.mbps} (${bg.full?.secs}) | ${ratio(hv.full?.mbps, rs.full?.mbps)} | ${ratio(hv.full?.mbps, bg.full?.mbps)} | ≥4x restic, ≥3x borg: ${ok(meets(figures, 'fullVsRestic', 'fullVsBorg'))} |`,
  `| full backup through the bridge, each into a new repository: first call / warm, median of 3, s (÷ restic, ÷ borg) | ${secs(hvBridgeFull.first?.secs)} / ${secs(hvBridgeFull.warm?.secs)} | | | ${ratio(rs.full?.secs, hvBridgeFull.warm?.secs)} warm | ${ratio(bg.full?.secs, hvBridgeFull.warm?.secs)} warm | ≥4x restic, ≥3x borg: ${ok(meets(figures, 'fullBridgeWarmVsRestic', 'fullBridgeWarmVsBorg'))} |`,
  `| 1 % change by qemu-io (untracked → ${scanRes?.method ?? '?'}) MB/s (s) | ${hv.scan?.mbps} (${hv.scan?.secs}) | ${rs.incr?.mbps} (${rs.incr?.secs}) | ${bg.incr?.mbps} (${bg.incr?.secs}) | ${ratio(hv.scan?.mbps, rs.incr?.mbps)} | ${ratio(hv.scan?.mbps, bg.incr?.mbps)} | ≥2x restic: ${ok(meets(figures, 'untrackedVsRestic'))} |`,
  `| 1 % change through the engine (tracked → ${trackedRes?.method ?? '?'}) s | ${hv.tracked?.secs} (${hv.tracked && hv.full ? ((100 * hv.tracked.secs) / hv.full.secs).toFixed(1) : '?'} % of full) | — | — | | | ≤3 % of full: ${ok(meets(figures, 'trackedPctWall'))} |`,
  `| full → tracked: wall s; in-engine s (durationMs); tracked ÷ full | wall ${secs(hv.full?.secs)} → ${secs(hv.tracked?.secs)} (${pct(hv.tracked?.secs, hv.full?.secs)}); in-engine ${secs(hvEngine.full)} → ${secs(hvEngine.tracked)} (${pct(hvEngine.tracked, hvEngine.full)}) | — | — | | | ≤3 % of full: wall ${ok(meets(figures, 'trackedPctWall'))}, in-engine ${ok(meets(figures, 'trackedPctInEngine'))} |`,
  `| tracked incremental three ways: CLI wall; in-engine; bridge request → result, first call / warm, median of 5 (÷ full in-engine) | wall ${secs(hv.tracked?.secs)} s; in-engine ${secs(hvEngine.tracked)} s; bridge ${[bridge.first, bridge.warm].map((c) => `${secs(c?.secs)} s (${pct(c?.secs, hvEngine.full)})`).join(' / ')} | — | — | | | ≤3 % of full: bridge warm ${ok(meets(figures, 'trackedPctBridgeWarm'))} |`,
  `| restore MB/s (s), repository read from the device; restic's and borg's output not synced (restic's write-back after: ${secs(rs.writeback?.secs)} s), ours synced | ${hv.restore?.mbps} (${hv.restore?.secs}) | ${rs.restore?.mbps} (${rs.restore?.secs}) | ${bg.restore?.mbps} (${bg.restore?.secs}) | ${ratio(hv.restore?.mbps, rs.restore?.mbps)} | ${ratio(hv.restore?.mbps, bg.restore?.mbps)} | ≥2x restic: ${ok(meets(figures, 'restoreVsRestic'))} |`,
  `| repo after full MB | ${MB(hv.full?.repo ?? 0)} | ${MB(rs.full?.repo ?? 0)} | ${MB(bg.full?.repo ?? 0)} | ${ratio(hv.full?.repo, rs.full?.repo)} | ${ratio(hv.full?.repo, bg.full?.repo)} | ≤ restic: ${ok(meets(figures, 'repoVsRestic'))} |`,
  `| stored for the 1 % change (${MB(changed)} MB changed), MB | untracked ${MB(scanRes?.storedBytes ?? 0)} (${ratio(scanRes?.storedBytes, changed)}); tracked ${MB(trackedRes?.storedBytes ?? 0)} (${ratio(trackedRes?.storedBytes, changed)}) | ${MB((rs.incr?.repo ?? 0) - (rs.full?.repo ?? 0))} | ${MB((bg.incr?.repo ?? 0) - (bg.full?.repo ?? 0))} | | | ≤4x changed: ${ok(meets(figures, 'storedPerChanged'))} |`,
  `| peak RSS MiB | ${peak} | ${Math.max(rs.full?.rss ?? 0, rs.incr?.rss ?? 0, rs.restore?.rss ?? 0)} | ${Math.max(bg.full?.rss ?? 0, bg.incr?.rss ?? 0, bg.restore?.rss ?? 0)} | | | ≤256 MiB: ${ok(meets(figures, 'peakRssMiB'))} |`,
  `| limit: Node SHA-256 / zstd -1 one core MB/s | ${limits.sha256MBps} / ${limits.zstd1MBps} (zstd ratio ${limits.zstdRatio}) | | | | | |`,
];
for (const tool of [...new Set(rows.map((r) => r.tool))].filter((t) => t.startsWith('hvbackup-'))) {
  const f = get(tool, 'full'), sc = get(tool, 'incr1-qemu-io'), tr = get(tool, 'incr-tracked'), re = get(tool, 'restore-latest');
  const us = result('incr1-qemu-io', tool)?.storedBytes, ts = result('incr-tracked', tool)?.storedBytes;
  const fe = engineSecs(result('full', tool)), te = engineSecs(result('incr-tracked', tool));
  const bw = bridgeTracked(tool).warm;
  lines.push(`| ${tool.replace('hvbackup-', 'HVBackup, chunk size ')}: full / untracked / restore MB/s; tracked s (÷ full), wall and in-engine; repo MB; stored for 1 % | ${f?.mbps} / ${sc?.mbps} / ${re?.mbps}; wall ${tr?.secs} s (${pct(tr?.secs, f?.secs)}), in-engine ${secs(te)} s (${pct(te, fe)}), bridge warm ${secs(bw?.secs)} s (${pct(bw?.secs, fe)}); ${MB(f?.repo ?? 0)} MB; ${MB(us ?? 0)} (${ratio(us, changed)}) / ${MB(ts ?? 0)} (${ratio(ts, changed)}) | | | ${ratio(f?.mbps, rs.full?.mbps)} full | ${ratio(f?.mbps, bg.full?.mbps)} full | |`);
}
const text = `${lines.join('\n')}\n\nmethods: untracked → ${scanRes?.method} (${scanRes?.methodReason ?? ''}); tracked → ${trackedRes?.method}\n`;
writeFileSync(join(dir, 'summary.md'), text);
writeFileSync(join(dir, 'figures.json'), `${JSON.stringify(figures, null, 1)}\n`);
process.stdout.write(text);
