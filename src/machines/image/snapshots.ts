import type { Snapshot, SnapshotList } from '../../messages/image-record.js';
import { rejection, type Rejection } from '../../messages/errors.js';

export const findSnapshot = (l: SnapshotList, id: number): Snapshot | undefined => l.list.find((s) => s.id === id);

/** §7.11 deletion test. */
export function snapshotDeletionError(l: SnapshotList, id: number): Rejection | undefined {
  const s = findSnapshot(l, id);
  if (s === undefined) return rejection('IMG_ERR_SNAP_NOT_FOUND');
  if (l.mode === 'DENY' || l.mode === 'MIXED') {
    if (s.active) return rejection('IMG_ERR_SNAP_ACTIVE');
    if (s.children.length > 0) return rejection('IMG_ERR_SNAP_CHILDREN');
  }
  return undefined;
}

/** §7.11 delete effect: remove the entry, re-link its children to its parent, pass on "active". */
export function deleteSnapshot(l: SnapshotList, id: number): SnapshotList {
  const gone = findSnapshot(l, id);
  if (gone === undefined) return l;
  const list = l.list
    .filter((s) => s.id !== id)
    .map((s) => {
      if (s.id === gone.parent) {
        const children = s.children.filter((c) => c !== id).concat(gone.children);
        return { ...s, children: [...new Set(children)].sort((a, b) => a - b), active: s.active || gone.active };
      }
      if (gone.children.includes(s.id)) return { ...s, parent: gone.parent };
      return s;
    });
  return { ...l, list };
}

/** §7.11 revert effect; LINEAR mode also drops every younger snapshot. Returns the dropped sizes. */
export function revertSnapshot(l: SnapshotList, id: number): { list: SnapshotList; droppedMb: number } {
  const younger = l.mode === 'LINEAR' ? l.list.filter((s) => s.id > id) : [];
  const list = l.list
    .filter((s) => !younger.includes(s))
    .map((s) => ({
      ...s,
      active: s.id === id,
      children: s.children.filter((c) => !younger.some((y) => y.id === c)),
    }));
  return {
    list: { ...l, list, currentBase: l.mode === 'MIXED' ? id : l.currentBase },
    droppedMb: younger.reduce((n, s) => n + s.size, 0),
  };
}

export const emptySnapshots = (l: SnapshotList): SnapshotList => ({ ...l, currentBase: -1, list: [] });
