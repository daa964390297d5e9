#!/usr/bin/env bash
# Runs a command with the Node imgr runs on first on PATH: the project's
# .tools/node when setup put one there, else the machine's (which then must
# be Node >= 22). Everything that starts with `#!/usr/bin/env node` (tsx,
# tsc, eslint, vitest) and every child spawned with process.execPath follows.
set -euo pipefail
# shellcheck source=scripts/tools.sh
source "$(dirname "${BASH_SOURCE[0]}")/tools.sh"
if ! dir="$(find_node_dir)"; then
  echo "imgr needs Node >= $IMGR_NODE_MIN_MAJOR (found $(node --version 2>/dev/null || echo none)); run: bash scripts/setup.sh" >&2
  exit 1
fi
export PATH="$dir:$PATH"
# A young generation of at most 16 MB per semi-space: a boot over a pool allocates fast enough that V8
# grew it to over 100 MB, and the process kept that memory resident after (a manager over 20,000 images:
# 211 MB resident by default, 167 MB with this; BENCHMARKS.md, memory per idle image).
export NODE_OPTIONS="--max-semi-space-size=16${NODE_OPTIONS:+ $NODE_OPTIONS}"
exec "$@"
