#!/bin/bash
# VHDX library benchmark: sequential read and write of a 2 GiB dynamic VHDX (seeded,
# ~40% zeros) against qemu-img convert and cat, in one run. Prints MB/s (logical
# 2 GiB / wall time) and our ratio to each peer. Our writes flush twice per write call
# (log transaction); qemu-img convert's default cache mode (unsafe) never flushes, so
# it is also timed with -t writeback, where its per-allocation log flushes are real.
# Our times include Node start-up and loading the CLI (about 0.3-1 s on this box).
# Usage: bench/vhdx/run.sh [WORKDIR=/tmp/hvb-bench-vhdx]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
NODE="$ROOT/node_modules/.bin/node"
CLI="$ROOT/core/cli/main.ts"
DATA="$ROOT/bench/data"
WORK=${1:-/tmp/hvb-bench-vhdx}
[ -f "$DATA/base.vhdx" ] || bash "$ROOT/bench/make_disk.sh" "$DATA" >/dev/null
# qemu's default block size for this size, so both writers produce the same layout.
BLOCK_MIB=16
rm -rf "$WORK"; mkdir -p "$WORK"
trap 'rm -rf "$WORK"' EXIT
SIZE=$(stat -c %s "$DATA/base.raw")

secs() { local s e; s=$(date +%s.%N); "$@" >/dev/null; e=$(date +%s.%N); echo "$e - $s" | bc -l; }
mbps() { echo "scale=1; $SIZE / 1000000 / $1" | bc -l; }
row() { printf '%-44s %8.2f s %9s MB/s\n' "$1" "$2" "$(mbps "$2")"; }

cat "$DATA/base.raw" "$DATA/base.vhdx" >/dev/null   # warm the page cache for everyone alike
echo "disk: $DATA/base.vhdx ($(du -h --apparent-size "$DATA/base.vhdx" | cut -f1) file, $((SIZE / 1048576)) MiB virtual)"
echo "--- sequential read"
t_cat=$(secs cat "$DATA/base.vhdx");                                        row "cat base.vhdx > /dev/null" "$t_cat"
t_qr=$(secs qemu-img convert -f vhdx -O raw "$DATA/base.vhdx" "$WORK/q.raw"); row "qemu-img convert -O raw" "$t_qr"
t_or=$(secs "$NODE" "$CLI" vhdx convert "$DATA/base.vhdx" "$WORK/o.raw");   row "hvbackup vhdx convert (vhdx -> raw)" "$t_or"
t_on=$(secs "$NODE" "$HERE/read-null.ts" "$DATA/base.vhdx");               row "hvbackup read data extents -> /dev/null" "$t_on"
cmp "$WORK/q.raw" "$WORK/o.raw" && echo "(raw outputs identical)"
echo "--- sequential write"
t_qw=$(secs qemu-img convert -f raw -O vhdx -o subformat=dynamic,block_size=${BLOCK_MIB}M "$DATA/base.raw" "$WORK/q.vhdx"); row "qemu-img convert -O vhdx" "$t_qw"
t_qwb=$(secs qemu-img convert -t writeback -f raw -O vhdx -o subformat=dynamic,block_size=${BLOCK_MIB}M "$DATA/base.raw" "$WORK/qwb.vhdx"); row "qemu-img convert -t writeback -O vhdx" "$t_qwb"
t_ow=$(secs "$NODE" "$CLI" vhdx convert "$DATA/base.raw" "$WORK/o.vhdx" --block-size $BLOCK_MIB); row "hvbackup vhdx convert (raw -> vhdx)" "$t_ow"
qemu-img compare -q -f raw -F vhdx "$DATA/base.raw" "$WORK/o.vhdx" && qemu-img check -q "$WORK/o.vhdx" && echo "(our vhdx: qemu-img compare + check pass; $(du -h --apparent-size "$WORK/o.vhdx" | cut -f1) vs qemu $(du -h --apparent-size "$WORK/q.vhdx" | cut -f1))"
echo "--- ratios (>1 means we are faster)"
printf 'read:  ours(convert) / qemu-img = %.2f   ours(read-null) / qemu-img = %.2f   ours(read-null) / cat = %.2f\n' \
  "$(echo "$t_qr / $t_or" | bc -l)" "$(echo "$t_qr / $t_on" | bc -l)" "$(echo "$t_cat / $t_on" | bc -l)"
printf 'write: ours / qemu-img (default cache=unsafe: no flushes) = %.2f   ours / qemu-img -t writeback (flushes like we do) = %.2f\n' \
  "$(echo "$t_qw / $t_ow" | bc -l)" "$(echo "$t_qwb / $t_ow" | bc -l)"
