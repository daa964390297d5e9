import type { DatastoreRecord, DriverConfig } from '../../messages/datastore.js';
import { DatastoreTypeSchema, type DatastoreType } from '../../messages/states.js';
import { rejection, type Rejection } from '../../messages/errors.js';
import { nameError } from '../image/allocate.js';
import { DATASTORE_VALUE_FORMS, valueRefusal } from '../../messages/driver-values.js';
import type { DatastoreEventOf } from './events.js';
import { emptyDatastore } from './record.js';

const IMAGE_DISK_TYPES = ['FILE', 'BLOCK', 'ISCSI', 'RBD', 'GLUSTER', 'SHEEPDOG', 'FILESYSTEM'];
const SYSTEM_DISK_TYPES = ['FILE', 'RBD', 'BLOCK', 'FILESYSTEM'];
const KNOWN_DISK_TYPES = new Set([...IMAGE_DISK_TYPES, 'CDROM', 'RBD_CDROM', 'GLUSTER_CDROM', 'SHEEPDOG_CDROM']);

const upperKeys = (t: Readonly<Record<string, string>>): Record<string, string> =>
  Object.fromEntries(Object.entries(t).map(([k, v]) => [k.trim().toUpperCase(), v.trim()]));

function diskTypeOf(type: DatastoreType, wanted: string): string | Rejection {
  if (type === 'FILE_DS' || type === 'BACKUP_DS') return 'FILE';
  const d = wanted === '' ? 'FILE' : wanted.toUpperCase();
  if (!KNOWN_DISK_TYPES.has(d)) return rejection('DS_ERR_DISK_TYPE_UNKNOWN');
  if (type === 'IMAGE_DS' && !IMAGE_DISK_TYPES.includes(d)) return rejection('DS_ERR_DISK_TYPE_IMAGE');
  if (type === 'SYSTEM_DS' && !SYSTEM_DISK_TYPES.includes(d)) return rejection('DS_ERR_DISK_TYPE_SYSTEM');
  return d;
}

/** §12.3: validation of a new datastore, in the spec's order; returns the record to create. */
export function validateCreate(ev: DatastoreEventOf<'datastore.create'>, drivers: DriverConfig): DatastoreRecord | Rejection {
  const tpl = upperKeys(ev.template);
  const name = tpl['NAME'] ?? '';
  const bad = nameError(name);
  if (bad) return bad;
  // Principle 8: what a driver reads of the datastore (BASE_PATH, DRIVER, SAFE_DIRS, BRIDGE_LIST…) has its strict form.
  const badValue = valueRefusal(DATASTORE_VALUE_FORMS, tpl);
  if (badValue) return rejection('OBJ_ERR_ATTR_VALUE', badValue);
  if (ev.ctx.nameTakenBy !== null) return rejection('DS_ERR_NAME_TAKEN', { id: ev.ctx.nameTakenBy });

  const parsed = DatastoreTypeSchema.safeParse((tpl['TYPE'] ?? '').toUpperCase());
  const type: DatastoreType = parsed.success ? parsed.data : 'IMAGE_DS';
  const dsMadIn = tpl['DS_MAD'] ?? '';
  const template: Record<string, string> = { ...tpl };
  let dsMad = '-';
  let persistentOnly = false;
  if (type === 'SYSTEM_DS') {
    if (dsMadIn !== '') return rejection('DS_ERR_SYSTEM_DS_MAD');
  } else {
    if (dsMadIn === '') return rejection('DS_ERR_NO_DS_MAD');
    const conf = drivers.dsMads[dsMadIn];
    if (conf === undefined) return rejection('DS_ERR_DS_MAD_UNKNOWN', { mad: dsMadIn });
    if (conf.capacityCheck !== null) template['DATASTORE_CAPACITY_CHECK'] = conf.capacityCheck;
    const missing = conf.requiredAttrs.find((a) => (tpl[a.toUpperCase()] ?? '') === '');
    if (missing !== undefined) return rejection('DS_ERR_REQUIRED_ATTR', { attr: missing });
    dsMad = dsMadIn;
    persistentOnly = conf.persistentOnly;
  }

  let tmMad = '-';
  let tmDiskType = '';
  if (type !== 'BACKUP_DS') {
    const tmIn = tpl['TM_MAD'] ?? '';
    if (tmIn === '') return rejection('DS_ERR_NO_TM_MAD');
    const tm = drivers.tmMads[tmIn];
    if (tm === undefined) return rejection('DS_ERR_TM_MAD_UNKNOWN', { mad: tmIn });
    tmMad = tmIn;
    tmDiskType = tm.diskType;
    if (type === 'SYSTEM_DS') template['SHARED'] ??= tm.shared ? 'YES' : 'NO';
    else {
      template['LN_TARGET'] = tm.lnTarget;
      template['CLONE_TARGET'] = tm.cloneTarget;
      if (tm.driver !== '') template['DRIVER'] ??= tm.driver;
    }
    template['ALLOW_ORPHANS'] ??= 'NO';
    template['PERSISTENT_SNAPSHOTS'] ??= 'YES';
  }

  const diskType = diskTypeOf(type, tpl['DISK_TYPE'] ?? tmDiskType);
  if (typeof diskType !== 'string') return diskType;
  if (template['SAFE_DIRS'] === undefined && template['RESTRICTED_DIRS'] === undefined) {
    template['SAFE_DIRS'] = '/var/tmp';
    template['RESTRICTED_DIRS'] = '/';
  }
  const fields = new Set(['NAME', 'TYPE', 'DS_MAD', 'TM_MAD', 'BASE_PATH', 'DISK_TYPE']);

  return {
    ...emptyDatastore(ev.datastoreId),
    name,
    uid: ev.meta.actor.uid,
    gid: ev.meta.actor.gid,
    uname: ev.meta.actor.name,
    type,
    dsMad,
    tmMad,
    // §12.2: always <DATASTORE_LOCATION>/<ID>; a user value is discarded.
    basePath: `${drivers.datastoreLocation.replace(/\/+$/, '')}/${ev.datastoreId}`,
    diskType,
    persistentOnly,
    template: Object.fromEntries(Object.entries(template).filter(([k]) => !fields.has(k))),
  };
}

