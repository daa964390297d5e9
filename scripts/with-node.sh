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
exec "$@"
