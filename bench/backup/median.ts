// bench helper: the median, and the range, of each goal's figure over several run.sh runs
// (their figures.json, written by report.ts). Usage: node bench/backup/median.ts <results/RUN>...
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const runs = process.argv.slice(2).filter((d) => existsSync(join(d, 'figures.json')));
if (runs.length === 0) throw new Error('median.ts: no results folder with a figures.json given');
const figures = runs.map((d) => JSON.parse(readFileSync(join(d, 'figures.json'), 'utf8')) as Record<string, number | null>);
const goals: [key: string, what: string, met: (v: number) => boolean, unit: string][] = [
  ['fullVsRestic', 'full backup ÷ restic (throughput)', (v) => v >= 4, '≥ 4x'],
  ['fullVsBorg', 'full backup ÷ borg (throughput)', (v) => v >= 3, '≥ 3x'],
  ['untrackedVsRestic', '1 % untracked (scan) ÷ restic', (v) => v >= 2, '≥ 2x'],
  ['trackedPctWall', 'tracked 1 %, CLI wall, % of full', (v) => v <= 3, '≤ 3 %'],
  ['trackedPctInEngine', 'tracked 1 %, in-engine, % of full', (v) => v <= 3, '≤ 3 %'],
  ['trackedPctBridgeWarm', 'tracked 1 %, bridge warm, % of full in-engine', (v) => v <= 3, '≤ 3 %'],
  ['restoreVsRestic', 'restore ÷ restic (throughput)', (v) => v >= 2, '≥ 2x'],
  ['repoVsRestic', 'repository after full ÷ restic', (v) => v <= 1, '≤ 1x'],
  ['storedPerChanged', 'stored for the 1 % change ÷ changed bytes', (v) => v <= 4, '≤ 4x'],
  ['peakRssMiB', 'peak RSS MiB', (v) => v <= 256, '≤ 256'],
  ['fullSecs', 'our full backup, s', () => true, ''],
  ['resticFullSecs', "restic's full backup, s", () => true, ''],
  ['borgFullSecs', "borg's full backup, s", () => true, ''],
  ['restoreSecs', 'our restore, s', () => true, ''],
  ['resticRestoreSecs', "restic's restore, s", () => true, ''],
];
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const out = [`${runs.length} runs: ${runs.join(', ')}`, '', '| figure | median | range | goal | by the median |', '|---|---:|---:|---|---|'];
for (const [key, what, met, goal] of goals) {
  const xs = figures.map((f) => f[key]).filter((v): v is number => typeof v === 'number');
  if (xs.length === 0) continue;
  const m = median(xs);
  const f = (v: number) => (Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(2));
  out.push(`| ${what} | ${f(m)} | ${f(Math.min(...xs))}–${f(Math.max(...xs))} | ${goal} | ${goal ? (met(m) ? 'met' : 'NOT met') : ''} |`);
}
process.stdout.write(`${out.join('\n')}\n`);
