import { z } from 'zod';

/** Datastore driver actions of spec §9.1 (driver-contract §1). */
export const DRIVER_ACTIONS = [
  'CP',
  'MKFS',
  'CLONE',
  'RM',
  'STAT',
  'SNAP_DELETE',
  'SNAP_REVERT',
  'SNAP_FLATTEN',
  'INCREMENT_FLATTEN',
  'RESTORE',
  'MONITOR',
  /** Auxiliary (driver-contract §12): store an image's disk in a backup datastore. */
  'BACKUP',
] as const;
export const DriverActionSchema = z.enum(DRIVER_ACTIONS);
export type DriverAction = z.infer<typeof DriverActionSchema>;

/** Actions whose pending request an image records while LOCKED* or DELETE. */
export const IMAGE_ACTIONS = [
  'CP',
  'MKFS',
  'CLONE',
  'RM',
  'SNAP_DELETE',
  'SNAP_REVERT',
  'SNAP_FLATTEN',
  'INCREMENT_FLATTEN',
] as const satisfies readonly DriverAction[];
export const ImageActionSchema = z.enum(IMAGE_ACTIONS);
export type ImageAction = z.infer<typeof ImageActionSchema>;

/** Actions whose reply goes to an image: its pending request, or one of its BACKUP/RESTORE jobs. */
export const ReplyActionSchema = z.enum([...IMAGE_ACTIONS, 'BACKUP', 'RESTORE']);
export type ReplyAction = z.infer<typeof ReplyActionSchema>;
export const isReplyAction = (a: DriverAction): a is ReplyAction => (ReplyActionSchema.options as readonly string[]).includes(a);

/**
 * W1: every asynchronous action has a deadline. Defaults in seconds; the
 * runtime may pass its own policy with each command.
 */
export const DEFAULT_DRIVER_TIMEOUTS: Readonly<Record<DriverAction, number>> = {
  CP: 3600,
  MKFS: 900,
  CLONE: 3600,
  RM: 600,
  STAT: 90,
  SNAP_DELETE: 900,
  SNAP_REVERT: 900,
  SNAP_FLATTEN: 1800,
  INCREMENT_FLATTEN: 3600,
  RESTORE: 3600,
  MONITOR: 120,
  BACKUP: 7200,
};

export const DriverResultSchema = z.enum(['SUCCESS', 'FAILURE']);
export type DriverResult = z.infer<typeof DriverResultSchema>;

/**
 * Extra data of the CP of a disk a RESTORE staged (set by the image machine
 * only for the registration imgr itself sends, never for a user's command):
 * the folder the restore wrote, which that one CP may read. The driver host
 * turns it into a per-request allowance (driver-host/staging.ts); drivers
 * never see it as such.
 */
export const RESTORE_STAGING_EXTRA = 'IMGR_RESTORE_STAGING';
