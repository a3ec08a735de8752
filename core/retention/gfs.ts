// Which restore points a retention policy keeps. Pure: no I/O, no clock except `now`.
//
// Semantics (those of restic's `forget`, per VM):
// - Points are grouped by VM; within a VM they are ordered newest first (createdAt, then id).
// - keepLast N keeps the N newest points.
// - daily/weekly/monthly/yearly N each keep, walking from the newest point back, the
//   newest point of each calendar bucket (UTC day; ISO-8601 week, Monday to Sunday,
//   numbered by the year its Thursday falls in; month; year) until N buckets have had a
//   point kept. Buckets without points do not count: "monthly 6" keeps the newest point
//   of each of the last six months that HAVE points, however far back they go.
// - A point is kept when any rule keeps it; reasons list every rule that did, e.g.
//   ["last", "daily 2025-12-31", "weekly 2026-W01"], or ["not kept by any rule"].
// - Points dated after `now` (a clock that ran ahead) are always kept and never use up
//   a bucket: removing them would be a guess.
// - A policy with no rule is refused: it would remove every point.

import { HvError } from '../errors.ts';

export interface RetentionPolicy {
  keepLast?: number;
  daily?: number;
  weekly?: number;
  monthly?: number;
  yearly?: number;
}

export interface RetentionPoint {
  id: string;
  vm: string;
  createdAt: string;
}

export interface RetentionDecision extends RetentionPoint {
  keep: boolean;
  reasons: string[];
}

const BUCKETS = {
  daily: (d: Date) => d.toISOString().slice(0, 10),
  weekly: isoWeek,
  monthly: (d: Date) => d.toISOString().slice(0, 7),
  yearly: (d: Date) => d.toISOString().slice(0, 4),
} as const;

type BucketRule = keyof typeof BUCKETS;
const RULES: BucketRule[] = ['daily', 'weekly', 'monthly', 'yearly'];

/** ISO-8601 week of a UTC date, e.g. "2026-W01" for 2025-12-31 (its Thursday is 2026-01-01). */
export function isoWeek(d: Date): string {
  const day = d.getUTCDay() || 7;
  const thursday = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 4 - day));
  const year = thursday.getUTCFullYear();
  const week = Math.floor((thursday.getTime() - Date.UTC(year, 0, 1)) / 86_400_000 / 7) + 1;
  return `${year}-W${String(week).padStart(2, '0')}`;
}

export function checkPolicy(policy: RetentionPolicy): void {
  const given = (['keepLast', ...RULES] as const).filter((k) => policy[k] !== undefined);
  for (const k of given) {
    const n = policy[k]!;
    if (!Number.isSafeInteger(n) || n < 0) throw new HvError('ERR_INVALID_ARGUMENT', `retention ${k} must be a whole number >= 0, not ${n}`);
  }
  if (!given.some((k) => policy[k]! > 0)) {
    throw new HvError('ERR_INVALID_ARGUMENT', 'the retention policy keeps nothing: give at least one of keepLast, daily, weekly, monthly, yearly');
  }
}

export function selectRetention(points: RetentionPoint[], policy: RetentionPolicy, now: Date): RetentionDecision[] {
  checkPolicy(policy);
  const byVm = new Map<string, RetentionPoint[]>();
  for (const p of points) {
    if (Number.isNaN(Date.parse(p.createdAt))) throw new HvError('ERR_INVALID_ARGUMENT', `restore point ${p.id} has no valid date (${p.createdAt})`, { target: p.id });
    byVm.set(p.vm, [...(byVm.get(p.vm) ?? []), p]);
  }
  const decided = new Map<string, RetentionDecision>();
  for (const vmPoints of byVm.values()) {
    for (const d of selectForVm(vmPoints, policy, now)) decided.set(d.id, d);
  }
  return points.map((p) => decided.get(p.id)!);
}

function selectForVm(points: RetentionPoint[], policy: RetentionPolicy, now: Date): RetentionDecision[] {
  const sorted = [...points].sort((a, b) => Date.parse(b.createdAt) - Date.parse(a.createdAt) || b.id.localeCompare(a.id));
  const out = sorted.map((p) => ({ ...p, keep: false, reasons: [] as string[] }));
  const past = out.filter((d) => {
    if (Date.parse(d.createdAt) <= now.getTime()) return true;
    d.reasons.push('dated after now');
    return false;
  });
  past.slice(0, policy.keepLast ?? 0).forEach((d) => d.reasons.push('last'));
  for (const rule of RULES) {
    let left = policy[rule] ?? 0;
    let lastBucket: string | undefined;
    for (const d of past) {
      if (left === 0) break;
      const bucket = BUCKETS[rule](new Date(d.createdAt));
      if (bucket === lastBucket) continue;
      d.reasons.push(`${rule} ${bucket}`);
      lastBucket = bucket;
      left--;
    }
  }
  for (const d of out) {
    d.keep = d.reasons.length > 0;
    if (!d.keep) d.reasons.push('not kept by any rule');
  }
  return out;
}
