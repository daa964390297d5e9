import type { ImageRecord } from '../../src/messages/image-record.js';
import type { ImageAction } from '../../src/messages/driver.js';
import type { ImageEvent } from '../../src/machines/image/events.js';
import type { ImageAggregate } from '../../src/machines/image/decide.js';
import { ImageCommandSchema, type ImageCommandInput } from '../../src/messages/image-commands.js';
import { decisionContext } from '../../src/machines/image/events.js';
import { ADMIN, BACKUP_DS, IMAGE_DS, T0 } from './fixtures.js';
import { emptyImage } from '../../src/machines/image/record.js';
import { TWO_SNAPSHOTS } from './image-states.js';

const ID = 5;
const SUCCESS_INFO: Record<ImageAction, string> = {
  CP: '/ds/1/img raw',
  CLONE: '/ds/1/img',
  MKFS: '/ds/1/img',
  RM: '',
  SNAP_DELETE: '-',
  SNAP_REVERT: '-',
  SNAP_FLATTEN: '-',
  INCREMENT_FLATTEN: '12 0:bk0',
};
const ORIGIN_VIEW = {
  ...emptyImage(3),
  name: 'origin',
  uid: 0,
  gid: 0,
  uname: 'oneadmin',
  datastore: { id: 1, name: 'default', type: 'IMAGE_DS' as const, dsMad: 'fs' },
  source: '/ds/1/origin',
  format: 'raw',
  size: 10,
  state: 'READY' as const,
};
const SNAPS = TWO_SNAPSHOTS;

/** Fixed events with stable ids: the alphabet that model-based and property tests draw from. */
function fixed(): ImageEvent[] {
  let n = 0;
  const ev = (c: ImageCommandInput, ctx: Parameters<typeof decisionContext>[0] = {}): ImageEvent => {
    n += 1;
    return {
      ...ImageCommandSchema.parse(c),
      meta: { commandId: `a${n}`, at: T0 + n * 1000, actor: ADMIN },
      ctx: decisionContext({ datastore: IMAGE_DS, ...ctx }),
    };
  };
  const tpl = (t: Record<string, string>) => ev({ type: 'image.allocate', imageId: ID, datastoreId: 1, template: { NAME: 'm', SIZE: '10', ...t } });
  return [
    tpl({ PATH: '/tmp/a' }),
    tpl({ PATH: '/tmp/a', PERSISTENT: 'YES' }),
    tpl({ SOURCE: '/ds/1/s', FORMAT: 'raw' }),
    tpl({ SOURCE: '/ds/1/s', FORMAT: 'raw', PERSISTENT: 'YES', PERSISTENT_TYPE: 'SHAREABLE' }),
    tpl({ TYPE: 'DATABLOCK' }),
    ev({ type: 'image.clone', imageId: ID, originId: 3, name: 'c', datastoreId: 1 }, { origin: ORIGIN_VIEW }),
    ev({ type: 'image.allocateSaveAs', imageId: ID, name: 's', vmId: 20, diskId: 0, originImageId: 3, imageType: 'OS', sizeMb: 10, diskFormat: 'raw' }),
    ev(
      { type: 'image.allocateBackup', imageId: ID, datastoreId: 100, vmId: 9, source: 'bk0', sizeMb: 10, format: 'raw', diskIds: [0], incremental: true, owner: { uid: 0, gid: 0, uname: 'oneadmin', gname: '' } },
      { datastore: BACKUP_DS },
    ),
    ev({ type: 'image.delete', imageId: ID }),
    ev({ type: 'image.delete', imageId: ID, force: true }),
    ev({ type: 'image.enable', imageId: ID }),
    ev({ type: 'image.disable', imageId: ID }),
    ev({ type: 'image.setPersistent', imageId: ID, persistent: true }),
    ev({ type: 'image.setPersistent', imageId: ID, persistent: false }),
    ev({ type: 'image.chtype', imageId: ID, imageType: 'DATABLOCK' }),
    ev({ type: 'image.cloneStart', imageId: ID, clone: { kind: 'image', id: 50 } }),
    ev({ type: 'image.cloneFinish', imageId: ID, clone: { kind: 'image', id: 50 } }),
    ev({ type: 'image.snapshotDelete', imageId: ID, snapshotId: 0 }),
    ev({ type: 'image.snapshotRevert', imageId: ID, snapshotId: 0 }),
    ev({ type: 'image.snapshotFlatten', imageId: ID, snapshotId: 0 }),
    ev({ type: 'image.flattenIncrements', imageId: ID, keepLast: 1 }, { datastore: BACKUP_DS }),
    ev({ type: 'image.addIncrement', imageId: ID, source: 'bk1', sizeMb: 2 }),
    ev({ type: 'image.acquire', imageId: ID, vmId: 10, mode: 'deploy' }),
    ev({ type: 'image.acquire', imageId: ID, vmId: 11, mode: 'attach' }),
    ev({ type: 'image.release', imageId: ID, vmId: 10 }),
    ev({ type: 'image.release', imageId: ID, vmId: 10, failed: true }),
    ev({ type: 'image.release', imageId: ID, vmId: 11 }),
    ev({ type: 'image.setSnapshots', imageId: ID, snapshots: SNAPS }),
    ev({ type: 'image.setSize', imageId: ID, sizeMb: 20 }),
    ev({ type: 'image.saveAsDone', imageId: ID, success: true }),
    ev({ type: 'image.saveAsDone', imageId: ID, success: false }),
    ev({ type: 'image.restore', imageId: ID, datastoreId: 1 }),
    ev({ type: 'driver.reply', imageId: ID, requestId: 'stale', action: 'CP', result: 'SUCCESS', info: '/ds/1/stale raw' }),
  ];
}
export const FIXED_EVENTS: readonly ImageEvent[] = fixed();

