import type { DriverRequest } from '../messages/wire.js';
import type { ImageView } from '../messages/image-record.js';
import type { DatastoreView } from '../messages/datastore.js';
import { IMAGE_TYPES, DATASTORE_TYPES, imageStateCode } from '../messages/states.js';

/** XML text escaping (the document's strings may hold anything a user typed). */
export const xmlEscape = (s: string): string =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');

const el = (name: string, value: string | number): string => `<${name}>${xmlEscape(String(value))}</${name}>`;
const ids = (name: string, xs: readonly number[]): string => `<${name}>${xs.map((x) => el('ID', x)).join('')}</${name}>`;
/** Template attribute names become element names; anything that is not a valid XML name is left out. */
const template = (t: Readonly<Record<string, string>>): string =>
  `<TEMPLATE>${Object.entries(t)
    .filter(([k]) => /^[A-Za-z_][A-Za-z0-9_.-]*$/.test(k))
    .map(([k, v]) => el(k, v))
    .join('')}</TEMPLATE>`;

/** oned's numeric DISK_TYPE (Image::DiskType). */
const DISK_TYPES: Readonly<Record<string, number>> = { FILE: 0, CD_ROM: 1, BLOCK: 2, RBD: 3, RBD_CDROM: 4, GLUSTER: 5, GLUSTER_CDROM: 6, SHEEPDOG: 7, SHEEPDOG_CDROM: 8, ISCSI: 9, NONE: 255 };
const diskType = (t: string): number => DISK_TYPES[t.toUpperCase()] ?? 0;

/** oned's defaults: images are the owner's (umask 177), datastores also usable by the group. */
const permissions = (bits: readonly number[]): string =>
  `<PERMISSIONS>${['OWNER_U', 'OWNER_M', 'OWNER_A', 'GROUP_U', 'GROUP_M', 'GROUP_A', 'OTHER_U', 'OTHER_M', 'OTHER_A'].map((k, n) => el(k, bits[n] ?? 0)).join('')}</PERMISSIONS>`;
const IMAGE_PERMISSIONS = [1, 1, 0, 0, 0, 0, 0, 0, 0];
const DATASTORE_PERMISSIONS = [1, 1, 0, 1, 0, 0, 0, 0, 0];

function imageXml(i: ImageView): string {
  const state = i.state === 'REMOVED' ? 'DELETE' : i.state;
  const snaps = i.snapshots;
  return [
    '<IMAGE>',
    el('ID', i.id),
    el('UID', i.uid),
    el('GID', i.gid),
    el('UNAME', i.uname),
    el('GNAME', i.gname),
    el('NAME', i.name),
    permissions(IMAGE_PERMISSIONS),
    el('TYPE', IMAGE_TYPES.indexOf(i.type)),
    el('DISK_TYPE', diskType(i.diskType)),
    el('PERSISTENT', i.persistent ? 1 : 0),
    el('REGTIME', i.regTime),
    el('MODTIME', i.modTime),
    el('SOURCE', i.source),
    el('PATH', i.path),
    el('FORMAT', i.format),
    el('FS', i.fs),
    el('SIZE', i.size),
    el('STATE', imageStateCode(state)),
    // imgr keeps no previous state on the record; oned's scripts do not read it.
    el('PREV_STATE', imageStateCode(state)),
    el('RUNNING_VMS', i.vms.length),
    el('CLONING_OPS', i.clones.length + i.appClones.length),
    el('CLONING_ID', i.cloningId),
    el('TARGET_SNAPSHOT', i.targetSnapshot),
    el('DATASTORE_ID', i.datastore.id),
    el('DATASTORE', i.datastore.name),
    ids('VMS', i.vms),
    ids('CLONES', i.clones),
    ids('APP_CLONES', i.appClones),
    template(i.template),
    '<SNAPSHOTS>',
    el('ALLOW_ORPHANS', snaps.mode === 'ALLOW' ? 'YES' : snaps.mode === 'DENY' ? 'NO' : snaps.mode),
    el('CURRENT_BASE', snaps.currentBase),
    el('NEXT_SNAPSHOT', snaps.nextSnapshot),
    ...snaps.list.map(
      (s) =>
        `<SNAPSHOT>${el('ID', s.id)}${s.name ? el('NAME', s.name) : ''}${el('DATE', s.date)}${el('PARENT', s.parent)}${s.children.length ? el('CHILDREN', s.children.join(',')) : ''}${s.active ? el('ACTIVE', 'YES') : ''}${el('SIZE', s.size)}</SNAPSHOT>`,
    ),
    '</SNAPSHOTS>',
    '<BACKUP_INCREMENTS>',
    ...i.increments.map(
      (x) => `<INCREMENT>${el('ID', x.id)}${el('TYPE', x.type)}${el('PARENT_ID', x.parentId)}${el('SOURCE', x.source)}${el('SIZE', x.size)}${el('DATE', x.date)}</INCREMENT>`,
    ),
    '</BACKUP_INCREMENTS>',
    ids('BACKUP_DISK_IDS', i.backupDiskIds),
    '</IMAGE>',
  ].join('');
}

