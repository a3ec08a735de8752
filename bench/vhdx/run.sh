#!/bin/bash
# VHDX library benchmark: sequential read and write of a 2 GiB dynamic VHDX (seeded,
# ~40% zeros) against qemu-img convert and cat, in one run. Prints MB/s (logical
# 2 GiB / wall time, best of RUNS) and our ratio to each peer.
# Durability differs, so peers are timed both ways: qemu-img convert's default cache
# mode (unsafe) never flushes; with -t writeback it flushes (its per-allocation VHDX log
# flushes become real). Our `vhdx convert` flushes once at close (raw and VHDX output;
# the VHDX log is still written per call); write-durable.ts flushes twice per write
# call, the mode a caller needing every call durable uses. Our times include Node
# start-up and loading the CLI (0.3-1 s on a loaded 2-core box).
# Usage: bench/vhdx/run.sh [WORKDIR=/tmp/hvb-bench-vhdx] ; RUNS=3 by default
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
NODE="$ROOT/node_modules/.bin/node"
CLI="$ROOT/core/cli/main.ts"
DATA="$ROOT/bench/data"
WORK=${1:-/tmp/hvb-bench-vhdx}
RUNS=${RUNS:-3}
[ -f "$DATA/base.vhdx" ] || bash "$ROOT/bench/make_disk.sh" "$DATA" >/dev/null
BLOCK_MIB=16   # qemu's default block size for this size, so both writers lay out alike
rm -rf "$WORK"; mkdir -p "$WORK"
trap 'rm -rf "$WORK"' EXIT
SIZE=$(stat -c %s "$DATA/base.raw")

# best OUT CMD...: run CMD $RUNS times, print the fastest wall time. OUT is an output file
# deleted before each run and after the last; "-" when there is none.
best() {
  local out=$1; shift; local b=999999 s e t
  for _ in $(seq "$RUNS"); do
    clean "$out"; s=$(date +%s.%N); "$@" >/dev/null; e=$(date +%s.%N)
    t=$(echo "$e - $s" | bc -l); b=$(echo "if ($t < $b) $t else $b" | bc -l)
  done
  clean "$out"
  echo "$b"
}
# Only ever delete files inside our scratch directory.
clean() { case "$1" in "$WORK"/*) rm -f "$1" ;; esac; }
mbps() { echo "scale=1; $SIZE / 1000000 / $1" | bc -l; }
row() { printf '%-48s %8.2f s %9s MB/s\n' "$1" "$2" "$(mbps "$2")"; }
ratio() { printf '%.2f' "$(echo "$1 / $2" | bc -l)"; }

cat "$DATA/base.raw" "$DATA/base.vhdx" >/dev/null   # warm the page cache for everyone alike
echo "disk: $DATA/base.vhdx ($(du -h --apparent-size "$DATA/base.vhdx" | cut -f1) file, $((SIZE / 1048576)) MiB virtual); best of $RUNS; load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "--- sequential read"
t_cat=$(best - cat "$DATA/base.vhdx");                                                   row "cat base.vhdx > /dev/null" "$t_cat"
t_qr=$(best "$WORK/q.raw" qemu-img convert -f vhdx -O raw "$DATA/base.vhdx" "$WORK/q.raw");      row "qemu-img convert -O raw (no flush)" "$t_qr"
t_qrw=$(best "$WORK/q.raw" qemu-img convert -t writeback -f vhdx -O raw "$DATA/base.vhdx" "$WORK/q.raw"); row "qemu-img convert -t writeback -O raw" "$t_qrw"
t_or=$(best "$WORK/o.raw" "$NODE" "$CLI" vhdx convert "$DATA/base.vhdx" "$WORK/o.raw");          row "hvbackup vhdx convert -> raw (flush at close)" "$t_or"
t_on=$(best - "$NODE" "$HERE/read-null.ts" "$DATA/base.vhdx");                           row "hvbackup read data extents -> /dev/null" "$t_on"
"$NODE" "$CLI" vhdx convert "$DATA/base.vhdx" "$WORK/o.raw" >/dev/null; qemu-img convert -f vhdx -O raw "$DATA/base.vhdx" "$WORK/q.raw"
cmp "$WORK/q.raw" "$WORK/o.raw" && echo "(raw outputs identical)"; rm -f "$WORK/q.raw" "$WORK/o.raw"
echo "--- sequential write (raw -> dynamic VHDX, ${BLOCK_MIB} MiB blocks)"
Q="-f raw -O vhdx -o subformat=dynamic,block_size=${BLOCK_MIB}M"
t_qw=$(best "$WORK/q.vhdx" qemu-img convert $Q "$DATA/base.raw" "$WORK/q.vhdx");                 row "qemu-img convert -O vhdx (no flush)" "$t_qw"
t_qwb=$(best "$WORK/q.vhdx" qemu-img convert -t writeback $Q "$DATA/base.raw" "$WORK/q.vhdx");   row "qemu-img convert -t writeback -O vhdx" "$t_qwb"
t_ow=$(best "$WORK/o.vhdx" "$NODE" "$CLI" vhdx convert "$DATA/base.raw" "$WORK/o.vhdx" --block-size $BLOCK_MIB); row "hvbackup vhdx convert -> vhdx (flush at close)" "$t_ow"
t_od=$(best "$WORK/od.vhdx" "$NODE" "$HERE/write-durable.ts" "$DATA/base.raw" "$WORK/od.vhdx" $BLOCK_MIB);    row "hvbackup -> vhdx, durable per 32 MiB call" "$t_od"
"$NODE" "$CLI" vhdx convert "$DATA/base.raw" "$WORK/o.vhdx" --block-size $BLOCK_MIB >/dev/null; qemu-img convert $Q "$DATA/base.raw" "$WORK/q.vhdx"
qemu-img compare -q -f raw -F vhdx "$DATA/base.raw" "$WORK/o.vhdx" && qemu-img check -q "$WORK/o.vhdx" && echo "(our vhdx: qemu-img compare + check pass; $(du -h --apparent-size "$WORK/o.vhdx" | cut -f1) vs qemu $(du -h --apparent-size "$WORK/q.vhdx" | cut -f1))"
echo "--- ratios (peer time / our time: >1 means we are faster)"
echo "read:  convert vs qemu(no flush) $(ratio "$t_qr" "$t_or"), vs qemu -t writeback $(ratio "$t_qrw" "$t_or"); read-null vs qemu(no flush) $(ratio "$t_qr" "$t_on"), vs cat $(ratio "$t_cat" "$t_on")"
echo "write: convert vs qemu(no flush) $(ratio "$t_qw" "$t_ow"), vs qemu -t writeback $(ratio "$t_qwb" "$t_ow"); durable-per-call vs qemu -t writeback $(ratio "$t_qwb" "$t_od")"
