#!/bin/sh
# Peak memory (and time) of a backup and a restore of a 4 TiB sparse VHDX (issue 3: peak RSS
# <= 256 MiB whatever the disk size): a VM whose disk is `qemu-img create -f vhdx 4T` with
# GIB GiB of data (64 MiB pieces spread evenly over the 4 TiB) written by its guest, backed up
# into a new repository, changed (256 pieces of 256 KiB spread over the disk, tracked) and
# backed up again (an incremental), then restored; each CLI run under /usr/bin/time -v. Prints
# one line per operation. A benchmark, not a test: run it alone (it writes ~3 x GIB GiB under
# WORKDIR).
# Usage: bench/backup/large-disk.sh [WORKDIR] [GIB=2] [SIZE=4T] [CHUNK_SIZE]
#   PIECES=n     the data in n pieces (default 16 per GiB); 4096 puts data in every 1 GiB of a 4 TiB disk
#   HVB_ROOT=<another checkout> runs that checkout's CLI on the same data (before/after).
set -eu
HERE=$(cd "$(dirname "$0")/../.." && pwd)
ROOT=${HVB_ROOT:-$HERE}
NODE="$HERE/node_modules/.bin/node"
HVB="$NODE $ROOT/bin/hvbackup.js"
W=${1:-$(mktemp -d /tmp/hvb-large-XXXXXX)}
GIB=${2:-2}
SIZE=${3:-4T}
CS=${4:-}
mkdir -p "$W"
rm -rf "$W/vm" "$W/repo" "$W/restore" "$W/big.vhdx"
qemu-img create -q -f vhdx -o subformat=dynamic "$W/big.vhdx" "$SIZE"
"$NODE" "$HERE/bench/backup/make-vm.ts" "$W/vm" "$W/big.vhdx" big > /dev/null
rm "$W/big.vhdx"
"$NODE" "$HERE/bench/backup/large-disk-fill.ts" "$W/vm" "$GIB" "${PIECES:-}" > "$W/fill.json"
$HVB repo init "$W/repo" ${CS:+--chunk-size $CS} > /dev/null
figures() {  # figures OP STATUS TIMEFILE
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$3")
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$3")
  echo "$1: status=$2 peakRSS=$((rss / 1024)) MiB wall=$wall size=$SIZE data=${GIB}GiB chunk=${CS:-default} load=$(cut -d' ' -f1-3 /proc/loadavg) root=$ROOT"
}
sync
set +e
/usr/bin/time -v $HVB backup "$W/vm" --repo "$W/repo" --json > "$W/backup.out" 2> "$W/backup.time"
rc=$?
figures backup "$rc" "$W/backup.time"
if [ "$rc" -ne 0 ]; then grep -o '"error":{[^}]*}' "$W/backup.out" | head -1; exit 0; fi
"$NODE" "$HERE/bench/backup/large-disk-fill.ts" "$W/vm" 0.0625 256 8 > /dev/null
/usr/bin/time -v $HVB backup "$W/vm" --repo "$W/repo" --json > "$W/incr.out" 2> "$W/incr.time"
rc=$?
figures "incremental ($(grep -o '"method":"[a-z-]*"' "$W/incr.out" | tail -1 | cut -d'"' -f4))" "$rc" "$W/incr.time"
/usr/bin/time -v $HVB restore latest --repo "$W/repo" --vm big --to "$W/restore" > "$W/restore.out" 2> "$W/restore.time"
rc=$?
figures restore "$rc" "$W/restore.time"
set -e
# Byte-compare the restored disk with the source over every data extent of either (the holes
# read as zeros in both by their BATs; qemu-img compare would read 4 TiB of holes).
"$NODE" --input-type=module -e "
import { openDisk } from '$HERE/core/vhdx/index.ts';
const [a, b] = await Promise.all(['$W/restore/Virtual Hard Disks/big.vhdx', '$W/vm/Virtual Hard Disks/big.vhdx'].map((p) => openDisk(p)));
let bytes = 0;
for (const e of [...await a.extents(), ...await b.extents()].filter((x) => x.kind === 'data')) {
  for (let off = e.offset; off < e.offset + e.length; off += 8 << 20) {
    const n = Math.min(8 << 20, e.offset + e.length - off), x = Buffer.alloc(n), y = Buffer.alloc(n);
    await a.read(x, off); await b.read(y, off); bytes += n;
    if (!x.equals(y)) { console.log('restore: DIFFERENT at', off); process.exit(1); }
  }
}
console.log('restore: IDENTICAL (' + bytes + ' bytes of data extents compared)');
"
rm -rf "$W/vm" "$W/repo" "$W/restore"
