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
    el('TYPE', IMAGE_TYPES.indexOf(i.type)),
    el('DISK_TYPE', i.diskType),
    el('PERSISTENT', i.persistent ? 1 : 0),
    el('REGTIME', i.regTime),
    el('MODTIME', i.modTime),
    el('SOURCE', i.source),
    el('PATH', i.path),
    el('FORMAT', i.format),
    el('FS', i.fs),
    el('SIZE', i.size),
    el('STATE', imageStateCode(state)),
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

function datastoreXml(d: DatastoreView): string {
  return [
    '<DATASTORE>',
    el('ID', d.id),
    el('UID', d.uid),
    el('GID', d.gid),
    el('UNAME', d.uname),
    el('NAME', d.name),
    el('DS_MAD', d.dsMad),
    el('TM_MAD', d.tmMad),
    el('BASE_PATH', d.basePath),
    el('TYPE', DATASTORE_TYPES.indexOf(d.type)),
    el('DISK_TYPE', d.diskType),
    el('STATE', d.state === 'DISABLED' ? 1 : 0),
    el('TOTAL_MB', d.totalMb),
    el('FREE_MB', d.freeMb),
    el('USED_MB', d.usedMb),
    ids('IMAGES', d.images),
    template(d.template),
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
  const image = r.image ? imageXml(r.image) : '';
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
