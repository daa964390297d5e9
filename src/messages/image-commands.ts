import { z } from 'zod';
import { DatastoreIdSchema, ImageIdSchema, RequestIdSchema, VmIdSchema } from './ids.js';
import { ReplyActionSchema, DriverResultSchema } from './driver.js';
import { SnapshotListSchema, SnapshotSchema } from './image-record.js';
import { InfoText, PathText, Text, TemplateSchema, boundedList } from './bounds.js';

/**
 * Image commands as they travel on the wire (spec §7, §8). Each names the
 * image it is for; the aggregate host routes on `imageId`.
 */
const base = { imageId: ImageIdSchema };
const sizeMb = z.number().int().nonnegative();
export { TemplateSchema } from './bounds.js';

export const AllocateImageSchema = z.object({
  type: z.literal('image.allocate'),
  ...base,
  datastoreId: DatastoreIdSchema,
  template: TemplateSchema,
  /** §7.1: administrators only (AUTH_ERR_SKIP_CAPACITY for anybody else). */
  skipCapacityCheck: z.boolean().default(false),
});

/** §7.4, one whole operation: the new image, its origin held and its space reserved, in one commit. */
export const AllocateCloneSchema = z.object({
  type: z.literal('image.clone'),
  ...base,
  originId: ImageIdSchema,
  name: Text,
  datastoreId: DatastoreIdSchema,
  /** Only template-instantiate-as-persistent asks for it (§7.4 step 4). */
  persistent: z.boolean().default(false),
});

export const AllocateSaveAsSchema = z.object({
  type: z.literal('image.allocateSaveAs'),
  ...base,
  name: Text,
  vmId: VmIdSchema,
  diskId: z.number().int().nonnegative(),
  originImageId: ImageIdSchema,
  imageType: Text.default(''),
  sizeMb,
  /** FORMAT (or DRIVER) of the VM disk; "" when the VM disk has neither. */
  diskFormat: Text,
  template: TemplateSchema.default({}),
});

export const AllocateBackupSchema = z.object({
  type: z.literal('image.allocateBackup'),
  ...base,
  datastoreId: DatastoreIdSchema,
  vmId: VmIdSchema,
  source: PathText.min(1),
  sizeMb,
  format: Text.min(1),
  diskIds: boundedList(z.number().int().nonnegative()),
  selectedDisks: z.boolean().default(false),
  incremental: z.boolean().default(false),
  backupJobId: z.number().int().nonnegative().nullable().default(null),
  owner: z.object({ uid: z.number().int(), gid: z.number().int(), uname: Text, gname: Text }),
});

export const AddIncrementSchema = z.object({
  type: z.literal('image.addIncrement'),
  ...base,
  source: PathText.min(1),
  sizeMb,
});

export const DeleteImageSchema = z.object({ type: z.literal('image.delete'), ...base, force: z.boolean().default(false) });
export const EnableImageSchema = z.object({ type: z.literal('image.enable'), ...base });
export const DisableImageSchema = z.object({ type: z.literal('image.disable'), ...base });
export const SetPersistentSchema = z.object({ type: z.literal('image.setPersistent'), ...base, persistent: z.boolean() });
export const ChangeTypeSchema = z.object({ type: z.literal('image.chtype'), ...base, imageType: Text });

export const CloneRefSchema = z.object({ kind: z.enum(['image', 'app']), id: z.number().int().nonnegative() });
export const CloneStartSchema = z.object({ type: z.literal('image.cloneStart'), ...base, clone: CloneRefSchema });
export const CloneFinishSchema = z.object({ type: z.literal('image.cloneFinish'), ...base, clone: CloneRefSchema });

// Any integer: a snapshot id that names none (oned's -1 included) is the machine's "Snapshot does not exist".
const snap = { ...base, snapshotId: z.number().int().min(-(2 ** 31)).max(2 ** 31 - 1) };
export const SnapshotDeleteSchema = z.object({ type: z.literal('image.snapshotDelete'), ...snap });
export const SnapshotRevertSchema = z.object({ type: z.literal('image.snapshotRevert'), ...snap });
export const SnapshotFlattenSchema = z.object({ type: z.literal('image.snapshotFlatten'), ...snap });

export const FlattenIncrementsSchema = z.object({
  type: z.literal('image.flattenIncrements'),
  ...base,
  keepLast: z.number().int().positive(),
});