/** STAT's image is minimal in oned (driver-contract §4): PATH; SIZE for OS and DATABLOCK (the template value); BACKUP_JOB_ID when there is one. */
function statImageXml(i: ImageView | null): string {
  if (!i) return '';
  const t = i.template;
  const type = (t['TYPE'] ?? 'OS').trim().toUpperCase();
  const size = type === 'OS' || type === 'DATABLOCK' ? el('SIZE', t['SIZE'] ?? '') : '';
  const job = t['BACKUP_JOB_ID'] !== undefined ? el('BACKUP_JOB_ID', t['BACKUP_JOB_ID']) : '';
  return `<IMAGE>${el('PATH', i.path)}${size}${job}</IMAGE>`;
}

function datastoreXml(d: DatastoreView): string {
  return [
    '<DATASTORE>',
    el('ID', d.id),
    el('UID', d.uid),
    el('GID', d.gid),
    el('UNAME', d.uname),
    el('GNAME', d.gid === 0 ? 'oneadmin' : ''),
    el('NAME', d.name),
    permissions(DATASTORE_PERMISSIONS),
    el('DS_MAD', d.dsMad),
    el('TM_MAD', d.tmMad),
    el('BASE_PATH', d.basePath),
    el('TYPE', DATASTORE_TYPES.indexOf(d.type)),
    el('DISK_TYPE', diskType(d.diskType)),
    el('STATE', d.state === 'DISABLED' ? 1 : 0),
    // imgr has no clusters: every datastore is in oned's default cluster 0.
    ids('CLUSTERS', [0]),
    el('TOTAL_MB', d.totalMb),
    el('FREE_MB', d.freeMb),
    el('USED_MB', d.usedMb),
    // oned lists the datastore's images here; no driver reads it, and a list would grow with the pool.
    ids('IMAGES', []),
    // oned keeps the creation attributes in the template too.
    template({ DS_MAD: d.dsMad, TM_MAD: d.tmMad, TYPE: d.type, ...d.template }),
    '</DATASTORE>',
  ].join('');
}

/** Action-specific children of the root (driver-contract §4). */
function extras(r: DriverRequest): string {
  switch (r.action) {
    case 'INCREMENT_FLATTEN':
      return `<EXTRA_DATA>${el('KEEP_LAST', r.extra['KEEP_LAST'] ?? '')}</EXTRA_DATA>`;
    case 'RESTORE': {
      const { DESTINATION_DS_ID, ...options } = r.extra;
      return `${el('DESTINATION_DS_ID', DESTINATION_DS_ID ?? '')}${template(options)}`;
    }
    default:
      return Object.entries(r.extra)
        .filter(([k]) => /^[A-Z_][A-Z0-9_]*$/.test(k))
        .map(([k, v]) => el(k, v))
        .join('');
  }
}

/** The DS_DRIVER_ACTION_DATA document of a request, as an unmodified OpenNebula driver expects it. */
export function actionDocument(r: DriverRequest): string {
  const image = r.action === 'STAT' ? statImageXml(r.image) : r.image ? imageXml(r.image) : '';
  return `<DS_DRIVER_ACTION_DATA>${image}${datastoreXml(r.datastore)}${extras(r)}</DS_DRIVER_ACTION_DATA>`;
}

/**
 * The same facts as environment variables, so new drivers need no XML
 * parsing: IMGR_IMAGE_<FIELD>, IMGR_IMAGE_TEMPLATE_<ATTR>, IMGR_DS_<FIELD>,
 * IMGR_DS_TEMPLATE_<ATTR>, IMGR_EXTRA_<KEY>, IMGR_ACTION, IMGR_REQUEST_ID.
 */
export function actionEnvironment(r: DriverRequest): Record<string, string> {
  const env: Record<string, string> = { IMGR_ACTION: r.action, IMGR_REQUEST_ID: r.requestId };
  const put = (prefix: string, key: string, value: string | number | boolean): void => {
    const name = `${prefix}_${key.toUpperCase().replace(/[^A-Z0-9_]/g, '_')}`;
    env[name] = String(value);
  };
  if (r.image) {
    const i = r.image;
    const scalars = {
      ID: i.id,
      NAME: i.name,
      UID: i.uid,
      GID: i.gid,
      TYPE: i.type,
      PERSISTENT: i.persistent ? 1 : 0,
      SOURCE: i.source,
      PATH: i.path,
      FORMAT: i.format,
      FS: i.fs,
      SIZE: i.size,
      STATE: i.state === 'REMOVED' ? 'DELETE' : i.state,
      TARGET_SNAPSHOT: i.targetSnapshot,
      CLONING_ID: i.cloningId,
      VM_ID: i.vms[0] ?? '',
      INCREMENTS: i.increments.map((x) => `${x.id}:${x.source}`).join(','),
    };
    for (const [k, v] of Object.entries(scalars)) put('IMGR_IMAGE', k, v);
    for (const [k, v] of Object.entries(i.template)) put('IMGR_IMAGE_TEMPLATE', k, v);
  }
  const d = r.datastore;
  for (const [k, v] of Object.entries({ ID: d.id, NAME: d.name, TYPE: d.type, DS_MAD: d.dsMad, TM_MAD: d.tmMad, BASE_PATH: d.basePath, DISK_TYPE: d.diskType })) put('IMGR_DS', k, v);
  for (const [k, v] of Object.entries(d.template)) put('IMGR_DS_TEMPLATE', k, v);
  for (const [k, v] of Object.entries(r.extra)) put('IMGR_EXTRA', k, v);
  return env;
}
