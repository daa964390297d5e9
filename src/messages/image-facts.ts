import { z } from 'zod';
import { ImageLifecycleSchema } from './states.js';
import { ImageRecordSchema } from './image-record.js';
import { EffectSchema } from './effects.js';

export const IMAGE_FACT_TYPES = [
  'image.registered',
  'image.incrementAdded',
  'image.deleteRequested',
  'image.removed',
  'image.enabled',
  'image.disabled',
  'image.persistenceChanged',
  'image.typeChanged',
  'image.cloneStarted',
  'image.cloneFinished',
  'image.snapshotOperationRequested',
  'image.incrementsFlattenRequested',
  'image.acquired',
  'image.released',
  'image.snapshotsSet',
  'image.sizeSet',
  'image.saveAsCompleted',
  'image.restoreRequested',
  'image.backupRequested',
  /** §7.3: a BACKUP stored the disk; the backup image or its next increment follows. */
  'image.backedUp',
  /** §7.13.1: a RESTORE wrote the disks; the images that register them follow. */
  'image.restored',
  /** A BACKUP or RESTORE failed or expired; nothing follows. */
  'image.jobFailed',
  'image.driverSucceeded',
  'image.driverFailed',
  'image.driverTimedOut',
  /** stderr log lines of a driver script. */
  'image.driverLogged',
  /** W11: a reply or timeout that matches no pending request. */
  'image.replyIgnored',
  /** A command the spec answers with "log": accepted, recorded, nothing changed. */
  'image.commandIgnored',
] as const;
export const ImageFactTypeSchema = z.enum(IMAGE_FACT_TYPES);
export type ImageFactType = z.infer<typeof ImageFactTypeSchema>;

const Scalar = z.union([z.string(), z.number(), z.boolean(), z.null()]);

/**
 * A fact carries its outcome: the state after it and every record field it
 * changed, so `evolve(view, fact)` needs no rules (design principle 2).
 */
export const ImageFactSchema = z.object({
  type: ImageFactTypeSchema,
  imageId: z.number().int().nonnegative(),
  state: ImageLifecycleSchema,
  prevState: ImageLifecycleSchema,
  changes: ImageRecordSchema.partial(),
  /** What happened, for people: the command's own data, reasons for ignoring. */
  detail: z.record(z.string(), Scalar),
  effects: z.array(EffectSchema),
});
export type ImageFact = z.infer<typeof ImageFactSchema>;
