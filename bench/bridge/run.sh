#!/usr/bin/env bash
# Per-call overhead of the PowerShell module's warm engine versus a new CLI process per call:
# Get-HVRepository x N (engine started once, reused) vs `hvbackup repo stats` x N (a new Node
# each time), on an empty repository and on one with two restore points; restic's
# `cat config` x N as a process-per-call peer. Goal: warm call < 20 ms.
# Usage: bench/bridge/run.sh [N]   (default 100). Results: bench/results/bridge-<time>.md
set -euo pipefail
N=${1:-100}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
NODE="$ROOT/node_modules/.bin/node"
PWSH=$("$NODE" "$ROOT/scripts/find-pwsh.mjs")
[ -n "$PWSH" ] || { echo "no pwsh: run npm run setup" >&2; exit 1; }
WORK=$(mktemp -d /tmp/hvb-bench-bridge-XXXXXX)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$ROOT/bench/results"
OUT="$ROOT/bench/results/bridge-$(date -u +%Y%m%dT%H%M%SZ).md"

# A sandbox (2 VMs of 32 MiB) backed up once: a repository with two restore points.
"$PWSH" -NoLogo -NoProfile -NonInteractive -Command "
  Import-Module '$ROOT/psmodule/HVBackup/HVBackup.psd1'
  \$sb = New-HVSandbox -Path '$WORK/sb' -VMCount 2 -SizeBytes 32MB
  [void](Get-HVVM -Path \$sb.VMFolder | Backup-HVVM -Repository \$sb.Repository)
  [void](New-HVRepository -Path '$WORK/empty')" >/dev/null

ms_per_call() { # command... ; runs it N times, prints ms per call
  local start end
  start=$(date +%s%N)
  for ((i = 0; i < N; i++)); do "$@" >/dev/null 2>&1; done
  end=$(date +%s%N)
  awk -v s="$start" -v e="$end" -v n="$N" 'BEGIN { printf "%.1f", (e - s) / 1e6 / n }'
}

warm() { # repository -> "first-call-ms per-call-ms"
  "$PWSH" -NoLogo -NoProfile -NonInteractive -Command "
    Import-Module '$ROOT/psmodule/HVBackup/HVBackup.psd1'
    \$first = (Measure-Command { [void](Get-HVRepository -Path '$1') }).TotalMilliseconds
    [void](Get-HVRepository -Path '$1')
    \$t = (Measure-Command { for (\$i = 0; \$i -lt $N; \$i++) { [void](Get-HVRepository -Path '$1') } }).TotalMilliseconds
    '{0:F1} {1:F1}' -f \$first, (\$t / $N)"
}

read -r FIRST_EMPTY WARM_EMPTY < <(warm "$WORK/empty")
read -r FIRST_FULL WARM_FULL < <(warm "$WORK/sb/repository")
CLI_EMPTY=$(ms_per_call "$NODE" "$ROOT/bin/hvbackup.js" repo stats "$WORK/empty")
CLI_FULL=$(ms_per_call "$NODE" "$ROOT/bin/hvbackup.js" repo stats "$WORK/sb/repository")
RESTIC="n/a"
if command -v restic >/dev/null; then
  export RESTIC_PASSWORD=bench
  restic init -q --repo "$WORK/restic" >/dev/null 2>&1
  RESTIC=$(ms_per_call restic -q --no-lock --repo "$WORK/restic" cat config)
fi

{
  echo "# Bridge per-call overhead ($N calls, $(nproc) cores, $(date -u +%FT%TZ))"
  echo
  echo "| call | empty repository (ms/call) | 2 restore points (ms/call) |"
  echo "|---|---|---|"
  echo "| Get-HVRepository, warm engine | $WARM_EMPTY | $WARM_FULL |"
  echo "| Get-HVRepository, first call (starts the engine) | $FIRST_EMPTY | $FIRST_FULL |"
  echo "| hvbackup repo stats, new process per call | $CLI_EMPTY | $CLI_FULL |"
  echo "| restic cat config, new process per call (peer) | $RESTIC | |"
  echo
  awk -v w="$WARM_FULL" -v c="$CLI_FULL" 'BEGIN { printf "Warm module call is %.1fx faster than a CLI process per call (2 restore points).\n", c / w }'
} | tee "$OUT"
