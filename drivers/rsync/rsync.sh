# rsync backup driver: each backup is a directory <BASE_PATH>/<vm>/<backup id>/ holding disk.0;
# increments are hard-linked to their parent when unchanged (rsync --link-dest --checksum: content,
# not size and mtime, decides), so each one is complete.
# RSYNC_HOST (with RSYNC_USER) names a remote target reached over ssh; empty or "localhost" is local.
source "$(dirname "$(readlink -f "$0")")/../lib/backup.sh"

RSYNC_HOST="${IMGR_DS_TEMPLATE_RSYNC_HOST:-}"
RSYNC_USER="${IMGR_DS_TEMPLATE_RSYNC_USER:-oneadmin}"
[[ -z "$RSYNC_HOST" || "$RSYNC_HOST" =~ ^[A-Za-z0-9][A-Za-z0-9.:-]{0,252}$ ]] || fail "Invalid RSYNC_HOST: $(shown "$RSYNC_HOST")"
[[ "$RSYNC_USER" =~ ^[a-z_][a-z0-9_-]{0,31}$ ]] || fail "Invalid RSYNC_USER: $(shown "$RSYNC_USER")"
is_local() { [[ -z "$RSYNC_HOST" || "$RSYNC_HOST" == "localhost" || "$RSYNC_HOST" == "127.0.0.1" ]]; }
target() { if is_local; then echo "$1"; else echo "$RSYNC_USER@$RSYNC_HOST:$1"; fi; }

# on_target CMD ARG...: runs one command with its arguments where the backups are. Locally it
# runs as it is; over ssh each word is quoted for the remote shell (printf %q), so no value
# can become shell syntax there.
on_target() {
  if is_local; then
    "$@"
  else
    ssh -o BatchMode=yes -- "$RSYNC_USER@$RSYNC_HOST" "$(printf '%q ' "$@")"
  fi
}

# The newest backup id of the VM, or nothing.
newest_backup() {
  local names
  names="$(on_target find "$BASE_PATH/$VM_ID" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' 2>/dev/null)" || return 0
  grep -E '^[A-Za-z0-9_][A-Za-z0-9_.-]*$' <<<"$names" | sort | tail -1
}
