import { z } from 'zod';
import { ImageLifecycleSchema, ImageTypeSchema } from '../messages/states.js';
import type { ImageView } from '../messages/image-record.js';

/** imgr.query.images: filters and pagination. */
export const ImageQuerySchema = z.object({
  state: ImageLifecycleSchema.optional(),
  type: ImageTypeSchema.optional(),
  datastoreId: z.number().int().optional(),
  uid: z.number().int().optional(),
  namePrefix: z.string().optional(),
  offset: z.number().int().nonnegative().default(0),
  limit: z.number().int().positive().max(1000).default(100),
});
export type ImageQuery = z.infer<typeof ImageQuerySchema>;

export function queryImages(views: Iterable<ImageView>, q: ImageQuery): { total: number; items: ImageView[] } {
  const hits = [...views]
    .filter(
      (v) =>
        (q.state === undefined || v.state === q.state) &&
        (q.type === undefined || v.type === q.type) &&
        (q.datastoreId === undefined || v.datastore.id === q.datastoreId) &&
        (q.uid === undefined || v.uid === q.uid) &&
        (q.namePrefix === undefined || v.name.startsWith(q.namePrefix)),
    )
    .sort((a, b) => a.id - b.id);
  return { total: hits.length, items: hits.slice(q.offset, q.offset + q.limit) };
}
