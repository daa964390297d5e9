import { z } from 'zod';
import { DatastoreTypeSchema, ImageLifecycleSchema, ImageTypeSchema } from './states.js';
import { ImageActionSchema } from './driver.js';

const int = z.number().int();
const id = int.min(-1);

/** Snapshot orphan modes (ALLOW_ORPHANS): YES=ALLOW, NO=DENY (default). */
export const SnapshotModeSchema = z.enum(['DENY', 'ALLOW', 'MIXED', 'FORMAT', 'LINEAR']);
export type SnapshotMode = z.infer<typeof SnapshotModeSchema>;

export const SnapshotSchema = z.object({
  id: int.nonnegative(),
  name: z.string(),
  date: int,
  parent: id,
  children: z.array(int.nonnegative()),
  active: z.boolean(),
  size: int.nonnegative(),
});
export type Snapshot = z.infer<typeof SnapshotSchema>;

export const SnapshotListSchema = z.object({
  mode: SnapshotModeSchema,
  currentBase: id,
  nextSnapshot: int.nonnegative(),
  list: z.array(SnapshotSchema),
});
export type SnapshotList = z.infer<typeof SnapshotListSchema>;

export const IncrementSchema = z.object({
  id: int.nonnegative(),
  type: z.enum(['FULL', 'INCREMENT']),
  parentId: id,
  source: z.string(),
  size: int.nonnegative(),
  date: int,
});
export type Increment = z.infer<typeof IncrementSchema>;

/** W1/W11: the driver request the image waits for. */
export const PendingRequestSchema = z.object({
  requestId: z.string(),
  action: ImageActionSchema,
  issuedAt: int,
  deadline: int,
});
export type PendingRequest = z.infer<typeof PendingRequestSchema>;

/** How many requests that ended without their reply an image remembers (`abandoned`). */
export const ABANDONED_KEPT = 8;

export const SaveAsSchema = z.object({
  vmId: int.nonnegative(),
  diskId: int.nonnegative(),
  originImageId: id,
  /** The VM disk's FORMAT (or DRIVER), validated at allocation (W34). */
  diskFormat: z.string().min(1),
  /** True once MKFS reserved the source and the VM-side transfer runs. */
  transferring: z.boolean(),
});

/** What a BACKUP or RESTORE request was for, so that its reply can be decided from the image alone. */
export const JobSchema = z.discriminatedUnion('action', [
  z.object({
    action: z.literal('BACKUP'),
    requestId: z.string(),
    deadline: int,
    backupImageId: int.nonnegative(),
    backupDatastoreId: int.nonnegative(),
    chain: z.boolean(),
    incremental: z.boolean(),
    vmId: int.nonnegative(),
  }),
  z.object({
    action: z.literal('RESTORE'),
    requestId: z.string(),
    deadline: int,
    destinationId: int.nonnegative(),
    name: z.string(),
    owner: z.object({ uid: int, gid: int, name: z.string() }),
  }),
]);
export type Job = z.infer<typeof JobSchema>;

/** A small, immutable picture of the datastore the image lives in. */
export const ImageDatastoreRefSchema = z.object({
  id: int.nonnegative(),
  name: z.string(),
  type: DatastoreTypeSchema,
  dsMad: z.string(),
});

/**
 * The image record: spec §2 fields as plain data. It is the XState context,
 * the persisted snapshot and (with `state`) the projected view.
 */
export const ImageRecordSchema = z.object({
  id: id,
  name: z.string(),
  uid: int,
  gid: int,
  uname: z.string(),
  gname: z.string(),
  type: ImageTypeSchema,
  diskType: z.string(),
  persistent: z.boolean(),
  datastore: ImageDatastoreRefSchema,
  source: z.string(),
  path: z.string(),
  format: z.string(),
  fs: z.string(),
  size: int.nonnegative(),
  regTime: int,
  modTime: int,
  vms: z.array(int.nonnegative()),
  clones: z.array(int.nonnegative()),
  appClones: z.array(int.nonnegative()),
  cloningId: id,
  targetSnapshot: id,
  /** Free user attributes plus system ones (DEV_PREFIX, PERSISTENT_TYPE, DRIVER, ...). */
  template: z.record(z.string(), z.string()),
  /** TEMPLATE/ERROR: "<ctime> : <message>", cleared on recovery (W13). */
  error: z.string().nullable(),
  snapshots: SnapshotListSchema,
  increments: z.array(IncrementSchema),
  backupDiskIds: z.array(int.nonnegative()),
  pending: PendingRequestSchema.nullable(),
  /** W4/W5/W6: a delete waiting for the pending operation; force belongs to the delete only. */
  deleting: z.object({ force: z.boolean() }).nullable(),
  saveAs: SaveAsSchema.nullable(),
  /** W38: space this image's creation holds in its datastore until the creation ends (0: none). */
  reservedMb: int.nonnegative(),
  /** BACKUP and RESTORE requests that read this image, until their reply or timeout (§7.3, §7.13.1). */
  jobs: z.array(JobSchema).max(64),
  /**
   * The last requests whose pending operation ended without their reply (a
   * timeout, a disable, a removal, a request replaced): a late reply to one is
   * a known stale reply (§10: what it stored is an orphan to reclaim); a reply
   * naming any other request was never asked of this image and is ignored.
   */
  abandoned: z.array(PendingRequestSchema.pick({ requestId: true, action: true })).max(ABANDONED_KEPT),
});
export type ImageRecord = z.infer<typeof ImageRecordSchema>;

export const ImageViewSchema = ImageRecordSchema.extend({ state: ImageLifecycleSchema });
export type ImageView = z.infer<typeof ImageViewSchema>;

/**
 * A view as a store kept it: snapshots and views written before a field
 * existed get the field's empty value (never a default in ImageRecordSchema
 * itself, where zod would put it into every fact's partial `changes`).
 */
export const StoredImageViewSchema = z.preprocess(
  (v) => (typeof v === 'object' && v !== null ? { reservedMb: 0, jobs: [], abandoned: [], ...v } : v),
  ImageViewSchema,
);
