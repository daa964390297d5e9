import { z } from 'zod';
import type { ImageView } from '../messages/image-record.js';

/** What a datastore view adds from its images: how many in each state, and the driver work in flight. */
export const DatastoreSummarySchema = z.object({
  imagesByState: z.record(z.string(), z.number().int()),
  pendingOperations: z.array(z.object({ imageId: z.number().int(), action: z.string(), requestId: z.string(), deadline: z.number().int() })),
});
export type DatastoreSummary = z.infer<typeof DatastoreSummarySchema>;

export const EMPTY_SUMMARY: DatastoreSummary = { imagesByState: {}, pendingOperations: [] };

export function datastoreSummary(images: Iterable<ImageView>, datastoreId: number): DatastoreSummary {
  const imagesByState: Record<string, number> = {};
  const pendingOperations: DatastoreSummary['pendingOperations'] = [];
  for (const v of images) {
    if (v.datastore.id !== datastoreId || v.state === 'REMOVED') continue;
    imagesByState[v.state] = (imagesByState[v.state] ?? 0) + 1;
    if (v.pending) pendingOperations.push({ imageId: v.id, action: v.pending.action, requestId: v.pending.requestId, deadline: v.pending.deadline });
  }
  pendingOperations.sort((a, b) => a.imageId - b.imageId);
  return { imagesByState, pendingOperations };
}
