import type { ImageRecord } from '../../messages/image-record.js';
import type { ImageType } from '../../messages/states.js';
import { CLONABLE_TYPES, FILE_TYPES, parseImageType } from '../../messages/states.js';
import { isAdmin } from '../../messages/envelope.js';
import { INTERNAL_ID_PREFIX } from '../../messages/wire.js';
import { RESTORE_STAGING_EXTRA } from '../../messages/driver.js';
import { rejection, type Rejection } from '../../messages/errors.js';
import type { DatastoreInfo } from '../../messages/datastore-info.js';
import type { ImageAction } from '../../messages/driver.js';
import type { ImageEventOf } from './events.js';
import { addId, backupStamp, emptyImage } from './record.js';
import { IMAGE_VALUE_FORMS, valueRefusal } from '../../messages/driver-values.js';

/** Principle 8: a value a driver reads (PATH, FS, FORMAT, MD5…) must have its strict form (driver-values.ts). */
export function driverValueError(template: Readonly<Record<string, string>>): Rejection | undefined {
  const bad = valueRefusal(IMAGE_VALUE_FORMS, template);
  return bad ? rejection('OBJ_ERR_ATTR_VALUE', bad) : undefined;
}

/** A valid allocation: the new record, its first state and the driver action to start. */
export interface Allocation {
  readonly record: ImageRecord;
  readonly state: 'READY' | 'LOCKED';
  readonly action: Extract<ImageAction, 'CP' | 'MKFS' | 'CLONE'> | null;
  /** Extra data of the driver request (§9.1). */
  readonly extra?: Readonly<Record<string, string>>;
}
export type AllocationResult = Allocation | Rejection;
export const isRejection = (r: AllocationResult): r is Rejection => 'code' in r;

const NAME_FORBIDDEN = ['&', '|', ':', '\\', '"', ';', '/', "'", '#', '{', '}', '$', '<', '>', '\t', '\n', '\v', '\f', '\r'];

/** §7.1.4 step 1; shared with datastores (§12.3). */
export function nameError(name: string): Rejection | undefined {
  if (name === '') return rejection('OBJ_ERR_NAME_EMPTY');
  const bad = NAME_FORBIDDEN.find((c) => name.includes(c));
  if (bad !== undefined) return rejection('OBJ_ERR_NAME_CHAR', { char: bad });
  if (name.length > 128) return rejection('OBJ_ERR_NAME_LENGTH');
  return undefined;
}

/** Attributes that become fields (§2) and are taken out of the template; a user DRIVER is discarded. */
const CONSUMED = ['NAME', 'TYPE', 'PERSISTENT', 'SIZE', 'FS', 'PATH', 'SOURCE', 'FORMAT', 'TM_MAD', 'VM_ID', 'DRIVER'];

/** W31: attributes a clone does not inherit, because they describe the origin's own history. */
const NOT_INHERITED = /^(ERROR|FORCE_DELETE|SAVE_AS_HOT|SAVED_.*|FROM_APP.*|FROM_BACKUP_DS|BACKUP_.*|DRIVER)$/;

const upperKeys = (t: Readonly<Record<string, string>>): Record<string, string> =>
  Object.fromEntries(Object.entries(t).map(([k, v]) => [k.trim().toUpperCase(), v]));

/** A leading integer, as the reference parses SIZE; undefined when there is none. */
function parseSize(v: string | undefined): number | undefined {
  const m = /^\s*(\d+)/.exec(v ?? '');
  return m?.[1] === undefined ? undefined : Number(m[1]);
}

/** §3: the configured default type accepts only OS, CDROM and DATABLOCK. */
function resolveType(raw: string | undefined, defaultType: string): ImageType | Rejection {
  const text = (raw ?? '').trim();
  if (text === '') {
    const d = parseImageType(defaultType);
    return d === 'CDROM' || d === 'DATABLOCK' ? d : 'OS';
  }
  return parseImageType(text) ?? rejection('IMG_ERR_UNKNOWN_TYPE', { type: text });
}

/** §7.1.4 step 2 with W19's text naming the actual datastore type. */
function typeDatastoreError(type: ImageType, ds: DatastoreInfo): Rejection | undefined {
  if (type === 'BACKUP') return ds.type === 'BACKUP_DS' ? undefined : rejection('IMG_ERR_TYPE_NEEDS_BACKUP_DS');
  if (FILE_TYPES.includes(type)) return ds.type === 'FILE_DS' ? undefined : rejection('IMG_ERR_TYPE_NEEDS_FILE_DS');
  return ds.type === 'IMAGE_DS' ? undefined : rejection('IMG_ERR_TYPE_NEEDS_IMAGE_DS', { type, dsType: ds.type });
}

