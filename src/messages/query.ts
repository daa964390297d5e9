import { z } from 'zod';
import { ImageLifecycleSchema, ImageTypeSchema } from './states.js';

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
