# Sourced by bench/run_peers.sh (PEERBENCH_EXTRA): HVBackup on the same bytes as the peers.
# Uses measure/verify and $BASE $MUT1 $WORK $OUT $CSV from run_peers.sh; $HVB_ROOT from run.sh.
# Runs once with the repository's default chunk size (tool "hvbackup") and once more for each
# size in HVB_ALSO_CHUNK_SIZES (tool "hvbackup-<bytes>").
NODE="$HVB_ROOT/node_modules/.bin/node"
# The CLI as installed (package.json "bin": what `hvbackup` and `npx hvbackup` run).
HVB="$NODE $HVB_ROOT/bin/hvbackup.js"
"$NODE" "$HVB_ROOT/bench/backup/limits.ts" "$DATA/base.raw" > "$OUT/limits.json"
# The engine's own time for the VM (durationMs of the --json result: describe to merge),
# as a row beside the wall time measure just wrote (no process start or repository open).
hvb_engine_time() {  # hvb_engine_time TOOL OP
  local ms
  ms=$(grep -s '"event":"result"' "$OUT/logs/$1-$2.out" | tail -1 | grep -o '"durationMs":[0-9]*' | head -1 | cut -d: -f2)
  echo "$1,$2 (in-engine),$(awk -v m="${ms:-}" 'BEGIN{ if (m != "") printf "%.2f", m/1000 }'),,,,,,durationMs of the --json result" >> "$CSV"
}
# Rows for a bridge run's JSON lines (bridge-backup.ts, bridge-full.ts): its first call, and the
# median of the warm calls after it (one call alone is too noisy); in ms, since a warm tracked
# call is ~0.16 s (report.ts takes its figures from these rows).
bridge_rows() {  # bridge_rows TOOL OP OUT
  awk -v t="$1" -v op="$2" -F'[:,]' '/^\{/ { for (i = 1; i < NF; i++) { if ($i ~ /"ms"/) ms = $(i+1); if ($i ~ /"durationMs"/) d = $(i+1) }
      if ($2 == 1) printf "%s,%s (bridge first call),%.3f,,,,,,request to result in a bridge just started; in-engine %.2f s\n", t, op, ms/1000, d/1000
      else { n++; w[n] = ms } }
    END { for (i = 2; i <= n; i++) for (j = i; j > 1 && w[j-1] > w[j]; j--) { x = w[j]; w[j] = w[j-1]; w[j-1] = x }
      if (n) { printf "%s,%s (bridge warm),%.3f,,,,,,median of %d warm calls in one long-lived bridge process\n", t, op, w[int((n+1)/2)]/1000, n } }' "$3" >> "$CSV"
}
hvb_bridge_time() {  # hvb_bridge_time TOOL VM REPO
  local out="$OUT/logs/$1-incr-tracked-bridge.out"
  "$NODE" "$HVB_ROOT/bench/backup/bridge-backup.ts" "$2" "$3" 4322 4323 4324 4325 4326 4327 > "$out" 2>&1
  bridge_rows "$1" incr-tracked "$out"
}
hvb_bridge_full() {  # hvb_bridge_full TOOL: full backups of the base disk through one bridge
  local vm=$WORK/hvb-vm-bridge out="$OUT/logs/$1-full-bridge.out"
  "$NODE" "$HVB_ROOT/bench/backup/make-vm.ts" "$vm" "$BASE" bench > /dev/null
  cat "$vm/Virtual Hard Disks/bench.vhdx" > /dev/null; sync
  # Each call into a new repository (bridge-full.ts removes them), as the CLI's full: the
  # first in a bridge just started (engine loading, chunk workers starting), then three warm.
  "$NODE" "$HVB_ROOT/bench/backup/bridge-full.ts" "$vm" "$WORK" 4 > "$out" 2>&1
  bridge_rows "$1" full "$out"
  rm -rf "$vm"
}
hvb_engine() {  # hvb_engine TOOL [CHUNK_SIZE]
  local T=$1 CS=${2:-}
  VM=$WORK/hvb-vm; R=$WORK/hvb-repo; DISK="$VM/Virtual Hard Disks/bench.vhdx"
  "$NODE" "$HVB_ROOT/bench/backup/make-vm.ts" "$VM" "$BASE" bench > /dev/null
  $HVB repo init "$R" ${CS:+--chunk-size $CS} > /dev/null
  cat "$DISK" > /dev/null
  measure $T full "$R" $HVB backup "$VM" --repo "$R" --json
  hvb_engine_time $T full
  # The peers' incr1: the same 1 % change made in place by qemu-io — untracked, so a scan.
  cp "$MUT1" "$DISK"; cat "$DISK" > /dev/null
  measure $T incr1-qemu-io "$R" $HVB backup "$VM" --repo "$R" --json
  hvb_engine_time $T incr1-qemu-io
  # A 1 % change of the same shape made through the engine (the running guest) — tracked.
  "$NODE" "$HVB_ROOT/bench/backup/engine-mutate.ts" "$VM" 4321 1 > "$OUT/logs/$T-mutate.out"
  measure $T incr-tracked "$R" $HVB backup "$VM" --repo "$R" --json
  hvb_engine_time $T incr-tracked
  # The same kind of tracked incremental through the PowerShell module's engine process: one
  # long-lived bridge, request → result (no Node start-up); its first call, then five warm ones,
  # each after its own 1 % change (other seeds, same shape).
  hvb_bridge_time $T "$VM" "$R"
  cold "$R"; measure $T restore-latest "$R" $HVB restore latest --repo "$R" --vm bench --to "$WORK/hvb-restore"
  if qemu-img compare -q -f vhdx -F vhdx "$WORK/hvb-restore/Virtual Hard Disks/bench.vhdx" "$DISK"; then res=IDENTICAL; else res=DIFFERENT; fi
  echo "$T restore-latest: qemu-img compare vs the VM disk: $res" | tee -a "$OUT/verify.txt"
  echo "$T,verify-restore-latest,,,,,,,qemu-img compare $res" >> "$CSV"
  $HVB verify --repo "$R" > "$OUT/logs/$T-verify.out" 2>&1; echo "$T verify rc=$?" >> "$OUT/verify.txt"
  rm -rf "$VM" "$R" "$WORK/hvb-restore"
}
hvb_engine hvbackup "${HVB_CHUNK_SIZE:-}"
hvb_bridge_full hvbackup
for cs in ${HVB_ALSO_CHUNK_SIZES:-}; do hvb_engine "hvbackup-$cs" "$cs"; done
