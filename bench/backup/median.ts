// bench helper: the median, and the range, of each goal's figure over several run.sh runs
// (their figures.json, written by report.ts). Usage: node bench/backup/median.ts <results/RUN>...
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { goals } from './goals.ts';

const runs = process.argv.slice(2).filter((d) => existsSync(join(d, 'figures.json')));
if (runs.length === 0) throw new Error('median.ts: no results folder with a figures.json given');
const figures = runs.map((d) => JSON.parse(readFileSync(join(d, 'figures.json'), 'utf8')) as Record<string, number | null>);
// The goals, then the times behind the ratios (no goal of their own).
const rows: { key: string; what: string; goal: string; met?: (v: number) => boolean }[] = [
  ...goals,
  { key: 'fullSecs', what: 'our full backup, s', goal: '' },
  { key: 'resticFullSecs', what: "restic's full backup, s", goal: '' },
  { key: 'borgFullSecs', what: "borg's full backup, s", goal: '' },
  { key: 'fullBridgeWarmSecs', what: 'our full backup through the bridge (warm), s', goal: '' },
  { key: 'restoreSecs', what: 'our restore, s', goal: '' },
  { key: 'resticRestoreSecs', what: "restic's restore, s", goal: '' },
  { key: 'resticRestoreWritebackSecs', what: "restic's restore: write-back after it (sync), s", goal: '' },
];
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const out = [`${runs.length} runs: ${runs.join(', ')}`, '', '| figure | median | range | goal | by the median |', '|---|---:|---:|---|---|'];
for (const { key, what, goal, met } of rows) {
  const xs = figures.map((f) => f[key]).filter((v): v is number => typeof v === 'number');
  if (xs.length === 0) continue;
  const m = median(xs);
  const f = (v: number) => (Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(2));
  out.push(`| ${what} | ${f(m)} | ${f(Math.min(...xs))}–${f(Math.max(...xs))} | ${goal} | ${met ? (met(m) ? 'met' : 'NOT met') : ''} |`);
}
process.stdout.write(`${out.join('\n')}\n`);
