#!/usr/bin/env bash
# Installs everything imgr needs on a Debian machine, and only what is
# missing, so it is safe to run again:
#   - system tools from apt (qemu-img, rsync, restic, curl, mkfs.ext4, ruby
#     for OpenNebula's own drivers, chromium for the dashboard's test);
#   - nats-server >= 2.12: Debian testing's build, downloaded (not installed:
#     its post-install script needs a newer systemd than Debian 12's) and
#     unpacked into .tools/nats-server with a private apt configuration that
#     leaves the system's untouched;
#   - Node 24 from the npm registry into .tools/node when the machine's Node
#     is older than 22;
#   - the npm packages exactly as locked.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/tools.sh
source scripts/tools.sh

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo "$@"
  else
    return 77
  fi
}

# --- system tools ------------------------------------------------------------
# command -> Debian package that provides it
declare -A tools=(
  [qemu-img]=qemu-utils
  [rsync]=rsync
  [restic]=restic
  [curl]=curl
  [mkfs.ext4]=e2fsprogs
  [ruby]=ruby
  [chromium]=chromium
)
missing=()
for cmd in "${!tools[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${tools[$cmd]}")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  rc=0
  { as_root apt-get update -qq && as_root apt-get install -y -qq --no-install-recommends "${missing[@]}"; } || rc=$?
  if [ "$rc" -eq 77 ]; then
    echo "setup: need root to install ${missing[*]}. Run:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  elif [ "$rc" -ne 0 ]; then
    exit "$rc"
  fi
fi

# --- nats-server ---------------------------------------------------------------
# debian_source: prints "<URI> <keyring>" of the machine's own Debian archive
# (the apt source that carries this release's codename), deb822 or one-line.
debian_source() {
  local codename
  codename="$(. /etc/os-release && echo "${VERSION_CODENAME:-}")"
  [ -n "$codename" ] || return 1
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk -v want="$codename" 'BEGIN { RS = ""; FS = "\n" }
      {
        uri = ""; suites = ""; key = ""; types = ""; enabled = "yes"
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^URIs:/) { uri = $i; sub(/^URIs:[ \t]*/, "", uri); sub(/[ \t].*/, "", uri) }
          if ($i ~ /^Suites:/) { suites = " " $i " "; sub(/^ Suites:/, "", suites) }
          if ($i ~ /^Signed-By:/) { key = $i; sub(/^Signed-By:[ \t]*/, "", key) }
          if ($i ~ /^Types:/) types = $i
          if ($i ~ /^Enabled:[ \t]*no/) enabled = "no"
        }
        if (enabled == "yes" && types ~ /[ \t]deb([ \t]|$)/ && uri != "" && suites ~ ("[ \t]" want "[ \t]")) { print uri, key; exit }
      }' "$f"
  done | head -n1 | grep . && return 0
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    awk -v want="$codename" '$1 == "deb" {
        n = 2; key = ""
        if ($2 ~ /^\[/) { while ($n !~ /\]$/) { if ($n ~ /signed-by=/) { key = $n; sub(/.*signed-by=/, "", key); sub(/\]$/, "", key) } n++ }
                          if ($n ~ /signed-by=/) { key = $n; sub(/.*signed-by=/, "", key); sub(/\]$/, "", key) } n++ }
        if ($(n + 1) == want) { print $n, key; exit }
      }' "$f"
  done | head -n1 | grep .
}