/** §3 type rule on persistence: forced non-persistent or persistent. */
function typePersistence(type: ImageType, requested: boolean): boolean {
  if (type === 'BACKUP') return true;
  if (type === 'CDROM' || FILE_TYPES.includes(type)) return false;
  return requested;
}

/** §3 DEV_PREFIX: defaulted for OS/DATABLOCK, removed for all other types. */
function withDevPrefix(t: Record<string, string>, type: ImageType, prefix: string): Record<string, string> {
  const { DEV_PREFIX, ...rest } = t;
  if (type !== 'OS' && type !== 'DATABLOCK') return rest;
  return { ...rest, DEV_PREFIX: DEV_PREFIX !== undefined && DEV_PREFIX !== '' ? DEV_PREFIX : prefix };
}

/** §7.1.3: non-persistent images cannot be SHAREABLE. */
function withoutShareableUnlessPersistent(t: Record<string, string>, persistent: boolean): Record<string, string> {
  if (persistent || (t['PERSISTENT_TYPE'] ?? '').toUpperCase() !== 'SHAREABLE') return t;
  const { PERSISTENT_TYPE: _dropped, ...rest } = t;
  return rest;
}

/** §13.1: refused when the datastore has less room than the new image needs (W38: pending creations count). */
function capacityError(ds: DatastoreInfo, sizeMb: number): Rejection | undefined {
  return ds.availableMb !== null && sizeMb > ds.availableMb ? rejection('DS_ERR_NO_SPACE') : undefined;
}

function base(ev: { imageId: number; meta: { at: number; actor: { uid: number; gid: number; name: string } } }, ds: DatastoreInfo): ImageRecord {
  const at = Math.floor(ev.meta.at / 1000);
  return {
    ...emptyImage(ev.imageId),
    uid: ev.meta.actor.uid,
    gid: ev.meta.actor.gid,
    uname: ev.meta.actor.name,
    gname: '',
    diskType: ds.diskType,
    datastore: { id: ds.id, name: ds.name, type: ds.type, dsMad: ds.dsMad },
    regTime: at,
    modTime: at,
  };
}

/** §7.1: allocate / register from a template. */
export function allocateFromTemplate(ev: ImageEventOf<'image.allocate'>): AllocationResult {
  const ds = ev.ctx.datastore;
  if (ds === null) return rejection('DS_ERR_NOT_FOUND', { id: ev.datastoreId });
  if (ds.type !== 'IMAGE_DS' && ds.type !== 'FILE_DS') return rejection('IMG_ERR_ALLOC_DS_TYPE');
  const tpl = upperKeys(ev.template);
  if (!isAdmin(ev.meta.actor) && tpl['SOURCE'] !== undefined) return rejection('IMG_ERR_RESTRICTED_ATTR', { attr: 'SOURCE' });

  const name = tpl['NAME'] ?? '';
  const bad = nameError(name) ?? driverValueError(tpl);
  if (bad) return bad;
  const type = resolveType(tpl['TYPE'], ev.ctx.defaults.imageType);
  if (typeof type !== 'string') return type;
  const dsError = typeDatastoreError(type, ds);
  if (dsError) return dsError;
  if (ev.ctx.nameTakenBy !== null) return rejection('IMG_ERR_NAME_TAKEN', { id: ev.ctx.nameTakenBy });

  // §7.1.3, with W20: the type rule applies before the persistent-only check.
  const requested =
    tpl['PERSISTENT'] !== undefined
      ? tpl['PERSISTENT'].trim().toUpperCase() === 'YES'
      : ev.ctx.defaults.persistentNew.trim().toUpperCase() === 'YES';
  const persistent = typePersistence(type, requested);
  if (!persistent && ds.persistentOnly) return rejection('IMG_ERR_PERSISTENT_ONLY');

  const source = (tpl['SOURCE'] ?? '').trim();
  const path = (tpl['PATH'] ?? '').trim();
  const templateSize = parseSize(tpl['SIZE']);
  let format = (tpl['FORMAT'] ?? '').trim();
  let size: number;
  let state: Allocation['state'];
  let action: Allocation['action'];
  const extra: Record<string, string> = {};
  const cpExtra: Record<string, string> = {};

  if (source !== '') {
    if (path !== '') return rejection('IMG_ERR_PATH_AND_SOURCE');
    if (format === '') return rejection('IMG_ERR_SOURCE_NEEDS_FORMAT');
    if (templateSize === undefined) return rejection('IMG_ERR_SIZE');
    [size, state, action] = [templateSize, 'READY', null];
  } else if (path !== '') {
    // W12: the size comes from a STAT the host ran before deciding, or the template.
    if (ev.ctx.statFailure !== null) return rejection('IMG_ERR_STAT_FAILED', { reason: ev.ctx.statFailure });
    const s = ev.ctx.statSizeMb ?? templateSize;
    if (s === undefined) return rejection('IMG_ERR_SIZE_UNKNOWN');
    [size, state, action, format] = [s, 'LOCKED', 'CP', ''];
    const staged = restoreStaging(ev, path, tpl);
    if (staged !== null) cpExtra[RESTORE_STAGING_EXTRA] = staged;
  } else if (type === 'OS' || type === 'DATABLOCK') {
    if (templateSize === undefined) return rejection('IMG_ERR_SIZE');
    if (ds.driver !== '') {
      format = ds.driver;
      extra['DRIVER'] = ds.driver;
    } else if (format === '') format = 'raw';
    [size, state, action] = [templateSize, 'LOCKED', 'MKFS'];
  } else {
    // W36: FILESYSTEM without PATH or SOURCE is refused instead of staying LOCKED forever.
    return rejection('IMG_ERR_NO_PATH_NOR_SOURCE');
  }
  if (!ev.skipCapacityCheck) {
    const full = capacityError(ds, size);
    if (full) return full;
  }

  const rest = Object.fromEntries(Object.entries(tpl).filter(([k]) => !CONSUMED.includes(k)));
  const template = withDevPrefix(
    withoutShareableUnlessPersistent({ ...rest, ...extra }, persistent),
    type,
    ev.ctx.defaults.devicePrefix,
  );
  return {
    state,
    action,
    ...(Object.keys(cpExtra).length > 0 ? { extra: cpExtra } : {}),
    record: { ...base(ev, ds), name, type, persistent, source, path, format, size, fs: (tpl['FS'] ?? '').trim(), template },
  };
}

