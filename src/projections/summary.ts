import { z } from 'zod';
import type { ImageView } from '../messages/image-record.js';

/**
 * What a datastore view adds from its images, as counts only: how many
 * images in each state, the driver operations running on them by action,
 * and the space the images being created hold (W38). Per-image lists grew
 * with the creations in flight: 10,000 registrations queued on one
 * datastore made its view larger than a NATS message and stopped the
 * projections; which images they are is a query of the images.
 */
export const DatastoreSummarySchema = z.object({
  imagesByState: z.record(z.string(), z.number().int()),
  operationsByAction: z.record(z.string(), z.number().int()).default({}),
  reservedMb: z.number().int().default(0),
  /** Images holding space while they are created. */
  reserving: z.number().int().default(0),
});
export type DatastoreSummary = z.infer<typeof DatastoreSummarySchema>;

export const EMPTY_SUMMARY: DatastoreSummary = { imagesByState: {}, operationsByAction: {}, reservedMb: 0, reserving: 0 };

interface Counts {
  readonly byState: Map<string, number>;
  readonly byAction: Map<string, number>;
  reservedMb: number;
  reserving: number;
}

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
      this.count(before, -1);
      touched.add(before.datastore.id);
    }
    if (after && after.state !== 'REMOVED') {
      this.count(after, 1);
      touched.add(after.datastore.id);
    }
    return [...touched];
  }

  of(datastoreId: number): DatastoreSummary {
    const s = this.byDatastore.get(datastoreId);
    if (!s) return EMPTY_SUMMARY;
    const sorted = (m: Map<string, number>): Record<string, number> => Object.fromEntries([...m].sort(([a], [b]) => a.localeCompare(b)));
    return { imagesByState: sorted(s.byState), operationsByAction: sorted(s.byAction), reservedMb: s.reservedMb, reserving: s.reserving };
  }

  private count(v: ImageView, sign: 1 | -1): void {
    const s = this.summary(v.datastore.id);
    bump(s.byState, v.state, sign);
    if (v.pending) bump(s.byAction, v.pending.action, sign);
    if (v.reservedMb > 0) {
      s.reservedMb += sign * v.reservedMb;
      s.reserving += sign;
    }
  }

  private summary(datastoreId: number): Counts {
    let s = this.byDatastore.get(datastoreId);
    if (!s) {
      s = { byState: new Map(), byAction: new Map(), reservedMb: 0, reserving: 0 };
      this.byDatastore.set(datastoreId, s);
    }
    return s;
  }
}

function bump(m: Map<string, number>, key: string, sign: 1 | -1): void {
  const n = (m.get(key) ?? 0) + sign;
  if (n > 0) m.set(key, n);
  else m.delete(key);
}
