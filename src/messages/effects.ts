import { z } from 'zod';
import { DriverActionSchema } from './driver.js';

/**
 * Effects a fact asks for. They are part of the committed fact (the log is
 * the outbox): reactors read them and publish follow-ups with msgIDs derived
 * from the fact, so nothing is written to two places.
 */
const int = z.number().int();
const ids = z.array(int.nonnegative());

export const EffectSchema = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('driver.request'),
    requestId: z.string(),
    action: DriverActionSchema,
    imageId: int,
    datastoreId: int,
    deadline: int,
    /** Action-specific extra data (§9.1): KEEP_LAST, restore destination and options. */
    extra: z.record(z.string(), z.string()),
  }),
  /** §5.1 / §5.2: VMs waiting in CLONING re-evaluate their disks. */
  z.object({ kind: z.literal('vm.diskReady'), imageId: int, vmIds: ids }),
  z.object({ kind: z.literal('vm.diskFailed'), imageId: int, vmIds: ids }),
  /** §7.10: the clone read from `originId` is over (success, failure or deletion). */
  z.object({ kind: z.literal('image.releaseCloneSource'), originId: int, clone: z.object({ kind: z.enum(['image', 'app']), id: int }) }),
  /** W22: datastore membership is part of the creation and removal facts. */
  z.object({ kind: z.literal('datastore.imageAdded'), datastoreId: int, imageId: int, sizeMb: int }),
  z.object({ kind: z.literal('datastore.imageRemoved'), datastoreId: int, imageId: int }),
  z.object({ kind: z.literal('datastore.monitor'), datastoreId: int }),
  /** §13.2: quota changes for the owner user and group (negative releases). */
  z.object({ kind: z.literal('quota.change'), uid: int, gid: int, datastoreId: int, images: int, sizeMb: int }),
  z.object({ kind: z.literal('vm.saveAsTransfer'), vmId: int, diskId: int, imageId: int, source: z.string() }),
  z.object({ kind: z.literal('vm.saveAsCleared'), vmId: int, diskId: int, imageId: int }),
  /** W16: the VM's "flatten active" flag is cleared on every terminal outcome. */
  z.object({ kind: z.literal('vm.flattenDone'), vmId: int, imageId: int }),
  z.object({ kind: z.literal('vm.backupRemoved'), vmId: int, imageId: int }),
  /** §10: stored data that no image owns any more, for an operator or a reaper. */
  z.object({ kind: z.literal('datastore.orphanSource'), datastoreId: int, imageId: int, source: z.string() }),
]);
export type Effect = z.infer<typeof EffectSchema>;
export type EffectKind = Effect['kind'];
