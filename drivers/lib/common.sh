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

# qemu-img never guesses a format here: every call names it (-f), taken from the
# driver host's inspection of the file (IMGR_IMAGE_PATH_FORMAT), the image
# record (IMGR_IMAGE_FORMAT), or the file the driver made itself. A guess from
# content would let a file claim a format, and a format opens its references.

# qemu_format NAME: the -f name of a format an image record or the host names (vhd is vpc; an ISO or
# LUKS container is read as raw); fails for anything that is no disk format.
qemu_format() {
  case "$1" in
    raw|iso|luks) echo raw ;;
    qcow2|qed|vmdk|vhdx|vdi) echo "$1" ;;
    vpc|vhd) echo vpc ;;
    *) fail "Unknown image format $(shown "$1")" ;;
  esac
}

# content_format FILE: the format of a file by its first bytes, for a file no inspection has named (a
# download made by the driver itself); the driver host inspects what the action made before it is used.
content_format() {
  case "$(head -c 8 -- "$1" 2>/dev/null | od -An -tx1 | tr -d ' \n')" in
    514649fb*) echo qcow2 ;;
    51454400*) echo qed ;;
    4b444d56*) echo vmdk ;;
    636f6e6563746978) echo vpc ;;
    7668647866696c65) echo vhdx ;;
    4c554b53babe*) echo luks ;;
    *) echo raw ;;
  esac
}

# virtual_bytes FILE FORMAT: the virtual size qemu-img reads from FILE as FORMAT, without following
# anything it names (-U: a disk in use is read too).
virtual_bytes() { qemu-img info -U --output=json -f "$2" -- "$1" 2>/dev/null | sed -n 's/^ *"virtual-size": *\([0-9]*\).*/\1/p' | head -1; }

# no_references FILE FORMAT: refuses a qcow2 or QED image that names another file (a backing file, an
# external data file): qemu-img info reads its header without opening them. The driver host inspected
# the file before the action; this holds for a file changed since, and for a driver run without the host.
no_references() {
  local info
  [[ "$2" == qcow2 || "$2" == qed ]] || return 0
  info="$(qemu-img info -U --output=json -f "$2" -- "$1" 2>/dev/null)" || fail "Cannot read $1 as $2"
  if grep -Eq '"(backing-filename|data-file)"' <<<"$info"; then
    fail "Image $1 refused: it names another file (images are data, never references)"
  fi
}

# The host passes the image (or, to MONITOR, the datastore) id as the first argument; -1 when none.
[[ -z "${1:-}" || "$1" =~ ^-?[0-9]{1,18}$ ]] || fail "Invalid id argument: $(shown "$1")"
