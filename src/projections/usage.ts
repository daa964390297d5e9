import type { ImageView } from '../messages/image-record.js';

/** Datastore usage of one owner (spec §13.2 quota figures): images and MB, snapshots included. */
export interface Usage {
  images: number;
  sizeMb: number;
}

/** What an image counts for its owner user and group in its datastore; nothing once removed. */
export function contribution(v: ImageView | undefined): { keys: string[]; usage: Usage } | undefined {
  if (!v || v.state === 'REMOVED' || v.state === 'INIT') return undefined;
  const sizeMb = v.size + v.snapshots.list.reduce((n, s) => n + s.size, 0);
  return { keys: [`user.${v.uid}.${v.datastore.id}`, `group.${v.gid}.${v.datastore.id}`], usage: { images: 1, sizeMb } };
}

/** Moves an image's contribution from its old view to its new one. */
export function applyUsage(totals: Map<string, Usage>, before: ImageView | undefined, after: ImageView | undefined): Set<string> {
  const touched = new Set<string>();
  const add = (c: ReturnType<typeof contribution>, sign: 1 | -1): void => {
    if (!c) return;
    for (const k of c.keys) {
      const t = totals.get(k) ?? { images: 0, sizeMb: 0 };
      totals.set(k, { images: t.images + sign * c.usage.images, sizeMb: t.sizeMb + sign * c.usage.sizeMb });
      touched.add(k);
    }
  };
  add(contribution(before), -1);
  add(contribution(after), 1);
  return touched;
}
