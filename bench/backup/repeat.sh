#!/bin/bash
# bench/backup/repeat.sh [N=3] — run.sh N times in a row, then the median of each goal's
# figure over the runs (bench/backup/median.ts). Each figure is a ratio within one run, as the
# goals ask; on a shared 2-core machine one run's ratios move by a third (the peers' times as
# much as ours), so the median of a few runs is what to judge by. Env: as run.sh; RUN_ID names
# the set (runs are RUN_ID-r1 ... RUN_ID-rN). Takes N times run.sh's few minutes.
set -uo pipefail
BENCH=$(cd "$(dirname "$0")/.." && pwd)
N=${1:-3}
SET=${RUN_ID:-backup-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$BENCH/results"   # not in a fresh clone (results are not committed)
runs=()
for i in $(seq "$N"); do
  RUN_ID="$SET-r$i" "$BENCH/backup/run.sh" > "$BENCH/results/.$SET-r$i.log" 2>&1 || echo "run $i failed: see $BENCH/results/.$SET-r$i.log" >&2
  mv "$BENCH/results/.$SET-r$i.log" "$BENCH/results/$SET-r$i/run.log" 2>/dev/null || true
  runs+=("$BENCH/results/$SET-r$i")
done
"$(cd "$BENCH/.." && pwd)/node_modules/.bin/node" "$BENCH/backup/median.ts" "${runs[@]}" | tee "$BENCH/results/$SET-median.md"