/** Replies and timeouts that answer whatever the image waits for. */
export function answers(r: ImageRecord): ImageEvent[] {
  const p = r.pending;
  if (p === null) return [];
  const at = p.issuedAt + 500;
  const meta = { at, actor: ADMIN };
  const ctx = decisionContext({ datastore: IMAGE_DS });
  const answer = (c: ImageCommandInput, suffix: string): ImageEvent => ({
    ...ImageCommandSchema.parse(c),
    meta: { ...meta, commandId: `${p.requestId}-${suffix}` },
    ctx,
  });
  const reply = (result: 'SUCCESS' | 'FAILURE', info: string): ImageEvent =>
    answer({ type: 'driver.reply', imageId: r.id, requestId: p.requestId, action: p.action, result, info }, result);
  return [
    reply('SUCCESS', SUCCESS_INFO[p.action]),
    reply('FAILURE', 'driver said no'),
    answer({ type: 'driver.timeout', imageId: r.id, requestId: p.requestId }, 'timeout'),
  ];
}

export const eventsFor = (agg: Pick<ImageAggregate, 'record'>): ImageEvent[] => [...FIXED_EVENTS, ...answers(agg.record)];

/** A coarse abstraction of an image that keeps the model finite but distinguishes what rules depend on. */
export function abstractState(value: string, r: ImageRecord): string {
  return [
    value,
    r.type,
    r.persistent ? 'P' : 'N',
    `vm${r.vms.length}`,
    `cl${r.clones.length}`,
    r.pending?.action ?? '-',
    r.deleting ? (r.deleting.force ? 'DF' : 'D') : '-',
    r.source === '' ? 'nosrc' : 'src',
    r.saveAs ? (r.saveAs.transferring ? 'xfer' : 'sa') : '-',
    `sn${r.snapshots.list.length}`,
    (r.template['PERSISTENT_TYPE'] ?? '') === 'SHAREABLE' ? 'SH' : '-',
  ].join('|');
}
