import { z } from 'zod';
import { DatastoreIdSchema } from './ids.js';
import { DatastoreTypeSchema } from './states.js';
import { DriverResultSchema } from './driver.js';
import { InfoText, PathText, TemplateSchema, boundedList } from './bounds.js';
import { EffectSchema } from './effects.js';

const int = z.number().int();

/** Driver configuration (oned.conf's DS_MAD_CONF / TM_MAD_CONF), passed in with a create. */
export const DsMadConfigSchema = z.object({
  requiredAttrs: z.array(z.string()).default([]),
  persistentOnly: z.boolean().default(false),
  concurrentForget: z.boolean().default(false),
  capacityCheck: z.enum(['YES', 'NO']).nullable().default(null),
});
export const TmMadConfigSchema = z.object({
  shared: z.boolean().default(true),
  lnTarget: z.enum(['NONE', 'SELF', 'SYSTEM']).default('NONE'),
  cloneTarget: z.enum(['NONE', 'SELF', 'SYSTEM']).default('SYSTEM'),
  driver: z.string().default(''),
  diskType: z.string().default(''),
});
export const DriverConfigSchema = z.object({
  dsMads: z.record(z.string(), DsMadConfigSchema),
  tmMads: z.record(z.string(), TmMadConfigSchema),
  datastoreLocation: z.string().default('/var/lib/one/datastores'),
});
export type DriverConfig = z.infer<typeof DriverConfigSchema>;
export type DsMadConfig = z.infer<typeof DsMadConfigSchema>;

export const DatastoreRecordSchema = z.object({
  id: int.nonnegative(),
  name: z.string(),
  uid: int,
  gid: int,
  uname: z.string(),
  type: DatastoreTypeSchema,
  dsMad: z.string(),
  tmMad: z.string(),
  basePath: z.string(),
  diskType: z.string(),
  totalMb: int.nonnegative(),
  freeMb: int.nonnegative(),
  usedMb: int.nonnegative(),
  /** Epoch ms of the last complete monitor, null before the first (W38). */
  monitoredAt: int.nullable(),
  /** W39: why the last monitor was not applied, until one succeeds. */
  monitorError: z.string().nullable(),
  /** Driver flags copied at creation: they decide image rules later. */
  persistentOnly: z.boolean(),
  template: z.record(z.string(), z.string()),
});
export type DatastoreRecord = z.infer<typeof DatastoreRecordSchema>;

export const DatastoreLifecycleSchema = z.enum(['INIT', 'READY', 'DISABLED', 'REMOVED']);
export type DatastoreLifecycle = z.infer<typeof DatastoreLifecycleSchema>;
export const DatastoreViewSchema = DatastoreRecordSchema.extend({ state: DatastoreLifecycleSchema });
export type DatastoreView = z.infer<typeof DatastoreViewSchema>;

const base = { datastoreId: DatastoreIdSchema };
export const DatastoreCommandSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('datastore.create'), ...base, template: TemplateSchema }),
  z.object({ type: z.literal('datastore.enable'), ...base }),
  z.object({ type: z.literal('datastore.disable'), ...base }),
  z.object({ type: z.literal('datastore.delete'), ...base }),
  /**
   * §13.1 with W38: checks capacity for a creation about to start, joined to
   * it in one atomic commit. The space stays held by the image's own record
   * (`reservedMb`) until it leaves LOCKED; this commit on the datastore's
   * subject is what orders creations into one datastore across managers.
   */
  z.object({
    type: z.literal('datastore.reserve'),
    ...base,
    imageId: int.nonnegative(),
    sizeMb: int.nonnegative(),
    skipCapacityCheck: z.boolean().default(false),
  }),
  /** Sent by earlier versions when a creation ended; decided (and recorded) still, it changes nothing now. */
  z.object({ type: z.literal('datastore.settle'), ...base, imageId: int.nonnegative() }),
  /** A MONITOR reply: INFO is base64 of KEY=VALUE lines (§9.2). */
  z.object({ type: z.literal('datastore.monitored'), ...base, result: DriverResultSchema, info: InfoText }),
  /** What a driver host found in the datastore's folder after a monitor: the files and how old they are. */
  z.object({
    type: z.literal('datastore.swept'),
    ...base,
    files: boundedList(z.object({ path: PathText.min(1), ageSec: int.nonnegative() })),
  }),
]);
export type DatastoreCommand = z.infer<typeof DatastoreCommandSchema>;
export type DatastoreCommandInput = z.input<typeof DatastoreCommandSchema>;

export const DATASTORE_FACT_TYPES = [
  'datastore.created',
  'datastore.enabled',
  'datastore.disabled',
  'datastore.removed',
  'datastore.spaceReserved',
  'datastore.reservationSettled',
  'datastore.imageAdded',
  'datastore.imageRemoved',
  'datastore.monitored',
  'datastore.monitorFailed',
  'datastore.swept',
] as const;
export const DatastoreFactSchema = z.object({
  type: z.enum(DATASTORE_FACT_TYPES),
  datastoreId: int.nonnegative(),
  state: DatastoreLifecycleSchema,
  prevState: DatastoreLifecycleSchema,
  changes: DatastoreRecordSchema.partial(),
  detail: z.record(z.string(), z.union([z.string(), z.number(), z.boolean(), z.null()])),
  effects: z.array(EffectSchema),
});
export type DatastoreFact = z.infer<typeof DatastoreFactSchema>;
