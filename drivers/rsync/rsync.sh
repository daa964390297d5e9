# rsync backup driver: each backup is a directory <BASE_PATH>/<vm>/<backup id>/ holding disk.0;
# increments are hard-linked to their parent when unchanged (rsync --link-dest --checksum: content,
# not size and mtime, decides), so each one is complete.
# RSYNC_HOST (with RSYNC_USER) names a remote target reached over ssh; empty or "localhost" is local.
source "$(dirname "$(readlink -f "$0")")/../lib/backup.sh"

RSYNC_HOST="${IMGR_DS_TEMPLATE_RSYNC_HOST:-}"
RSYNC_USER="${IMGR_DS_TEMPLATE_RSYNC_USER:-oneadmin}"
is_local() { [[ -z "$RSYNC_HOST" || "$RSYNC_HOST" == "localhost" || "$RSYNC_HOST" == "127.0.0.1" ]]; }
target() { if is_local; then echo "$1"; else echo "$RSYNC_USER@$RSYNC_HOST:$1"; fi; }
on_target() { if is_local; then bash -c "$1"; else ssh -o BatchMode=yes "$RSYNC_USER@$RSYNC_HOST" "$1"; fi; }
