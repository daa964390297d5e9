# Shared helpers for imgr's bundled drivers (bash).
#
# The driver host passes the DS_DRIVER_ACTION_DATA document (base64) on stdin,
# as OpenNebula does, and the same facts as IMGR_* environment variables, which
# these drivers use instead of parsing XML.

set -o pipefail

# What drivers write is the cloud's and its administrators' only: images 0640
# in 0750 folders, never world-readable.
umask 027

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

# Values from documents are data, never code or options. Each is checked
# against a strict form before a tool sees it, and reaches the tool as its own
# argument (after `--` where the tool reads options); nothing is ever built
# into a shell or ssh command string.

# What a refusal quotes of a hostile value: printable, and short.
shown() { printf '%q' "${1:0:120}"; }

# require_int NAME VALUE: a non-negative integer of at most 18 digits.
require_int() {
  [[ "$2" =~ ^[0-9]{1,18}$ ]] || fail "Invalid $1: $(shown "$2")"
}

# require_name NAME VALUE: a plain file or id name (letters, digits, _ . -), not starting with . or -.
require_name() {
  [[ "$2" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || fail "Invalid $1: $(shown "$2")"
}

# require_path NAME VALUE: an absolute path of one line with no ".." component.
require_path() {
  local v="$2"
  [[ "$v" == /* && ${#v} -le 4096 && "$v" != *$'\n'* && "/$v/" != */../* ]] || fail "Invalid $1: $(shown "$v")"
}

# The host passes the image (or, to MONITOR, the datastore) id as the first argument; -1 when none.
[[ -z "${1:-}" || "$1" =~ ^-?[0-9]{1,18}$ ]] || fail "Invalid id argument: $(shown "$1")"
