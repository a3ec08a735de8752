// bench helper: issue 3's goals, once, for report.ts (one run) and median.ts (several): each a
// figure report.ts writes to figures.json, and the test that figure must pass.
export interface Goal {
  key: string;
  what: string;
  goal: string;
  met(v: number): boolean;
}

export const goals: readonly Goal[] = [
  { key: 'fullVsRestic', what: 'full backup ÷ restic (throughput)', goal: '≥ 4x', met: (v) => v >= 4 },
  { key: 'fullVsBorg', what: 'full backup ÷ borg (throughput)', goal: '≥ 3x', met: (v) => v >= 3 },
  { key: 'fullBridgeWarmVsRestic', what: 'full backup, bridge warm (median of 3), ÷ restic', goal: '≥ 4x', met: (v) => v >= 4 },
  { key: 'fullBridgeWarmVsBorg', what: 'full backup, bridge warm (median of 3), ÷ borg', goal: '≥ 3x', met: (v) => v >= 3 },
  { key: 'untrackedVsRestic', what: '1 % untracked (scan) ÷ restic', goal: '≥ 2x', met: (v) => v >= 2 },
  { key: 'trackedPctWall', what: 'tracked 1 %, CLI wall, % of full', goal: '≤ 3 %', met: (v) => v <= 3 },
  { key: 'trackedPctInEngine', what: 'tracked 1 %, in-engine, % of full', goal: '≤ 3 %', met: (v) => v <= 3 },
  { key: 'trackedPctBridgeWarm', what: 'tracked 1 %, bridge warm, % of full in-engine', goal: '≤ 3 %', met: (v) => v <= 3 },
  { key: 'restoreVsRestic', what: 'restore ÷ restic (throughput)', goal: '≥ 2x', met: (v) => v >= 2 },
  { key: 'repoVsRestic', what: 'repository after full ÷ restic', goal: '≤ 1x', met: (v) => v <= 1 },
  { key: 'storedPerChanged', what: 'stored for the 1 % change ÷ changed bytes', goal: '≤ 4x', met: (v) => v <= 4 },
  { key: 'peakRssMiB', what: 'peak RSS MiB', goal: '≤ 256', met: (v) => v <= 256 },
];

/** Whether every goal named passes its figure: undefined when a figure is missing. */
export function meets(figures: Record<string, number | null>, ...keys: string[]): boolean | undefined {
  let all = true;
  for (const key of keys) {
    const v = figures[key];
    const g = goals.find((x) => x.key === key);
    if (v === null || v === undefined || !g) return undefined;
    all &&= g.met(v);
  }
  return all;
}
