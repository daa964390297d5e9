# Helpers shared by the rsync and restic backup drivers.
# shellcheck source=common.sh
source "$(dirname "$(readlink -f "$0")")/../lib/common.sh"

BASE_PATH="${IMGR_DS_BASE_PATH:?BASE_PATH missing}"
VM_ID="${IMGR_EXTRA_VM_ID:-${IMGR_IMAGE_VM_ID:-0}}"

# The increments of the backup image as "id source" lines; a full backup is one increment, its SOURCE.
increments() {
  if [[ -n "${IMGR_IMAGE_INCREMENTS:-}" ]]; then
    tr ',' '\n' <<<"$IMGR_IMAGE_INCREMENTS" | sed 's/:/ /'
  elif [[ -n "${IMGR_IMAGE_SOURCE:-}" ]]; then
    echo "0 $IMGR_IMAGE_SOURCE"
  fi
}

# The source of the increment a restore wants: INCREMENT_ID, else the last one.
restore_source() {
  local want="${IMGR_EXTRA_INCREMENT_ID:-}" id src last=""
  while read -r id src; do
    [[ -z "$want" || "$id" == "$want" ]] && last="$src"
    [[ "$id" == "$want" ]] && break
  done < <(increments)
  [[ -n "$last" ]] || fail "Increment ${want:-last} not found in backup image ${IMGR_IMAGE_ID:-}"
  echo "$last"
}

# Where restored disks wait for the destination datastore to copy them in.
staging_dir() {
  local d="$BASE_PATH/.restore/${IMGR_REQUEST_ID:?request id missing}"
  mkdir -p "$d" || fail "Cannot create $d"
  echo "$d"
}

size_mb_of() { to_mib "$(stat -c %s "$1")"; }
