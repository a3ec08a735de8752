# Sourced by bench/run_peers.sh (PEERBENCH_EXTRA): HVBackup on the same bytes as the peers.
# Uses measure/verify and $BASE $MUT1 $WORK $OUT $CSV from run_peers.sh; $HVB_ROOT from run.sh.
NODE="$HVB_ROOT/node_modules/.bin/node"
HVB="$NODE $HVB_ROOT/core/cli/main.ts"
VM=$WORK/hvb-vm; R=$WORK/hvb-repo; DISK="$VM/Virtual Hard Disks/bench.vhdx"
"$NODE" "$HVB_ROOT/bench/backup/limits.ts" "$DATA/base.raw" > "$OUT/limits.json"
"$NODE" "$HVB_ROOT/bench/backup/make-vm.ts" "$VM" "$BASE" bench > /dev/null
$HVB repo init "$R" ${HVB_CHUNK_SIZE:+--chunk-size $HVB_CHUNK_SIZE} > /dev/null
cat "$DISK" > /dev/null
measure hvbackup full "$R" $HVB backup "$VM" --repo "$R" --json
# The peers' incr1: the same 1 % change made in place by qemu-io — untracked, so a scan.
cp "$MUT1" "$DISK"; cat "$DISK" > /dev/null
measure hvbackup incr1-qemu-io "$R" $HVB backup "$VM" --repo "$R" --json
# A 1 % change of the same shape made through the engine (the running guest) — tracked.
"$NODE" "$HVB_ROOT/bench/backup/engine-mutate.ts" "$VM" 4321 1 > "$OUT/logs/hvbackup-mutate.out"
measure hvbackup incr-tracked "$R" $HVB backup "$VM" --repo "$R" --json
measure hvbackup restore-latest "$R" $HVB restore latest --repo "$R" --vm bench --to "$WORK/hvb-restore"
if qemu-img compare -q -f vhdx -F vhdx "$WORK/hvb-restore/Virtual Hard Disks/bench.vhdx" "$DISK"; then res=IDENTICAL; else res=DIFFERENT; fi
echo "hvbackup restore-latest: qemu-img compare vs the VM disk: $res" | tee -a "$OUT/verify.txt"
echo "hvbackup,verify-restore-latest,,,,,,,qemu-img compare $res" >> "$CSV"
$HVB verify --repo "$R" > "$OUT/logs/hvbackup-verify.out" 2>&1; echo "hvbackup verify rc=$?" >> "$OUT/verify.txt"
rm -rf "$VM" "$R" "$WORK/hvb-restore"
