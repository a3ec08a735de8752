#!/bin/bash
# bench/restore/run.sh — HVBackup restore beside restic's, interleaved round by round so
# both see the same load, on the 2 GiB bench disk (bench/data/base.vhdx). Every HVBackup
# restore is checked with qemu-img compare (IDENTICAL to the source) and qemu-img check.
# Prints each run and the best of N (wall, user, sys seconds, peak RSS MiB) per tool.
#   bench/restore/run.sh [rounds]      (default 3; env WORK: scratch folder)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
N=${1:-3}
node "$ROOT/scripts/setup.mjs" --no-powershell --bench --quiet   # npm packages, qemu-img, the peers
WORK=${WORK:-$ROOT/.tmp/bench-restore-work}
NODE=$ROOT/node_modules/.bin/node
HVB="$NODE $ROOT/core/cli/main.ts"
export RESTIC_PASSWORD=peerbench RESTIC_REPOSITORY=$WORK/restic-repo RESTIC_CACHE_DIR=$WORK/restic-cache
[ -f "$ROOT/bench/data/base.vhdx" ] || "$ROOT/bench/make_disk.sh" "$ROOT/bench/data"
rm -rf "$WORK"; mkdir -p "$WORK/src"
$NODE "$ROOT/bench/backup/make-vm.ts" "$WORK/vm" "$ROOT/bench/data/base.vhdx" bench > /dev/null
SRC="$WORK/vm/Virtual Hard Disks/bench.vhdx"
$HVB repo init "$WORK/hvb-repo" > /dev/null
$HVB backup "$WORK/vm" --repo "$WORK/hvb-repo" > /dev/null 2>&1
have_restic=0
if command -v restic > /dev/null; then
  have_restic=1
  cp "$ROOT/bench/data/base.vhdx" "$WORK/src/bench.vhdx"
  restic init -q && restic backup -q --host bench "$WORK/src/bench.vhdx"
fi
timed() {  # timed LABEL cmd... -> "LABEL wall user sys rssMiB"
  local label=$1; shift
  /usr/bin/time -f "$label %e %U %S %M" "$@" 2>&1 > /dev/null | tail -1 | awk '{ printf "%s %s %s %s %.0f\n", $1, $2, $3, $4, $5 / 1024 }'
}
RUNS=$WORK/runs.txt; : > "$RUNS"
for r in $(seq "$N"); do
  if [ $have_restic = 1 ]; then
    rm -rf "$WORK/restic-out"; timed restic restic restore -q latest --target "$WORK/restic-out" | tee -a "$RUNS"
    # restic does not fsync: write its dirty pages back now, not during the next run.
    sync
  fi
  rm -rf "$WORK/hvb-out"; sync; timed hvbackup $HVB restore latest --repo "$WORK/hvb-repo" --vm bench --to "$WORK/hvb-out" | tee -a "$RUNS"
  OUT="$WORK/hvb-out/Virtual Hard Disks/bench.vhdx"
  qemu-img compare -q -f vhdx -F vhdx "$OUT" "$SRC" || { echo "restored disk differs from the source" >&2; exit 1; }
  qemu-img check -q -f vhdx "$OUT" || { echo "qemu-img check found problems in $OUT" >&2; exit 1; }
done
echo "best of $N (wall s, user s, sys s, peak RSS MiB); load average now $(cut -d' ' -f1-3 /proc/loadavg):"
sort -k1,1 -k2,2n "$RUNS" | awk '!seen[$1]++ { print "  " $0 }'
rm -rf "$WORK"
