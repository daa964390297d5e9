# Helpers shared by the rsync and restic backup drivers.
# shellcheck source=common.sh
source "$(dirname "$(readlink -f "$0")")/../lib/common.sh"

BASE_PATH="${IMGR_DS_BASE_PATH:?BASE_PATH missing}"
require_path BASE_PATH "$BASE_PATH"
VM_ID="${IMGR_EXTRA_VM_ID:-${IMGR_IMAGE_VM_ID:-0}}"
require_int VM_ID "$VM_ID"

# The increments of the backup image as "id source" lines; a full backup is one increment, its SOURCE.
# Every id is an integer and every source a plain name (require_name), or nothing is listed.
increments() {
  local list id src
  if [[ -n "${IMGR_IMAGE_INCREMENTS:-}" ]]; then
    list="$(tr ',' '\n' <<<"$IMGR_IMAGE_INCREMENTS" | sed 's/:/ /')"
  elif [[ -n "${IMGR_IMAGE_SOURCE:-}" ]]; then
    list="0 $IMGR_IMAGE_SOURCE"
  fi
  [[ -n "${list:-}" ]] || return 0
  while read -r id src; do
    require_int "increment id" "$id"
    require_name "backup source" "$src"
  done <<<"$list"
  echo "$list"
}

# The source of the increment a restore wants: INCREMENT_ID, else the last one.
restore_source() {
  local want="${IMGR_EXTRA_INCREMENT_ID:-}" id src last="" list
  [[ -z "$want" ]] || require_int INCREMENT_ID "$want"
  list="$(increments)" || exit 1
  while read -r id src; do
    [[ -z "$want" || "$id" == "$want" ]] && last="$src"
    [[ "$id" == "$want" ]] && break
  done <<<"$list"
  [[ -n "$last" ]] || fail "Increment ${want:-last} not found in backup image ${IMGR_IMAGE_ID:-}"
  echo "$last"
}

# Where restored disks wait for the destination datastore to copy them in.
staging_dir() {
  require_name "request id" "${IMGR_REQUEST_ID:-}"
  local d="$BASE_PATH/.restore/$IMGR_REQUEST_ID"
  mkdir -p -- "$d" || fail "Cannot create $d"
  echo "$d"
}

size_mb_of() { to_mib "$(stat -c %s -- "$1")"; }
# The size a restored disk has for its VM: a qcow2's virtual size (a 64 MB
# qcow2 may take 1 MB on disk), else the file's size. Nobody has inspected a
# restored disk yet (the driver host does once this prints it), so qemu-img
# reads it only as a qcow2, whose header it reads without opening any file it names.
virtual_mb_of() {
  local v=""
  [[ "$(content_format "$1")" == qcow2 ]] && v="$(virtual_bytes "$1" qcow2)"
  to_mib "${v:-$(stat -c %s -- "$1")}"
}

# keep_last: KEEP_LAST as an integer.
keep_last() {
  local k="${IMGR_EXTRA_KEEP_LAST:-}"
  require_int KEEP_LAST "$k"
  echo "$k"
}
