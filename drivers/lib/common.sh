# Shared helpers for imgr's bundled drivers (bash).
#
# The driver host passes the DS_DRIVER_ACTION_DATA document (base64) on stdin,
# as OpenNebula does, and the same facts as IMGR_* environment variables, which
# these drivers use instead of parsing XML.

set -o pipefail

# The user-facing reason goes on a plain stderr line (driver-contract §7).
fail() {
  echo "$*" >&2
  exit 1
}

log_info() { echo "INFO: ${0##*/}: $*" >&2; }
log_error() { echo "ERROR: ${0##*/}: $*" >&2; }

# Read (and drop) the payload so the host never writes into a closed pipe.
drain_stdin() { cat >/dev/null || true; }

# Size in MiB, rounded up, of a byte count.
to_mib() { echo $(( ($1 + 1048575) / 1048576 )); }

# Is $1 inside directory $2 (both absolute)?
is_under() {
  local p="${1%/}/" d="${2%/}/"
  [[ "$d" == "/" || "$p" == "$d"* ]]
}
