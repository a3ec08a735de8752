#!/bin/bash
# bench/backup/run.sh — HVBackup's backup engine beside restic and borg on the 2 GiB
# workload (bench/make_disk.sh: ~40 % zeros, 25 % random, 25 % log text, 10 % repeats):
# full backup, the peers' 1 % qemu-io change (untracked → scan), a 1 % change made through
# the engine (tracked → changed blocks), restore; Node's SHA-256 and zstd as the limit.
# Also through the PowerShell module's engine process (bridge-backup.ts, bridge-full.ts): the
# tracked incremental and a full backup into a new repository, first call and warm (no Node or
# worker start-up). Every restore reads its repository from the device (run_peers.sh cold).
# Prints results/<run>/results.md and a summary with ratios (bench/backup/report.ts).
# Env: TOOLS (default "phys restic borg-none"), HVB_CHUNK_SIZE (repo chunk size), RUN_ID,
#      HVB_ALSO_CHUNK_SIZES (default 262144: our engine once more with that chunk size).
# Takes a few minutes; on a shared machine the figures move with the load (see env.txt).
set -uo pipefail
BENCH=$(cd "$(dirname "$0")/.." && pwd)
export HVB_ROOT=$(cd "$BENCH/.." && pwd)
export DATA=${DATA:-$BENCH/data}
export RUN_ID=${RUN_ID:-backup-$(date -u +%Y%m%dT%H%M%SZ)}
export WORK=${WORK:-$HVB_ROOT/.tmp/bench-backup-work}
export TOOLS=${TOOLS:-"phys restic borg-none"}
export HVB_ALSO_CHUNK_SIZES=${HVB_ALSO_CHUNK_SIZES-262144}
node "$HVB_ROOT/scripts/setup.mjs" --no-powershell --bench --quiet   # npm packages, qemu-img, the peers
[ -f "$DATA/base.vhdx" ] || "$BENCH/make_disk.sh" "$DATA"
PEERBENCH_EXTRA="$BENCH/backup/engine.sh" "$BENCH/run_peers.sh" > /dev/null
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$BENCH/results/$RUN_ID/env.txt"
"$HVB_ROOT/node_modules/.bin/node" "$BENCH/backup/report.ts" "$BENCH/results/$RUN_ID"
