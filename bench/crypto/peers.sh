#!/usr/bin/env bash
# Encryption cost beside borg's, on the same 2 GiB benchmark disk in one run: HVBackup
# unencrypted vs encrypted (AES-256-GCM, HMAC ids) and borg none vs repokey-blake2 (zstd,1),
# full backups into fresh repositories, best of ROUNDS; prints each tool's encrypted/plain ratio.
# Usage: bench/crypto/peers.sh [ROUNDS=2]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
NODE="$ROOT/node_modules/.bin/node"
CLI="$ROOT/bin/hvbackup.js"
SRC="$ROOT/bench/data/base.raw"
ROUNDS=${1:-2}
node "$ROOT/scripts/setup.mjs" --no-powershell --bench --quiet   # npm packages, qemu-img, the peers
[ -f "$SRC" ] || bash "$ROOT/bench/make_disk.sh" "$ROOT/bench/data" >/dev/null
WORK=$(mktemp -d /tmp/hvb-bench-crypto-peers.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
export HVBACKUP_PASSWORD=peerbench BORG_PASSPHRASE=peerbench BORG_BASE_DIR="$WORK/borg-home" \
  BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
cat "$SRC" >/dev/null   # warm the page cache for everyone alike

secs() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N); echo "$e - $s" | bc -l; }
best() { # best NAME INIT... -- RUN...: fresh repository per round
  local name=$1; shift; local b=999999 t
  for r in $(seq "$ROUNDS"); do
    rm -rf "$WORK/repo"
    case $name in
      hvb-plain) "$NODE" "$CLI" repo init "$WORK/repo" >/dev/null; t=$(secs "$NODE" "$CLI" backup "$SRC" --repo "$WORK/repo") ;;
      hvb-enc)   "$NODE" "$CLI" repo init "$WORK/repo" --encrypt >/dev/null; t=$(secs "$NODE" "$CLI" backup "$SRC" --repo "$WORK/repo") ;;
      borg-none) borg init --encryption=none "$WORK/repo" >/dev/null 2>&1; t=$(secs borg create --compression zstd,1 "$WORK/repo::full" "$SRC") ;;
      borg-blake2) borg init --encryption=repokey-blake2 "$WORK/repo" >/dev/null 2>&1; t=$(secs borg create --compression zstd,1 "$WORK/repo::full" "$SRC") ;;
    esac
    b=$(echo "if ($t < $b) $t else $b" | bc -l)
  done
  echo "$b"
}
SIZE=$(stat -c %s "$SRC")
mbps() { echo "scale=0; $SIZE / 1000000 / $1" | bc -l; }
echo "disk: $SRC ($((SIZE / 1048576)) MiB); best of $ROUNDS; load: $(cut -d' ' -f1-3 /proc/loadavg)"
hp=$(best hvb-plain); he=$(best hvb-enc); bp=$(best borg-none); be=$(best borg-blake2)
printf '%-34s %6.2f s %6s MB/s\n' "hvbackup, unencrypted" "$hp" "$(mbps "$hp")" "hvbackup, encrypted" "$he" "$(mbps "$he")" \
  "borg, none" "$bp" "$(mbps "$bp")" "borg, repokey-blake2" "$be" "$(mbps "$be")"
printf 'encrypted/plain throughput: hvbackup %.0f %%, borg %.0f %% (goal for ours: >= 85 %%)\n' "$(echo "100 * $hp / $he" | bc -l)" "$(echo "100 * $bp / $be" | bc -l)"
printf 'hvbackup encrypted vs borg repokey-blake2: %.2fx\n' "$(echo "$be / $he" | bc -l)"
