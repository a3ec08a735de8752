#!/bin/bash
# Peak RSS and time of a tracked incremental backup and of a restore in a repository whose index
# lists N more chunks than its VM's own (synthetic entries, bench/repo/add-index-entries.ts; the
# default 4 M is ~1 TiB of unique data at 256 KiB chunks): with the chunk index spilling to
# scratch runs past its default budget, and held whole (HVB_INDEX_MEMORY_RECORDS past N), both
# with index tables off (HVB_INDEX_TABLES=0); and looked up in the index table the first
# tracked incremental stores (core/repo/index-table.ts).
# Usage: bash bench/repo/large-index.sh [N] [rounds]     (from the repository root)
set -euo pipefail
N=${1:-4000000}; ROUNDS=${2:-2}
W=${W:-/tmp/hvb-large-index}; NODE=node_modules/.bin/node; H="$NODE bin/hvbackup.js"
rm -rf "$W"; mkdir -p "$W"
$H vm sample "$W/vm" --size 2 > /dev/null
$H repo init "$W/repo" > /dev/null
$H backup "$W/vm" --repo "$W/repo" > /dev/null
$NODE bench/repo/add-index-entries.ts "$W/repo" "$N"
echo "index: $N synthetic entries + the VM's own; $(du -sm "$W/repo/index" | cut -f1) MB of index objects"
printf '| mode | job | wall s | engine s | peak RSS MiB |\n|---|---|---:|---:|---:|\n'
tracked() { # mode label seed
  $NODE bench/backup/engine-mutate.ts "$W/vm" "$3" 1 > /dev/null
  out=$( { /usr/bin/time -f "TIME %e %M" $H backup "$W/vm" --repo "$W/repo" --json; } 2>&1 )
  ms=$(echo "$out" | grep -o '"durationMs":[0-9]*' | tail -1 | cut -d: -f2)
  t=$(echo "$out" | grep '^TIME'); set -- $t
  echo "| $MODE | $LABEL | $2 | $(awk "BEGIN{print $ms/1000}") | $(( $3 / 1024 )) |"
}
MODE=table LABEL="tracked incremental, storing the table" tracked x x 1
echo "tables: $(ls "$W/repo/tables" | wc -l), $(du -sm "$W/repo/tables" | cut -f1) MB"
for round in $(seq "$ROUNDS"); do
  for mode in table spilled whole; do
    unset HVB_INDEX_MEMORY_RECORDS HVB_INDEX_TABLES
    if [ $mode != table ]; then export HVB_INDEX_TABLES=0; fi
    if [ $mode = whole ]; then export HVB_INDEX_MEMORY_RECORDS=$((N * 2)); fi
    MODE=$mode LABEL="tracked incremental" tracked x x $((round * 10 + ${#mode}))
    rm -rf "$W/restored"
    t=$( { /usr/bin/time -f "TIME %e %M" $H restore latest --repo "$W/repo" --vm vm --to "$W/restored" > /dev/null; } 2>&1 | grep '^TIME'); set -- $t
    echo "| $mode | restore (2 GiB disk) | $2 | | $(( $3 / 1024 )) |"
  done
done
unset HVB_INDEX_MEMORY_RECORDS HVB_INDEX_TABLES
rm -rf "$W"