export const AcquireSchema = z.object({
  type: z.literal('image.acquire'),
  ...base,
  vmId: VmIdSchema,
  mode: z.enum(['deploy', 'attach']),
});
export const ReleaseSchema = z.object({
  type: z.literal('image.release'),
  ...base,
  vmId: VmIdSchema,
  failed: z.boolean().default(false),
});
export const SetSnapshotsSchema = z.object({
  type: z.literal('image.setSnapshots'),
  ...base,
  /** null clears the list. */
  snapshots: SnapshotListSchema.extend({ list: boundedList(SnapshotSchema.extend({ name: Text, children: boundedList(z.number().int().nonnegative()) })) }).nullable(),
});
export const SetSizeSchema = z.object({ type: z.literal('image.setSize'), ...base, sizeMb });
export const SaveAsDoneSchema = z.object({ type: z.literal('image.saveAsDone'), ...base, success: z.boolean() });

export const RestoreOptionsSchema = z.object({
  name: Text.default(''),
  noIp: z.boolean().default(false),
  noNic: z.boolean().default(false),
  incrementId: z.number().int().nonnegative().nullable().default(null),
  diskId: z.number().int().nonnegative().nullable().default(null),
});
export const RestoreSchema = z.object({
  type: z.literal('image.restore'),
  ...base,
  datastoreId: DatastoreIdSchema,
  options: RestoreOptionsSchema.default(RestoreOptionsSchema.parse({})),
});

/**
 * Back up an image's disk into a BACKUP datastore (the part a VM backup plays
 * in OpenNebula): a new backup image, or one more increment of an existing chain.
 */
export const BackupImageSchema = z.object({
  type: z.literal('image.backup'),
  ...base,
  backupDatastoreId: DatastoreIdSchema,
  /** The backup image that receives it: a new id, or the chain to extend. */
  backupImageId: ImageIdSchema,
  /** Extend the existing chain `backupImageId` instead of creating it. */
  chain: z.boolean().default(false),
  /** Keep the result as an incremental chain (§7.3). */
  incremental: z.boolean().default(false),
  vmId: VmIdSchema,
});

/** A datastore driver's answer to a request the image recorded (§9.2). */
export const DriverReplySchema = z.object({
  type: z.literal('driver.reply'),
  ...base,
  requestId: RequestIdSchema,
  action: ReplyActionSchema,
  result: DriverResultSchema,
  /** The driver's single stdout line (or failure message); "" when it printed nothing. */
  info: InfoText,
});
/** Log lines a driver script wrote on stderr (driver-contract §7), recorded on the image. */
export const DriverLogSchema = z.object({
  type: z.literal('driver.log'),
  ...base,
  requestId: RequestIdSchema,
  action: Text,
  lines: z.array(z.object({ severity: z.enum(['E', 'W', 'I', 'D']), text: z.string().max(4096) })).min(1).max(200),
});
/** W1: the watchdog's verdict on an expired request. */
export const DriverTimeoutSchema = z.object({ type: z.literal('driver.timeout'), ...base, requestId: RequestIdSchema });

export const ImageCommandSchema = z.discriminatedUnion('type', [
  AllocateImageSchema,
  AllocateCloneSchema,
  AllocateSaveAsSchema,
  AllocateBackupSchema,
  AddIncrementSchema,
  DeleteImageSchema,
  EnableImageSchema,
  DisableImageSchema,
  SetPersistentSchema,
  ChangeTypeSchema,
  CloneStartSchema,
  CloneFinishSchema,
  SnapshotDeleteSchema,
  SnapshotRevertSchema,
  SnapshotFlattenSchema,
  FlattenIncrementsSchema,
  AcquireSchema,
  ReleaseSchema,
  SetSnapshotsSchema,
  SetSizeSchema,
  SaveAsDoneSchema,
  RestoreSchema,
  BackupImageSchema,
  DriverReplySchema,
  DriverTimeoutSchema,
  DriverLogSchema,
]);
export type ImageCommand = z.infer<typeof ImageCommandSchema>;
export type ImageCommandInput = z.input<typeof ImageCommandSchema>;
export type ImageCommandType = ImageCommand['type'];
export type ImageCommandOf<T extends ImageCommandType> = Extract<ImageCommand, { type: T }>;
