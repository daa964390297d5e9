#!/usr/bin/env bash
# The three-node NATS cluster of nats-cluster/ on this machine:
#   scripts/cluster.sh start    start it in the background (stores under .data/cluster)
#   scripts/cluster.sh status   which nodes run
#   scripts/cluster.sh stop     stop it
# Then run imgr on it: NATS_URL=<the URLs start prints> npm start
set -euo pipefail
root="$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)"
bash "$root/scripts/ensure-setup.sh"
exec bash "$root/scripts/with-node.sh" node --import "file://$root/node_modules/tsx/dist/loader.mjs" "$root/src/cluster.ts" "$@"
