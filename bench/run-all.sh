#!/usr/bin/env bash
# Every benchmark, each beside its peers in the same run; results under bench/results/.
# Not part of `npm test`: run when the machine is otherwise idle (`npm run bench`).
set -euo pipefail
cd "$(dirname "$0")/.."
node scripts/setup.mjs --no-powershell --bench
for b in vhdx backup restore archive crypto bridge; do
  echo "=== bench/$b"
  case $b in
    crypto) node_modules/.bin/node bench/crypto/run.ts && node_modules/.bin/node bench/crypto/backup.ts --size-mib 1024 --rounds 4 && bash bench/crypto/peers.sh ;;
    *) bash "bench/$b/run.sh" ;;
  esac
done
