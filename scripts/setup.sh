#!/usr/bin/env bash
# Installs everything imgr needs on a Debian machine: system tools from apt
# (nats-server, qemu-img, rsync, restic) when missing, then the npm packages
# exactly as locked. Safe to run again: it only installs what is absent.
set -euo pipefail
cd "$(dirname "$0")/.."

# command -> Debian package that provides it
declare -A tools=(
  [nats-server]=nats-server
  [qemu-img]=qemu-utils
  [rsync]=rsync
  [restic]=restic
  [curl]=curl
  [mkfs.ext4]=e2fsprogs
  # Headless browser for the dashboard's end-to-end test (driven by playwright-core).
  [chromium]=chromium
)

missing=()
for cmd in "${!tools[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${tools[$cmd]}")
done

if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  if [ "$(id -u)" -eq 0 ]; then
    as_root=()
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root=(sudo)
  else
    echo "setup: need root to install ${missing[*]}. Run:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${as_root[@]}" apt-get update -qq
  "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing npm packages (npm ci)"
  npm ci --no-audit --no-fund
fi
