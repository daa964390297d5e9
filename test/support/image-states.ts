import type { ImageFact } from '../../src/messages/image-facts.js';
import type { SnapshotList } from '../../src/messages/image-record.js';
import type { ImageState, ImageType } from '../../src/messages/states.js';
import type { ImageAggregate } from '../../src/machines/image/decide.js';
import type { ImageEvent } from '../../src/machines/image/events.js';
import type { DriverResult } from '../../src/messages/driver.js';
import { event, history, type EventOptions } from './image-spec.js';
import { BACKUP_DS, FILE_DS } from './fixtures.js';

export interface ImageShape {
  readonly id?: number;
  readonly persistent?: boolean;
  readonly type?: ImageType;
  readonly shareable?: boolean;
  readonly format?: string;
  readonly template?: Record<string, string>;
}

const dsFor = (type: ImageType) => (type === 'KERNEL' || type === 'RAMDISK' || type === 'CONTEXT' ? { ctx: { datastore: FILE_DS } } : {});

function templateOf(s: ImageShape, extra: Record<string, string>): Record<string, string> {
  return {
    NAME: `img-${s.id ?? 5}`,
    PERSISTENT: s.persistent ? 'YES' : 'NO',
    TYPE: s.type ?? 'OS',
    SIZE: '10',
    ...(s.shareable ? { PERSISTENT_TYPE: 'SHAREABLE' } : {}),
    ...s.template,
    ...extra,
  };
}

/** Registers by SOURCE (administrator): READY at once. */
export const registerReady = (s: ImageShape = {}): ImageEvent =>
  event(
    {
      type: 'image.allocate',
      imageId: s.id ?? 5,
      datastoreId: 1,
      template: templateOf(s, { SOURCE: `/var/lib/one/datastores/1/src-${s.id ?? 5}`, FORMAT: s.format ?? 'raw' }),
    },
    dsFor(s.type ?? 'OS'),
  );

/** Registers from a PATH: LOCKED with a pending CP. */
export const registerFromPath = (s: ImageShape = {}): ImageEvent =>
  event(
    { type: 'image.allocate', imageId: s.id ?? 5, datastoreId: 1, template: templateOf(s, { PATH: '/tmp/disk.img' }) },
    dsFor(s.type ?? 'OS'),
  );

/** The driver's reply to the image's pending request. */
export const replyTo =
  (result: DriverResult, info: string, o: EventOptions = {}) =>
  (agg: ImageAggregate): ImageEvent => {
    const p = agg.record.pending;
    if (p === null) throw new Error(`no pending request in ${agg.state}`);
    return event({ type: 'driver.reply', imageId: agg.record.id, requestId: p.requestId, action: p.action, result, info }, o);
  };

export const timeoutOf = (agg: ImageAggregate): ImageEvent => {
  const p = agg.record.pending;
  if (p === null) throw new Error(`no pending request in ${agg.state}`);
  return event({ type: 'driver.timeout', imageId: agg.record.id, requestId: p.requestId });
};

export const acquire = (id: number, vmId: number, mode: 'deploy' | 'attach' = 'deploy'): ImageEvent =>
  event({ type: 'image.acquire', imageId: id, vmId, mode });

/**
 * Facts that bring an image of the given shape into `state` through the
 * public commands only, the way a real image gets there.
 */
export function imageIn(state: ImageState | 'INIT', s: ImageShape = {}): ImageFact[] {
  const id = s.id ?? 5;
  const p = { ...s, id };
  switch (state) {
    case 'INIT':
      return [];
    case 'READY':
      return history(id, registerReady(p));
    case 'USED':
      return history(id, registerReady({ ...p, persistent: false }), acquire(id, 10));
    case 'DISABLED':
      return history(id, registerReady(p), event({ type: 'image.disable', imageId: id }));
    case 'LOCKED':
      return history(id, registerFromPath(p));
    case 'ERROR':
      return history(id, registerFromPath(p), replyTo('FAILURE', 'disk full'));
    case 'CLONE':
      return history(id, registerReady({ ...p, persistent: true }), event({ type: 'image.cloneStart', imageId: id, clone: { kind: 'image', id: 50 } }));
    case 'DELETE':
      return history(id, registerReady(p), event({ type: 'image.delete', imageId: id }));
    case 'USED_PERS':
      return history(id, registerReady({ ...p, persistent: true }), acquire(id, 10));
    case 'LOCKED_USED':
      return history(id, registerFromPath({ ...p, persistent: false }), acquire(id, 10));
    case 'LOCKED_USED_PERS':
      return history(id, registerFromPath({ ...p, persistent: true }), acquire(id, 10));
  }
}

export interface BackupShape {
  readonly id?: number;
  readonly source?: string;
  readonly incremental?: boolean;
  readonly selectedDisks?: boolean;
  readonly diskIds?: number[];
  readonly backupJobId?: number;
  readonly owner?: { uid: number; gid: number; uname: string; gname: string };
  readonly at?: number;
}

/** A backup image of VM 9 in the BACKUP_DS, as the backup process registers it (§7.3). */
export const allocateBackup = (s: BackupShape = {}): ImageEvent =>
  event(
    {
      type: 'image.allocateBackup',
      imageId: s.id ?? 5,
      datastoreId: BACKUP_DS.id,
      vmId: 9,
      source: s.source ?? 'bk0',
      sizeMb: 10,
      format: 'raw',
      diskIds: s.diskIds ?? [0],
      incremental: s.incremental ?? true,
      selectedDisks: s.selectedDisks ?? false,
      backupJobId: s.backupJobId ?? null,
      owner: s.owner ?? { uid: 0, gid: 0, uname: 'oneadmin', gname: 'oneadmin' },
    },
    { ctx: { datastore: BACKUP_DS }, ...(s.at !== undefined ? { at: s.at } : {}) },
  );

/** Two snapshots pushed by a VM: 0 (3 MB) and the active 1 (4 MB). */
export const TWO_SNAPSHOTS: SnapshotList = {
  mode: 'DENY',
  currentBase: -1,
  nextSnapshot: 2,
  list: [
    { id: 0, name: 'a', date: 1, parent: -1, children: [], active: false, size: 3 },
    { id: 1, name: 'b', date: 2, parent: -1, children: [], active: true, size: 4 },
  ],
};

/** A persistent READY image that a VM left with snapshots (§7.12): the only way images get them. */
export const readyWithSnapshots = (s: ImageShape = {}, list: SnapshotList = TWO_SNAPSHOTS): ImageFact[] => {
  const id = s.id ?? 5;
  return history(
    id,
    registerReady({ persistent: true, ...s, id }),
    acquire(id, 10),
    event({ type: 'image.setSnapshots', imageId: id, snapshots: list }),
    event({ type: 'image.release', imageId: id, vmId: 10 }),
  );
};
