#!/usr/bin/env bash
# Archive export throughput beside `tar -cf` of the same repository data (goal >= 90 % of tar).
# Usage: bench/archive/run.sh [SIZE_MIB] [RUNS]   Results: bench/results/archive-<time>.md
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$ROOT/bench/results"
OUT="$ROOT/bench/results/archive-$(date -u +%Y%m%dT%H%M%SZ).md"
"$ROOT/node_modules/.bin/node" "$ROOT/bench/archive/export.ts" "${1:-512}" "${2:-3}" | tee "$OUT"
echo "written to $OUT"
