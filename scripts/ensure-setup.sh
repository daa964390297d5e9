#!/usr/bin/env bash
# Fast pre-flight for `npm test` / `npm start`: runs the full set-up only when
# something it installs is missing, so the common case costs a few stat calls.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/tools.sh
source scripts/tools.sh
for cmd in qemu-img rsync restic curl mkfs.ext4 ruby chromium; do
  if ! command -v "$cmd" >/dev/null 2>&1; then exec bash scripts/setup.sh; fi
done
find_nats_server >/dev/null || exec bash scripts/setup.sh
find_node_dir >/dev/null || exec bash scripts/setup.sh
[ -x "$IMGR_OLD_NATS_SERVER" ] || exec bash scripts/setup.sh
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  exec bash scripts/setup.sh
fi