/**
 * The folder a RESTORE staged this disk in, when imgr itself registers a
 * restored disk (an internal command: a service's command id can never carry
 * the internal prefix) and its PATH is a file in that folder. A user's PATH
 * with the same attributes gets no allowance: only the datastore's SAFE_DIRS.
 */
function restoreStaging(ev: ImageEventOf<'image.allocate'>, path: string, tpl: Readonly<Record<string, string>>): string | null {
  if (!ev.meta.commandId.startsWith(INTERNAL_ID_PREFIX) || tpl['FROM_BACKUP_DS'] === undefined) return null;
  const m = /^(\/(?:[^/\s]+\/)*[^/\s]+)\/[^/\s]+$/.exec(path);
  return m?.[1] !== undefined && !m[1].split('/').includes('..') ? m[1] : null;
}

/** §7.4 steps 1–6 and 10: the clone target, checked against its origin. */
export function allocateClone(ev: ImageEventOf<'image.clone'>): AllocationResult {
  const origin = ev.ctx.origin;
  if (origin === null || origin.state === 'REMOVED') return rejection('IMG_ERR_CLONE_ORIGIN_GONE');
  if (origin.type === 'BACKUP') return rejection('IMG_ERR_CLONE_BACKUP');
  if (!CLONABLE_TYPES.includes(origin.type)) return rejection('IMG_ERR_CLONE_TYPE', { type: origin.type });
  if (origin.snapshots.list.length > 0) return rejection('IMG_ERR_CLONE_SNAPSHOTS');
  const ds = ev.ctx.datastore;
  if (ds === null) return rejection('DS_ERR_NOT_FOUND', { id: ev.datastoreId });
  if (ds.type !== 'IMAGE_DS') return rejection('IMG_ERR_CLONE_DS_TYPE');
  const extra: Record<string, string> = {};
  if (ds.id !== origin.datastore.id) {
    const ods = ev.ctx.originDatastore;
    if (ods === null) return rejection('DS_ERR_NOT_FOUND', { id: origin.datastore.id });
    if (ods.type !== 'IMAGE_DS') return rejection('IMG_ERR_CLONE_DS_TYPE');
    if (ods.dsMad !== ds.dsMad) return rejection('IMG_ERR_CLONE_DS_MAD');
    // §7.4 step 6: the driver reaches the origin's storage through the origin datastore's bridges.
    if (ods.bridgeList !== '') extra['SOURCE_BRIDGE_LIST'] = ods.bridgeList;
  }
  const full = capacityError(ds, origin.size);
  if (full) return full;
  const bad = nameError(ev.name);
  if (bad) return bad;
  if (ev.ctx.nameTakenBy !== null) return rejection('IMG_ERR_NAME_TAKEN', { id: ev.ctx.nameTakenBy });
  if (origin.state !== 'READY' && origin.state !== 'USED' && origin.state !== 'CLONE') {
    return rejection('IMG_ERR_CLONE_STATE', { state: origin.state });
  }
  // §7.4 step 4: a configured default overrides the origin's persistence.
  const configured = ev.ctx.defaults.persistent.trim().toUpperCase();
  const requested = ev.persistent || (configured !== '' ? configured === 'YES' : origin.persistent);
  const persistent = typePersistence(origin.type, requested);
  const inherited = Object.fromEntries(Object.entries(origin.template).filter(([k]) => !NOT_INHERITED.test(k)));
  return {
    state: 'LOCKED',
    action: 'CLONE',
    extra,
    record: {
      ...base(ev, ds),
      name: ev.name,
      type: origin.type,
      persistent,
      path: origin.source,
      format: origin.format,
      size: origin.size,
      fs: origin.fs,
      cloningId: origin.id,
      template: withoutShareableUnlessPersistent(inherited, persistent),
    },
  };
}

