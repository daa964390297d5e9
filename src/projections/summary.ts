import { z } from 'zod';
import type { ImageView } from '../messages/image-record.js';

/** What a datastore view adds from its images: how many in each state, the driver work in flight, the space creations hold. */
export const DatastoreSummarySchema = z.object({
  imagesByState: z.record(z.string(), z.number().int()),
  pendingOperations: z.array(z.object({ imageId: z.number().int(), action: z.string(), requestId: z.string(), deadline: z.number().int() })),
  /** W38: images being created and the space each holds until it leaves LOCKED. */
  reservations: z.array(z.object({ imageId: z.number().int(), sizeMb: z.number().int() })).default([]),
});
export type DatastoreSummary = z.infer<typeof DatastoreSummarySchema>;
type PendingOperation = DatastoreSummary['pendingOperations'][number];
interface Counts {
  readonly byState: Map<string, number>;
  readonly pending: Map<number, PendingOperation>;
  /** Image id → the space its creation holds. */
  readonly reserved: Map<number, number>;
}

export const EMPTY_SUMMARY: DatastoreSummary = { imagesByState: {}, pendingOperations: [], reservations: [] };

/**
 * Every datastore's summary, kept image by image: each image commit moves
 * one image out of its old counts and into its new ones, so the cost of a
 * commit does not grow with the pool (the summary used to be recomputed over
 * all images for every image commit).
 */
export class DatastoreSummaries {
  private readonly byDatastore = new Map<number, Counts>();

  /** An image went from `before` to `after` (undefined: not there); returns the datastores whose summary changed. */
  change(before: ImageView | undefined, after: ImageView | undefined): number[] {
    const touched = new Set<number>();
    if (before && before.state !== 'REMOVED') {
      const s = this.summary(before.datastore.id);
      const n = (s.byState.get(before.state) ?? 0) - 1;
      if (n > 0) s.byState.set(before.state, n);
      else s.byState.delete(before.state);
      s.pending.delete(before.id);
      s.reserved.delete(before.id);
      touched.add(before.datastore.id);
    }
    if (after && after.state !== 'REMOVED') {
      const s = this.summary(after.datastore.id);
      s.byState.set(after.state, (s.byState.get(after.state) ?? 0) + 1);
      if (after.pending) s.pending.set(after.id, { imageId: after.id, action: after.pending.action, requestId: after.pending.requestId, deadline: after.pending.deadline });
      if (after.reservedMb > 0) s.reserved.set(after.id, after.reservedMb);
      touched.add(after.datastore.id);
    }
    return [...touched];
  }

  of(datastoreId: number): DatastoreSummary {
    const s = this.byDatastore.get(datastoreId);
    if (!s) return EMPTY_SUMMARY;
    return {
      imagesByState: Object.fromEntries([...s.byState].sort(([a], [b]) => a.localeCompare(b))),
      pendingOperations: [...s.pending.values()].sort((a, b) => a.imageId - b.imageId),
      reservations: [...s.reserved].map(([imageId, sizeMb]) => ({ imageId, sizeMb })).sort((a, b) => a.imageId - b.imageId),
    };
  }

  private summary(datastoreId: number): Counts {
    let s = this.byDatastore.get(datastoreId);
    if (!s) {
      s = { byState: new Map(), pending: new Map(), reserved: new Map() };
      this.byDatastore.set(datastoreId, s);
    }
    return s;
  }
}
