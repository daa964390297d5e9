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
  /**
   * W22: datastore membership is part of the creation and removal facts.
   * They say so for readers of the log; nothing follows from them: a
   * datastore counts its images from the images' facts (the host's index),
   * it carries no list that would grow with the pool.
   */
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
  /**
   * Joined effects (JOINED_EFFECTS): the other aggregates' part of the same
   * operation, committed atomically with the fact that asks for them. W38:
   * a creation holds its space in the datastore; §7.4 step 11: a clone holds
   * its origin.
   */
  z.object({ kind: z.literal('datastore.reserveSpace'), datastoreId: int, imageId: int, sizeMb: int, skipCapacityCheck: z.boolean() }),
  z.object({ kind: z.literal('image.holdCloneSource'), originId: int, clone: z.object({ kind: z.enum(['image', 'app']), id: int }) }),
  /** W38: the creation ended (either way): its space shows in the next monitor. */
  z.object({ kind: z.literal('datastore.releaseSpace'), datastoreId: int, imageId: int }),
  /** §7.3: a stored backup becomes a backup image, or the next increment of a chain. */
  z.object({
    kind: z.literal('image.createBackup'),
    imageId: int,
    datastoreId: int,
    vmId: int,
    source: z.string(),
    sizeMb: int,
    format: z.string(),
    incremental: z.boolean(),
    owner: z.object({ uid: int, gid: int, uname: z.string(), gname: z.string() }),
  }),
  z.object({ kind: z.literal('image.extendBackup'), imageId: int, source: z.string(), sizeMb: int }),
  /** §7.3: an incremental chain longer than its datastore's KEEP_LAST is flattened. */
  z.object({ kind: z.literal('image.flattenIncrements'), imageId: int, keepLast: int }),
  /** §7.13.1: a restored disk becomes an image of the destination, registered as the user who restored. */
  z.object({
    kind: z.literal('image.registerRestored'),
    imageId: int,
    datastoreId: int,
    template: z.record(z.string(), z.string()),
    owner: z.object({ uid: int, gid: int, name: z.string() }),
  }),
  /** §10: stored data that no image owns any more, for an operator or a reaper. */
  z.object({ kind: z.literal('datastore.orphanSource'), datastoreId: int, imageId: int, source: z.string() }),
]);
export type Effect = z.infer<typeof EffectSchema>;

/** Effects the aggregate host commits with their fact, in one atomic batch, instead of a reactor later. */
export const JOINED_EFFECTS = ['datastore.reserveSpace', 'image.holdCloneSource'] as const satisfies readonly Effect['kind'][];
export type JoinedEffect = Extract<Effect, { kind: (typeof JOINED_EFFECTS)[number] }>;
export const isJoined = (e: Effect): e is JoinedEffect => (JOINED_EFFECTS as readonly string[]).includes(e.kind);
export type EffectKind = Effect['kind'];
