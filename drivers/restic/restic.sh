# restic backup driver: one local repository per datastore at <BASE_PATH>/repo, its password
# from the datastore template (RESTIC_PASSWORD). Each backup is a restic snapshot of disk.0;
# restic's deduplication makes later ones incremental.
source "$(dirname "$(readlink -f "$0")")/../lib/backup.sh"

export RESTIC_PASSWORD="${IMGR_DS_TEMPLATE_RESTIC_PASSWORD:-}"
[[ -n "$RESTIC_PASSWORD" ]] || fail "RESTIC_PASSWORD is not set in the datastore template"
export RESTIC_REPOSITORY="$BASE_PATH/repo"
export RESTIC_CACHE_DIR="$BASE_PATH/.cache"
command -v restic >/dev/null || fail "restic is not installed"

# A restic snapshot id: hexadecimal, short or full.
require_snapshot() {
  [[ "$1" =~ ^[0-9a-f]{8,64}$ ]] || fail "Invalid restic snapshot id: $(shown "$1")"
}

ensure_repo() {
  [[ -f "$RESTIC_REPOSITORY/config" ]] && return 0
  mkdir -p -- "$BASE_PATH" && restic init -q >/dev/null 2>&1 || [[ -f "$RESTIC_REPOSITORY/config" ]] || fail "Cannot create restic repository $RESTIC_REPOSITORY"
}