/**
 * §13.1 with W38: available = min(FREE_MB, LIMIT_MB − USED_MB) minus what
 * pending creations hold (`reservedMb`, counted from the images); null when
 * the check is off, or the datastore was never monitored (no data to refuse on).
 */
export function availableMb(r: DatastoreRecord, globalCheck: boolean, reservedMb: number): number | null {
  const flag = (r.template['DATASTORE_CAPACITY_CHECK'] ?? '').toUpperCase();
  const enabled = flag === '' ? globalCheck : flag === 'YES';
  if (!enabled || r.monitoredAt === null) return null;
  const limit = Number.parseInt(r.template['LIMIT_MB'] ?? '', 10);
  const ceiling = Number.isFinite(limit) ? Math.min(r.freeMb, limit - r.usedMb) : r.freeMb;
  return Math.max(0, ceiling - reservedMb);
}

export function capacityRefusal(r: DatastoreRecord, sizeMb: number, skip: boolean, globalCheck: boolean, reservedMb: number): Rejection | undefined {
  const room = skip ? null : availableMb(r, globalCheck, reservedMb);
  return room !== null && sizeMb > room ? rejection('DS_ERR_NO_SPACE') : undefined;
}

const MONITOR_KEYS = ['TOTAL_MB', 'FREE_MB', 'USED_MB'] as const;

/** §9.2 MONITOR with W39: all three counters must be present and numeric. */
export function parseMonitor(info: string): { totalMb: number; freeMb: number; usedMb: number } | { error: string } {
  let text: string;
  try {
    text = atob(info.trim());
  } catch {
    return { error: `monitor data is not base64: ${JSON.stringify(info.slice(0, 80))}` };
  }
  const values = new Map<string, number>();
  for (const line of text.split(/\r?\n/)) {
    const m = /^\s*([A-Z_]+)\s*=\s*"?(\d+)/.exec(line);
    if (m?.[1] !== undefined && m[2] !== undefined) values.set(m[1], Number(m[2]));
  }
  const missing = MONITOR_KEYS.filter((k) => !values.has(k));
  if (missing.length > 0) return { error: rejection('DS_ERR_MONITOR_INCOMPLETE', { missing: missing.join(', ') }).message };
  return { totalMb: values.get('TOTAL_MB') ?? 0, freeMb: values.get('FREE_MB') ?? 0, usedMb: values.get('USED_MB') ?? 0 };
}