# fetch_nats_server SUITE DEST: downloads the nats-server package of a Debian
# suite from the machine's own mirror and unpacks it into DEST.
fetch_nats_server() {
  local suite="$1" dest="$2" src uri key work deb
  if ! src="$(debian_source)"; then
    return 1
  fi
  uri="${src%% *}"
  key="${src#* }"
  [ "$key" = "$uri" ] && key=""
  [ -n "$key" ] || key=/usr/share/keyrings/debian-archive-keyring.gpg
  work="$IMGR_TOOLS/apt"
  rm -rf "$work"
  mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/empty"
  echo "deb [signed-by=$key] $uri $suite main" >"$work/sources.list"
  local apt_opts=(
    -o "Dir::Etc::SourceList=$work/sources.list" -o "Dir::Etc::SourceParts=$work/empty"
    -o "Dir::Etc::PreferencesParts=$work/empty" -o "Dir::Etc::Preferences=$work/empty/none"
    -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache"
    -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache=" -o "Dir::State::status=/dev/null"
    -o "Debug::NoLocking=1" -o "APT::Sandbox::User=$(id -un)"
  )
  echo "setup: fetching nats-server from Debian $suite ($uri) into ${dest#"$IMGR_ROOT"/}"
  apt-get "${apt_opts[@]}" -qq update
  (cd "$work" && apt-get "${apt_opts[@]}" -qq download nats-server)
  deb="$(ls "$work"/nats-server_*.deb | head -n1)"
  rm -rf "$dest"
  dpkg-deb -x "$deb" "$dest"
  rm -rf "$work"
}

if ! nats_bin="$(find_nats_server)"; then
  if ! fetch_nats_server testing "$IMGR_TOOLS/nats-server" || ! nats_bin="$(find_nats_server)"; then
    cat >&2 <<MSG
setup: could not get nats-server >= $IMGR_NATS_MIN. Either put any official
nats-server release >= $IMGR_NATS_MIN on PATH (or name it in IMGR_NATS_SERVER), or
fetch Debian testing's build by hand (replace MIRROR with your Debian mirror):
  mkdir -p .tools/apt/lists/partial .tools/apt/cache/archives/partial
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] MIRROR testing main" > .tools/apt/sources.list
  O="-o Dir::Etc::SourceList=\$PWD/.tools/apt/sources.list -o Dir::Etc::SourceParts=/dev/null -o Dir::State::Lists=\$PWD/.tools/apt/lists -o Dir::Cache=\$PWD/.tools/apt/cache -o Dir::State::status=/dev/null -o Debug::NoLocking=1"
  apt-get \$O update && (cd .tools/apt && apt-get \$O download nats-server)
  dpkg-deb -x .tools/apt/nats-server_*.deb .tools/nats-server
MSG
    exit 1
  fi
fi
echo "setup: nats-server $(nats_server_version "$nats_bin") ($nats_bin)"

# The store-upgrade test opens a store written by Debian 12's nats-server
# 2.9, the one imgr ran on before; only tests use it.
if [ ! -x "$IMGR_OLD_NATS_SERVER" ]; then
  codename="$(. /etc/os-release && echo "${VERSION_CODENAME:-}")"
  fetch_nats_server "$codename" "$IMGR_TOOLS/nats-server-old" ||
    echo "setup: no older nats-server for the store-upgrade test; that test will fail" >&2
fi

# --- Node ------------------------------------------------------------------------
if ! node_dir="$(find_node_dir)"; then
  case "$(uname -m)" in
    x86_64) pkg="${IMGR_NODE_PACKAGE/x64/x64}" ;;
    aarch64) pkg="${IMGR_NODE_PACKAGE/x64/arm64}" ;;
    *) echo "setup: no Node package for $(uname -m); install Node >= $IMGR_NODE_MIN_MAJOR" >&2; exit 1 ;;
  esac
  echo "setup: the machine's Node is $(node --version 2>/dev/null || echo absent); fetching $pkg into .tools/node"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "$pkg" >/dev/null)
  rm -rf "$IMGR_TOOLS/node"
  mkdir -p "$IMGR_TOOLS/node"
  tar -xzf "$tmp"/*.tgz -C "$IMGR_TOOLS/node" --strip-components=1
  node_dir="$(find_node_dir)" || { echo "setup: $pkg did not give a runnable Node" >&2; exit 1; }
fi
echo "setup: Node $("$node_dir/node" --version) ($node_dir/node)"

# --- npm packages ------------------------------------------------------------------
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing npm packages (npm ci)"
  PATH="$node_dir:$PATH" npm ci --no-audit --no-fund
fi
