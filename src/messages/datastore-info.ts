import { z } from 'zod';
import { DatastoreTypeSchema } from './states.js';

/**
 * What the image machine needs to know about a datastore when it decides.
 * The aggregate host reads it from the datastore's resident state and passes
 * it with the command, so the image machine stays pure.
 */
export const DatastoreInfoSchema = z.object({
  id: z.number().int().nonnegative(),
  name: z.string(),
  type: DatastoreTypeSchema,
  dsMad: z.string(),
  tmMad: z.string(),
  diskType: z.string(),
  /** Default disk format for empty images (transfer-driver or template DRIVER), "" if none. */
  driver: z.string(),
  /** Driver configuration PERSISTENT_ONLY (§12.3). */
  persistentOnly: z.boolean(),
  /**
   * §13.1 with W38: the space a new image may take, pending creations'
   * reservations deducted; null when the check is off or the datastore was
   * never monitored (nothing to refuse on).
   */
  availableMb: z.number().int().nonnegative().nullable(),
  /** BRIDGE_LIST of the template ("" when unset): a clone from here to another datastore passes it as SOURCE_BRIDGE_LIST (§7.4 step 6). */
  bridgeList: z.string(),
  /** §7.3: a backup datastore's KEEP_LAST, null when unset. */
  keepLast: z.number().int().positive().nullable(),
});
export type DatastoreInfo = z.infer<typeof DatastoreInfoSchema>;

/** Configuration defaults of spec §14 that allocation consults. */
export const ImageDefaultsSchema = z.object({
  imageType: z.string().default('OS'),
  devicePrefix: z.string().default('hd'),
  /** DEFAULT_IMAGE_PERSISTENT_NEW (allocate), resolved user → group → global. */
  persistentNew: z.string().default(''),
  /** DEFAULT_IMAGE_PERSISTENT (clone, save-as), resolved user → group → global. */
  persistent: z.string().default(''),
});
export type ImageDefaults = z.infer<typeof ImageDefaultsSchema>;
export const DEFAULT_IMAGE_DEFAULTS: ImageDefaults = ImageDefaultsSchema.parse({});