/** §7.2: the image a running VM's disk is saved into. */
export function allocateSaveAs(ev: ImageEventOf<'image.allocateSaveAs'>): AllocationResult {
  const ds = ev.ctx.datastore;
  if (ds === null) return rejection('DS_ERR_NOT_FOUND', { id: ev.originImageId });
  const type = resolveType(ev.imageType, ev.ctx.defaults.imageType);
  if (typeof type !== 'string') return type;
  if (!CLONABLE_TYPES.includes(type)) return rejection('IMG_ERR_SAVE_AS_TYPE', { type });
  const dsError = typeDatastoreError(type, ds);
  if (dsError) return dsError;
  const bad = nameError(ev.name) ?? driverValueError({ ...upperKeys(ev.template), ...(ev.diskFormat.trim() !== '' ? { FORMAT: ev.diskFormat } : {}) });
  if (bad) return bad;
  if (ev.ctx.nameTakenBy !== null) return rejection('IMG_ERR_NAME_TAKEN', { id: ev.ctx.nameTakenBy });
  // W34: a disk without FORMAT/DRIVER is refused before anything starts.
  if (ev.diskFormat.trim() === '') return rejection('IMG_ERR_SAVE_AS_FORMAT');
  const full = capacityError(ds, ev.sizeMb);
  if (full) return full;
  const persistent = typePersistence(type, ev.ctx.defaults.persistent.trim().toUpperCase() === 'YES');
  const tpl = Object.fromEntries(Object.entries(upperKeys(ev.template)).filter(([k]) => !CONSUMED.includes(k)));
  return {
    state: 'LOCKED',
    action: 'MKFS',
    record: {
      ...base(ev, ds),
      name: ev.name,
      type,
      persistent,
      format: 'save_as',
      size: ev.sizeMb,
      template: withDevPrefix(
        {
          ...tpl,
          SAVE_AS_HOT: 'YES',
          SAVED_IMAGE_ID: String(ev.originImageId),
          SAVED_DISK_ID: String(ev.diskId),
          SAVED_VM_ID: String(ev.vmId),
        },
        type,
        ev.ctx.defaults.devicePrefix,
      ),
      saveAs: {
        vmId: ev.vmId,
        diskId: ev.diskId,
        originImageId: ev.originImageId,
        diskFormat: ev.diskFormat.trim(),
        transferring: false,
      },
    },
  };
}

/** §7.3: a backup image, READY at once and held by its VM. */
export function allocateBackup(ev: ImageEventOf<'image.allocateBackup'>): AllocationResult {
  const ds = ev.ctx.datastore;
  if (ds === null) return rejection('DS_ERR_NOT_FOUND', { id: ev.datastoreId });
  if (ds.type !== 'BACKUP_DS') return rejection('IMG_ERR_TYPE_NEEDS_BACKUP_DS');
  const bad = driverValueError({ SOURCE: ev.source, FORMAT: ev.format });
  if (bad) return bad;
  const date = Math.floor(ev.meta.at / 1000);
  const template: Record<string, string> = {};
  if (ev.backupJobId !== null) template['BACKUP_JOB_ID'] = String(ev.backupJobId);
  if (ev.selectedDisks) template['BACKUP_SELECTED_DISKS'] = 'YES';
  return {
    state: 'READY',
    action: null,
    record: {
      ...base(ev, ds),
      uid: ev.owner.uid,
      gid: ev.owner.gid,
      uname: ev.owner.uname,
      gname: ev.owner.gname,
      // W33: the image id makes two backups of one VM in the same second distinct.
      name: `${ev.vmId} ${backupStamp(ev.meta.at)} #${ev.imageId}`,
      type: 'BACKUP',
      persistent: true,
      source: ev.source,
      format: ev.format,
      size: ev.sizeMb,
      vms: addId([], ev.vmId),
      backupDiskIds: [...new Set(ev.diskIds)].sort((a, b) => a - b),
      increments: ev.incremental
        ? [{ id: 0, type: 'FULL', parentId: -1, source: ev.source, size: ev.sizeMb, date }]
        : [],
      template,
    },
  };
}
