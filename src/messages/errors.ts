/**
 * The error registry: every refusal the domain can produce, with a stable code
 * and the spec's text. Where the spec marks a text as defective (W7, W18, W19,
 * W26...) the fixed text is used and the original is named in `spec`.
 * Clients match on `code`, never on text.
 */
type Text<A> = (args: A) => string;
interface ErrorDef<A> {
  readonly text: Text<A>;
  /** Where the text comes from: a spec reference or the weak point it fixes. */
  readonly spec: string;
}
const def = <A = undefined>(spec: string, text: Text<A>): ErrorDef<A> => ({ spec, text });

interface StateArg { state: string }
interface IdArg { id: number }

export const ERRORS = {
  // --- the command boundary: what cannot even be decided
  CMD_ERR_MALFORMED: def<{ reason: string }>('principle 7', ({ reason }) => `Malformed command message: ${reason}`),
  CMD_ERR_INVALID: def<{ issues: string }>('principle 7', ({ issues }) => `Invalid command: ${issues}`),
  CMD_ERR_SUBJECT: def<{ subject: string; expected: string }>(
    'principle 7',
    ({ subject, expected }) => `Command published on ${subject} belongs on ${expected}`,
  ),
  AUTH_ERR_NOT_AUTHORIZED: def<{ uid: number; access: string; object: string; id: number }>('trust, OpenNebula authorization', ({ uid, access, object, id }) => `User [${uid}] : Not authorized to perform ${access} ${object} [${id}].`),
  AUTH_ERR_SKIP_CAPACITY: def<{ uid: number }>('trust', ({ uid }) => `User [${uid}] : Not authorized to skip the datastore capacity check.`),
  AUTH_ERR_VM_SERVICE: def<{ uid: number; type: string; id: number; principal: string }>(
    'trust, VM bookkeeping',
    ({ uid, type, id, principal }) => `User [${uid}] : Not authorized to perform ${type} on IMAGE [${id}]: VM bookkeeping is a VM service's, and principal ${principal} has no vm-service grant.`,
  ),
  CMD_ERR_PRINCIPAL: def<{ principal: string }>('trust', ({ principal }) => `Principal ${principal} is not known to imgr`),
  CMD_ERR_ACTOR: def<{ actor: string; principal: string }>('trust', ({ actor, principal }) => `Actor ${actor} is not the authenticated principal ${principal}`),
  CMD_ERR_ACTOR_GRANT: def<{ actor: string; principal: string; grant: string }>(
    'trust, delegation',
    ({ actor, principal, grant }) => `Actor ${actor} is outside the grant of principal ${principal}: ${grant}`,
  ),
  CMD_ERR_PRINCIPAL_REFUSED: def<{ principal: string; why: string }>('trust', ({ principal, why }) => `Principal ${principal} is refused by imgr: ${why}`),
  CMD_ERR_REPLY_TO: def<{ replyTo: string; principal: string }>('trust', ({ replyTo, principal }) => `Reply subject ${replyTo} is not an inbox of principal ${principal}`),
  CMD_ERR_INTERNAL: def<{ type: string }>('trust', ({ type }) => `Command ${type} is internal to imgr; services cannot send it`),
  CMD_ERR_NOT_DRIVER: def<{ type: string; allowed: string }>('trust', ({ type, allowed }) => `Command ${type} is not a driver host's; a driver host sends only ${allowed}`),
  CMD_ERR_SECRET_PLAINTEXT: def<{ attrs: string }>('W23', ({ attrs }) => `Secret attributes must be sealed to imgr's key, not sent in plain text: ${attrs}`),
  CMD_ERR_ID_REUSED: def<{ id: string }>('trust', ({ id }) => `Command id ${id} was already used for a different command`),
  CMD_ERR_RESERVED_ID: def<{ id: string; prefix: string }>('trust', ({ id, prefix }) => `Command id ${id} is reserved: ids starting with "${prefix}" are imgr's own`),
  CMD_ERR_UNPROCESSABLE: def<{ id: string; reason: string }>('principle 7', ({ id, reason }) => `Command ${id} cannot be processed: ${reason}`),
  CMD_ERR_GIVEN_UP: def<{ id: string; deliveries: number }>('principle 7', ({ id, deliveries }) => `Command ${id} was delivered ${deliveries} times without being processed and is given up`),

  // --- lookup
  IMG_ERR_NOT_FOUND: def<IdArg>('§7', ({ id }) => `Error getting image [${id}].`),
  IMG_ERR_EXISTS: def<IdArg>('event sourcing', ({ id }) => `Image ${id} already exists.`),
  IMG_ERR_REMOVED: def<IdArg>('§10', ({ id }) => `Image ${id} has been deleted.`),
  DS_ERR_NOT_FOUND: def<IdArg>('§7', ({ id }) => `Error getting datastore [${id}].`),

  // --- §6.1 management
  IMG_ERR_DELETE_VMS: def<{ vms: number }>('§6.1 E1', ({ vms }) => `Cannot delete image. There are ${vms} VMs using it.`),
  IMG_ERR_DELETE_CLONES: def<{ clones: number }>(
    '§6.1 E2, W7',
    ({ clones }) => `Cannot delete image. There are ${clones} active clone operations.`,
  ),
  IMG_ERR_ENABLE_STATE: def<StateArg>('§6.1 E3', ({ state }) => `Could not enable image: Image cannot be in state ${state}.`),
  IMG_ERR_DISABLE_STATE: def<StateArg>('§6.1 E3', ({ state }) => `Could not disable image: Image cannot be in state ${state}.`),
  IMG_ERR_PERSISTENT_STATE: def<StateArg>(
    '§6.1 E3, W28',
    ({ state }) => `Could not make image persistent: Image cannot be in state ${state}.`,
  ),
  IMG_ERR_NONPERSISTENT_STATE: def<StateArg>(
    '§6.1 E3, W28',
    ({ state }) => `Could not make image non-persistent: Image cannot be in state ${state}.`,
  ),
  IMG_ERR_CLONE_STATE: def<StateArg>('§6.1 E4 (allocate-time)', ({ state }) => `Cannot clone image in state: ${state}`),
  IMG_ERR_CLONE_START_STATE: def('§6.1 E4 (start-time)', () => `Cannot clone image in current state`),
  IMG_ERR_SNAP_DELETE_STATE: def<StateArg>('§6.1 E5', ({ state }) => `Cannot delete snapshot in state ${state}`),
  IMG_ERR_SNAP_REVERT_STATE: def<StateArg>('§6.1 E5', ({ state }) => `Cannot revert to snapshot in state ${state}`),
  IMG_ERR_SNAP_FLATTEN_STATE: def<StateArg>('§6.1 E5', ({ state }) => `Cannot flatten snapshot in state ${state}`),
  IMG_ERR_FLATTEN_INCREMENTS_STATE: def<StateArg>('§6.1 E6', ({ state }) => `Cannot flatten increments in state ${state}`),
  IMG_ERR_NONPERSISTENT_SNAPSHOTS: def('§6.1 E7', () => `Could not make image non-persistent: Image has snapshots.`),
  IMG_ERR_DELETE_LOCKED: def(
    '§6.1 E8',
    () => `Image locked, use --force flag to remove the image. Force delete may leave some files on Datastore`,
  ),
  IMG_ERR_BACKUP_ENABLE: def('§7.6', () => `Could not enable image: Backup images cannot be enabled or disabled.`),
  IMG_ERR_BACKUP_DISABLE: def('§7.6', () => `Could not disable image: Backup images cannot be enabled or disabled.`),
  IMG_ERR_ENABLE_NO_CONTENT: def(
    'W8',
    () => `Could not enable image: Image has no content (SOURCE is empty); delete it and register it again.`,
  ),
  IMG_ERR_DELETE_ACTIVE_BACKUP: def(
    '§7.5 step 3',
    () => `Active backup on the associated VM. Wait till it finish to delete the backup Image`,
  ),

  // --- §7.7 persistence
  IMG_ERR_PERSISTENT_DS_GONE: def('§7.7', () => `Datastore no longer exists.`),
  IMG_ERR_PERSISTENT_LVM: def('§7.7', () => `lvm datastores doesn't support change of image persistency.`),
  IMG_ERR_PERSISTENT_FILE_TYPE: def('§7.7', () => `KERNEL, RAMDISK and CONTEXT must be non-persistent`),
  IMG_ERR_PERSISTENT_BACKUP: def('§7.7', () => `BACKUP images must be persistent`),
  IMG_ERR_PERSISTENT_ONLY: def('§7.1.1, §7.7', () => `This Datastore only accepts persistent images.`),

  // --- §7.8 chtype
  IMG_ERR_CHTYPE_INCOMPATIBLE: def(
    '§7.8',
    () => `Cannot change image type to an incompatible type for the current datastore.`,
  ),
  IMG_ERR_CHTYPE_FIXED: def<{ type: string }>('§7.8, W18 (space restored)', ({ type }) => `Cannot change type for ${type} images.`),
  IMG_ERR_CHTYPE_SNAPSHOTS: def('§7.8', () => `Image with snapshots can be only of type OS or DATABLOCK`),
  IMG_ERR_UNKNOWN_TYPE: def<{ type: string }>('§3, W18 (no garbled fragment)', ({ type }) => `Unknown type ${type}`),

  // --- §6.2 acquire
  IMG_ERR_ACQUIRE_LOCKED: def<IdArg>('§6.2 A1', ({ id }) => `Cannot acquire image ${id}, it is locked`),
  IMG_ERR_ACQUIRE_PERSISTENT: def<IdArg>(
    '§6.2 A2',
    ({ id }) => `Cannot acquire image ${id}, it is persistent and already in use`,
  ),
  IMG_ERR_ACQUIRE_STATE: def<IdArg & StateArg>('§6.2 A3', ({ id, state }) => `Cannot acquire image ${id}, it is in state: ${state}`),
  IMG_ERR_ACQUIRE_TYPE: def<IdArg & { name: string; type: string }>(
    '§6.2 A4',
    ({ id, name, type }) => `Image ${id} (${name}) of type ${type} cannot be used as DISK.`,
  ),
  IMG_ERR_ATTACH_FILESYSTEM: def('§7.9.1, W24 (checked before acquiring)', () => `Can not attach disks FILESYSTEM`),
  IMG_ERR_SHAREABLE_FORMAT: def<IdArg & { format: string }>(
    'W26',
    ({ id, format }) => `Cannot acquire image ${id}, SHAREABLE images must be in raw or dir format, not ${format || 'unknown'}`,
  ),

  // --- §7.4 / §7.10 clone
  IMG_ERR_CLONE_TYPE: def<{ type: string }>('§7.4, W25', ({ type }) => `${type} images cannot be cloned.`),
  IMG_ERR_CLONE_SNAPSHOTS: def('§7.4', () => `Cannot clone images with snapshots`),
  IMG_ERR_CLONE_ORIGIN_GONE: def('§7.4 step 10', () => `Cannot clone image, it does not exist`),
  IMG_ERR_CLONE_BACKUP: def('§7.4, W18 (typo fixed)', () => `Cannot clone backup images`),
  IMG_ERR_CLONE_DS_TYPE: def('§7.4', () => `Clone only supported for IMAGE_DS Datastores`),
  IMG_ERR_CLONE_DS_MAD: def('§7.4', () => `Clone only supported to same DS_MAD Datastores`),

  // --- §7.11 snapshots
  IMG_ERR_SNAP_TYPE: def(
    '§7.11',
    () => `IMAGES of type KERNEL, RAMDISK, BACKUP, FILESYSTEM and CONTEXT does not have snapshots.`,
  ),
  IMG_ERR_SNAP_NOT_FOUND: def('§7.11', () => `Snapshot does not exist`),
  IMG_ERR_SNAP_ACTIVE: def('§7.11', () => `Cannot delete the active snapshot`),
  IMG_ERR_SNAP_CHILDREN: def('§7.11', () => `Cannot delete snapshot with children`),

  // --- §7.13 backups
  IMG_ERR_NOT_BACKUP: def('§7.13.2', () => `Image is not of type BACKUP`),
  IMG_ERR_RESTORE_TYPE: def('§7.13.1', () => `Can only restore images of type BACKUP`),
  IMG_ERR_RESTORE_STATE: def<StateArg>('W15', ({ state }) => `Cannot restore backup in state ${state}`),
  IMG_ERR_RESTORE_DST_GONE: def('§7.13.1', () => `Destination datastore does not exist`),
  IMG_ERR_RESTORE_DST_TYPE: def('§7.13.1', () => `Destination can be only an image datastore`),
  IMG_ERR_RESTORE_SELECTED: def('§7.13.1', () => `Cannot restore a VM from a selected disk backup`),
  IMG_ERR_RESTORE_DISK: def<{ disk: number }>('§7.13.1', ({ disk }) => `Cannot restore disk ${disk}, it is not part of the backup`),
  IMG_ERR_NOT_INCREMENTAL: def<IdArg>('§7.3', ({ id }) => `Backup image ${id} is not an incremental backup chain`),
  IMG_ERR_BACKUP_STATE: def<StateArg>('backup command', ({ state }) => `Cannot back up image in state ${state}`),
  IMG_ERR_BACKUP_TYPE: def<{ type: string }>('backup command', ({ type }) => `${type} images cannot be backed up`),
  IMG_ERR_BACKUP_DS: def('backup command', () => `Backups can only be stored in a BACKUP_DS datastore`),
  IMG_ERR_INCREMENT_STATE: def<StateArg>('§7.3', ({ state }) => `Cannot add a backup increment in state ${state}`),

  // --- §7.1 allocation
  IMG_ERR_ALLOC_DS_TYPE: def('§7.1.1', () => `New images can only be allocated in a files or image datastore.`),
  IMG_ERR_RESTRICTED_ATTR: def<{ attr: string }>('§7.1.1', ({ attr }) => `Template includes a restricted attribute ${attr}`),
  OBJ_ERR_NAME_EMPTY: def('§7.1.4', () => `Invalid NAME, it cannot be empty`),
  OBJ_ERR_NAME_CHAR: def<{ char: string }>('§7.1.4', ({ char }) => `Invalid NAME, char '${char}' is not allowed`),
  OBJ_ERR_ATTR_VALUE: def<{ attr: string; value: string; reason: string }>(
    'principle 8 (values a driver reads have a strict form)',
    ({ attr, value, reason }) => `Invalid ${attr} ${JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value)}: it ${reason}`,
  ),
  OBJ_ERR_NAME_LENGTH: def('§7.1.4', () => `Invalid NAME, max length is 128 chars`),
  IMG_ERR_NAME_TAKEN: def<IdArg>('§7.1.4', ({ id }) => `NAME is already taken by IMAGE ${id}.`),
  IMG_ERR_TYPE_NEEDS_IMAGE_DS: def<{ type: string; dsType: string }>(
    '§7.1.4, W19 (names the actual datastore type)',
    ({ type, dsType }) => `IMAGES of type ${type} can only be registered in an IMAGE_DS datastore, not in a ${dsType} datastore`,
  ),
  IMG_ERR_TYPE_NEEDS_FILE_DS: def(
    '§7.1.4',
    () => `IMAGES of type KERNEL, RAMDISK and CONTEXT cannot be registered in an IMAGE_DS datastore`,
  ),
  IMG_ERR_TYPE_NEEDS_BACKUP_DS: def('§7.1.4', () => `IMAGES of type BACKUP can only be registered in an BACKUP_DS datastore`),
  IMG_ERR_PATH_AND_SOURCE: def('§7.1.4', () => `PATH and SOURCE cannot be both set.`),
  IMG_ERR_SOURCE_NEEDS_FORMAT: def('§7.1.4', () => `SOURCE needs FORMAT to be set.`),
  IMG_ERR_BACKUP_NO_SOURCE: def('§7.1.4', () => `SOURCE cannot be empty for BACKUP images`),
  IMG_ERR_NO_PATH_NOR_SOURCE: def('§7.1.4, W36 (also FILESYSTEM)', () => `No PATH nor SOURCE in template.`),
  IMG_ERR_SIZE: def('§7.1.2', () => `Wrong number or missing SIZE attribute.`),
  IMG_ERR_SIZE_UNKNOWN: def('§7.1.2, W12', () => `Cannot determine image SIZE.`),
  IMG_ERR_STAT_FAILED: def<{ reason: string }>('§7.1.2, W12 (its own message)', ({ reason }) => `Cannot determine image SIZE: ${reason}`),
  IMG_ERR_SAVE_AS_TYPE: def<{ type: string }>('§7.2', ({ type }) => `Cannot save an image of type ${type}`),
  IMG_ERR_SAVE_AS_FORMAT: def(
    '§7.2, W34 (checked before the transfer starts)',
    () => `Image created to save as a disk but VM disk does not contains either FORMAT or DRIVER attribute.`,
  ),

  // --- datastores (§12, §13)
  DS_ERR_NAME_TAKEN: def<IdArg>('§12.3', ({ id }) => `NAME is already taken by DATASTORE ${id}.`),
  DS_ERR_EXISTS: def<IdArg>('event sourcing', ({ id }) => `Datastore ${id} already exists.`),
  DS_ERR_SYSTEM_DS_MAD: def('§12.3', () => `SYSTEM datastores cannot have DS_MAD defined.`),
  DS_ERR_NO_DS_MAD: def('§12.3', () => `No DS_MAD in template.`),
  DS_ERR_DS_MAD_UNKNOWN: def<{ mad: string }>('§12.3', ({ mad }) => `DS_MAD named "${mad}" is not defined in imgr's configuration (drivers.dsMads)`),
  DS_ERR_REQUIRED_ATTR: def<{ attr: string }>(
    '§12.3',
    ({ attr }) => `Datastore template is missing the "${attr}" attribute or it's empty.`,
  ),
  DS_ERR_NO_TM_MAD: def('§12.3', () => `No TM_MAD in template.`),
  DS_ERR_TM_MAD_UNKNOWN: def<{ mad: string }>('§12.3', ({ mad }) => `TM_MAD named "${mad}" is not defined in imgr's configuration (drivers.tmMads)`),
  DS_ERR_DISK_TYPE_IMAGE: def('§12.3', () => `Invalid DISK_TYPE for an Image Datastore.`),
  DS_ERR_DISK_TYPE_SYSTEM: def('§12.3', () => `Invalid DISK_TYPE for a System Datastore.`),
  DS_ERR_DISK_TYPE_UNKNOWN: def('§12.3', () => `Unknown DISK_TYPE in template.`),
  DS_ERR_ENABLE_TYPE: def('§12.4', () => `Only SYSTEM_DS can be disabled or enabled`),
  DS_ERR_NOT_EMPTY: def<IdArg>('§12.4', ({ id }) => `Datastore ${id} is not empty.`),
  DS_ERR_NO_SPACE: def('§13.1', () => `Not enough space in datastore`),
  DS_ERR_MONITOR_INCOMPLETE: def<{ missing: string }>(
    'W39',
    ({ missing }) => `Incomplete monitor data: missing ${missing}`,
  ),
} as const;

export type ErrorCode = keyof typeof ERRORS;
export const ERROR_CODES = Object.keys(ERRORS) as ErrorCode[];
type ArgsOf<C extends ErrorCode> = (typeof ERRORS)[C] extends ErrorDef<infer A> ? A : never;

export interface Rejection {
  readonly code: ErrorCode;
  readonly message: string;
}

/** Builds a rejection with the registry's text for `code`. */
export function rejection<C extends ErrorCode>(
  code: C,
  ...args: ArgsOf<C> extends undefined ? [] : [ArgsOf<C>]
): Rejection {
  // The registry's per-code argument type is enforced by the signature above.
  const text = ERRORS[code].text as (a: ArgsOf<C> | undefined) => string;
  return { code, message: text(args[0]) };
}
