import { z } from 'zod';

/** The 11 image states of spec §4, in the order of their numeric codes. */
export const IMAGE_STATES = [
  'INIT',
  'READY',
  'USED',
  'DISABLED',
  'LOCKED',
  'ERROR',
  'CLONE',
  'DELETE',
  'USED_PERS',
  'LOCKED_USED',
  'LOCKED_USED_PERS',
] as const;
export const ImageStateSchema = z.enum(IMAGE_STATES);
export type ImageState = z.infer<typeof ImageStateSchema>;

/**
 * The aggregate's terminal value once its record is dropped (D1/D3). It is not
 * one of the spec's states: it keeps the tombstone so that late replies are
 * recognised as orphans (§10) and ids are never reused.
 */
export const REMOVED = 'REMOVED' as const;
export const ImageLifecycleSchema = z.enum([...IMAGE_STATES, REMOVED]);
export type ImageLifecycle = z.infer<typeof ImageLifecycleSchema>;

export const imageStateCode = (s: ImageState): number => IMAGE_STATES.indexOf(s);

/**
 * W27: messages use the exact state name. The reference's lossy string form
 * (USED_PERS → USED) is kept only for clients that parse old texts.
 */
export function legacyStateString(s: ImageState): string {
  if (s === 'USED_PERS') return 'USED';
  if (s === 'LOCKED_USED_PERS') return 'LOCKED_USED';
  return s;
}

/** Parsing accepts exact names and the reference's short forms (spec §4). */
export function parseImageState(text: string): ImageState | undefined {
  const r = ImageStateSchema.safeParse(text.trim().toUpperCase());
  return r.success ? r.data : undefined;
}

export const LOCKED_STATES: readonly ImageState[] = ['LOCKED', 'LOCKED_USED', 'LOCKED_USED_PERS'];
export const isLockedState = (s: ImageState): boolean => LOCKED_STATES.includes(s);

/** Image types of spec §3, in code order. */
export const IMAGE_TYPES = [
  'OS',
  'CDROM',
  'DATABLOCK',
  'KERNEL',
  'RAMDISK',
  'CONTEXT',
  'BACKUP',
  'FILESYSTEM',
] as const;
export const ImageTypeSchema = z.enum(IMAGE_TYPES);
export type ImageType = z.infer<typeof ImageTypeSchema>;

/** Type names are case-insensitive on input; unknown names are refused (W18). */
export function parseImageType(text: string): ImageType | undefined {
  const r = ImageTypeSchema.safeParse(text.trim().toUpperCase());
  return r.success ? r.data : undefined;
}

export const DATASTORE_TYPES = ['IMAGE_DS', 'SYSTEM_DS', 'FILE_DS', 'BACKUP_DS'] as const;
export const DatastoreTypeSchema = z.enum(DATASTORE_TYPES);
export type DatastoreType = z.infer<typeof DatastoreTypeSchema>;

export const DISK_TYPES = [
  'FILE',
  'CDROM',
  'BLOCK',
  'RBD',
  'RBD_CDROM',
  'GLUSTER',
  'GLUSTER_CDROM',
  'SHEEPDOG',
  'SHEEPDOG_CDROM',
  'ISCSI',
  'FILESYSTEM',
] as const;
export const DiskTypeSchema = z.enum(DISK_TYPES);
export type DiskType = z.infer<typeof DiskTypeSchema>;

/** Types that can back a VM disk, be cloned, and hold snapshots (spec §3). */
export const CLONABLE_TYPES: readonly ImageType[] = ['OS', 'DATABLOCK', 'CDROM'];
export const SNAPSHOT_TYPES: readonly ImageType[] = ['OS', 'DATABLOCK'];
export const FILE_TYPES: readonly ImageType[] = ['KERNEL', 'RAMDISK', 'CONTEXT'];
