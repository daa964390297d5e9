# Helpers of the fs datastore driver: files under the datastore's BASE_PATH.
# shellcheck source=../lib/common.sh
source "$(dirname "$(readlink -f "$0")")/../lib/common.sh"

BASE_PATH="${IMGR_DS_BASE_PATH:?BASE_PATH missing}"
require_path BASE_PATH "$BASE_PATH"
IMAGE_ID="${1:?image id argument missing}"

# Destination of a new image: BASE_PATH/<md5 of "<epoch>:<id>">, as the reference does.
# Named after the request: a request run again (its driver host died, the
# script survived it) writes the same file instead of leaving one behind.
new_destination() {
  mkdir -p "$BASE_PATH" || fail "Cannot create datastore directory $BASE_PATH"
  echo "$BASE_PATH/$(printf '%s:%s' "${IMGR_REQUEST_ID:-$(date +%s%N)}" "$IMAGE_ID" | md5sum | cut -d' ' -f1)"
}

# Snapshots of this driver are qcow2's own (internal): the image's format must be qcow2 (a record
# without a format is taken as one); prints the -f name.
snapshot_format() {
  local f="${IMGR_IMAGE_FORMAT:-qcow2}"
  [[ "$f" == qcow2 ]] || fail "Snapshots of $1 need a qcow2 image, its format is $(shown "$f")"
  echo qcow2
}
# qemu-img snapshot takes no -f: the format is named in its image options (a comma in a name is doubled).
image_opts() { printf 'driver=%s,file.driver=file,file.filename=%s' "$1" "${2//,/,,}"; }

# Local paths must not come from restricted directories unless they are in a safe one.
# check_restricted PATH [SHOWN]: PATH is resolved here (a /proc/self/fd/N link resolves to the file that
# descriptor has open, which is what cp copies); SHOWN names it in the refusal (PATH by default).
check_restricted() {
  local path d restricted safe shown_as="${2:-$1}"
  path="$(readlink -f -- "$1")" || fail "Cannot access $shown_as"
  # read -a splits on blanks without expanding globs.
  read -r -a restricted <<<"${IMGR_DS_TEMPLATE_RESTRICTED_DIRS:-/}"
  read -r -a safe <<<"${IMGR_DS_TEMPLATE_SAFE_DIRS:-/var/tmp}"
  for d in "${safe[@]}"; do [[ "$d" == /* ]] && is_under "$path" "$d" && return 0; done
  for d in "${restricted[@]}"; do
    is_under "$path" "$d" && fail "Not allowed to copy image from $shown_as, check RESTRICTED_DIRS in your datastore"
  done
  return 0
}

# Sources are only ever touched inside this datastore.
check_source() {
  [[ -n "$1" && "$1" != *$'\n'* && "$(dirname -- "$1")" == "${BASE_PATH%/}" && "${1##*/}" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]*$ ]] ||
    fail "Bad formed or unavailable Image source: $(shown "$1")"
}
