import type { ImageRecord } from '../../messages/image-record.js';
import type { ImageLifecycle, ImageState } from '../../messages/states.js';

export function emptyImage(id: number): ImageRecord {
  return {
    id,
    name: '',
    uid: -1,
    gid: -1,
    uname: '',
    gname: '',
    type: 'OS',
    diskType: 'FILE',
    persistent: false,
    datastore: { id: 0, name: '', type: 'IMAGE_DS', dsMad: '' },
    source: '',
    path: '',
    format: '',
    fs: '',
    size: 0,
    regTime: 0,
    modTime: 0,
    vms: [],
    clones: [],
    appClones: [],
    cloningId: -1,
    targetSnapshot: -1,
    template: {},
    error: null,
    snapshots: { mode: 'DENY', currentBase: -1, nextSnapshot: 0, list: [] },
    increments: [],
    backupDiskIds: [],
    pending: null,
    deleting: null,
    saveAs: null,
    reservedMb: 0,
    jobs: [],
    abandoned: [],
  };
}

export const cloningOps = (r: ImageRecord): number => r.clones.length + r.appClones.length;
export const snapshotsSize = (r: ImageRecord): number => r.snapshots.list.reduce((n, s) => n + s.size, 0);
export const isShareable = (r: ImageRecord): boolean =>
  (r.template['PERSISTENT_TYPE'] ?? '').toUpperCase() === 'SHAREABLE';

/** Sorted set semantics for id lists: adding twice or removing an absent id changes nothing. */
export const addId = (xs: readonly number[], x: number): number[] =>
  xs.includes(x) ? [...xs] : [...xs, x].sort((a, b) => a - b);
export const removeId = (xs: readonly number[], x: number): number[] => xs.filter((y) => y !== x);

/**
 * W9/W35: the state of an image that no driver operation holds, derived
 * from its counters instead of remembered.
 */
export function idleStateFor(r: Pick<ImageRecord, 'vms' | 'clones' | 'appClones' | 'persistent'>): ImageState {
  if (r.vms.length > 0) return r.persistent ? 'USED_PERS' : 'USED';
  if (r.clones.length + r.appClones.length > 0) return r.persistent ? 'CLONE' : 'USED';
  return 'READY';
}

/** The state that a finished operation unlocks an image into (§5.1). */
export function unlockTarget(state: ImageLifecycle): ImageState | undefined {
  switch (state) {
    case 'LOCKED':
      return 'READY';
    case 'LOCKED_USED':
      return 'USED';
    case 'LOCKED_USED_PERS':
      return 'USED_PERS';
    default:
      return undefined;
  }
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'] as const;
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'] as const;
const pad = (n: number): string => String(n).padStart(2, '0');

/** ctime-style UTC timestamp of spec §2, e.g. `Thu Aug 20 10:58:25 2026`. */
export function ctime(epochMs: number): string {
  const d = new Date(epochMs);
  const day = DAYS[d.getUTCDay()] ?? '';
  const mon = MONTHS[d.getUTCMonth()] ?? '';
  const time = `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
  return `${day} ${mon} ${pad(d.getUTCDate())} ${time} ${d.getUTCFullYear()}`;
}

/** `dd-Mon HH.MM.SS`, the backup image name stamp of §7.3. */
export function backupStamp(epochMs: number): string {
  const d = new Date(epochMs);
  const mon = MONTHS[d.getUTCMonth()] ?? '';
  return `${pad(d.getUTCDate())}-${mon} ${pad(d.getUTCHours())}.${pad(d.getUTCMinutes())}.${pad(d.getUTCSeconds())}`;
}

export const errorText = (atMs: number, message: string): string => `${ctime(atMs)} : ${message}`;

/** "Append info" of §9.2. */
export function appendInfo(message: string, info: string): string {
  const t = info.trim();
  return t !== '' && !t.startsWith('-') ? `${message}: ${t}` : message;
}
