import { setup } from 'xstate';
import type { ImageRecord } from '../../messages/image-record.js';
import type { ImageLifecycle, ImageState, ImageType } from '../../messages/states.js';
import { CLONABLE_TYPES, FILE_TYPES, SNAPSHOT_TYPES, parseImageType } from '../../messages/states.js';
import { rejection, type ErrorCode, type Rejection } from '../../messages/errors.js';
import type { Effect } from '../../messages/effects.js';
import type { ImageFactType } from '../../messages/image-facts.js';
import type { ImageEvent } from './events.js';
import type { Refusal, Step } from './steps.js';
import type { Outcome } from '../shared/emitted.js';
import * as S from './steps.js';
import { backupJob, jobAnswered, matchesJob, restoreJob } from './jobs.js';
import { driverValueError, isRejection } from './allocate.js';
import { addId, emptyImage, errorText, idleStateFor, isShareable, removeId } from './record.js';
import { findSnapshot, snapshotDeletionError } from './snapshots.js';
import { incrementsSize } from './increments.js';

type Emitted = Outcome<ImageFactType>;

type Args = { context: ImageRecord; event: ImageEvent };
type Guard = (r: ImageRecord, ev: ImageEvent) => boolean;

// -------------------------------------------------------------------------- building blocks
// Each transition either applies a Step (assign + emit the fact) or emits a refusal.
// The target is always static: the statechart, not the step, says where the image goes.

const imageSetup = setup({
  types: {
    context: {} as ImageRecord,
    events: {} as ImageEvent,
    emitted: {} as Emitted,
    input: {} as { id: number },
  },
});

const apply = (step: Step, from: ImageLifecycle) =>
  imageSetup.enqueueActions(({ context, event, enqueue }) => {
    const s = step(context, event, from);
    enqueue.assign(S.withAbandoned(context, event, s.changes));
    enqueue.emit({ type: 'fact', fact: s.fact, detail: s.detail ?? {}, effects: s.effects ?? [] });
  });

const refuse = (refusal: Refusal, from: ImageLifecycle) =>
  imageSetup.enqueueActions(({ context, event, enqueue }) => {
    const r = refusal(context, event, from);
    enqueue.emit({ type: 'rejected', code: r.code, message: r.message });
  });

interface T {
  target?: string;
  guard?: (a: Args) => boolean;
  actions: ReturnType<typeof apply>;
}
const when = (g: Guard) => ({ guard: ({ context, event }: Args) => g(context, event) });
const to = (s: ImageLifecycle) => ({ target: `#image.${s}` });

/** A refusal guarded by its own check: it applies when the check yields a rejection. */
const refuseIf = (from: ImageLifecycle, check: (r: ImageRecord, ev: ImageEvent, from: ImageLifecycle) => Rejection | undefined): T => ({
  ...when((r, ev) => check(r, ev, from) !== undefined),
  actions: refuse((r, ev) => {
    const x = check(r, ev, from);
    if (x === undefined) throw new Error('refuseIf: check passed');
    return x;
  }, from),
});
const always = (from: ImageLifecycle, rej: Refusal): T => ({ actions: refuse(rej, from) });
const stay = (from: ImageLifecycle, step: Step, guard?: Guard): T => ({ ...(guard ? when(guard) : {}), actions: apply(step, from) });
const go = (from: ImageLifecycle, target: ImageLifecycle, step: Step, guard?: Guard): T => ({
  ...to(target),
  ...(guard ? when(guard) : {}),
  actions: apply(step, from),
});

// -------------------------------------------------------------------------- checks

const stateArg = (s: ImageLifecycle) => ({ state: s });

const enableChecks = (from: ImageLifecycle, ok: readonly ImageState[]) => (r: ImageRecord) =>
  r.type === 'BACKUP' ? rejection('IMG_ERR_BACKUP_ENABLE') : ok.includes(from as ImageState) ? undefined : rejection('IMG_ERR_ENABLE_STATE', stateArg(from));
const disableChecks = (from: ImageLifecycle, ok: readonly ImageState[]) => (r: ImageRecord) =>
  r.type === 'BACKUP' ? rejection('IMG_ERR_BACKUP_DISABLE') : ok.includes(from as ImageState) ? undefined : rejection('IMG_ERR_DISABLE_STATE', stateArg(from));

/** §7.7 in W28's order: validity first, then the state (idle states only), then the no-op. */
const PERSISTENCE_STATES: readonly ImageLifecycle[] = ['READY', 'DISABLED', 'ERROR'];
function persistenceRefusal(r: ImageRecord, ev: ImageEvent, from: ImageLifecycle): Rejection | undefined {
  const want = S.eventOf(ev, 'image.setPersistent').persistent;
  const ds = ev.ctx.datastore;
  if (ds === null) return rejection('IMG_ERR_PERSISTENT_DS_GONE');
  if (ds.dsMad.toLowerCase() === 'lvm') return rejection('IMG_ERR_PERSISTENT_LVM');
  if (want && FILE_TYPES.includes(r.type)) return rejection('IMG_ERR_PERSISTENT_FILE_TYPE');
  if (!want && r.type === 'BACKUP') return rejection('IMG_ERR_PERSISTENT_BACKUP');
  if (!want && ds.persistentOnly) return rejection('IMG_ERR_PERSISTENT_ONLY');
  if (!PERSISTENCE_STATES.includes(from)) {
    return rejection(want ? 'IMG_ERR_PERSISTENT_STATE' : 'IMG_ERR_NONPERSISTENT_STATE', stateArg(from));
  }
  if (!want && r.persistent && r.snapshots.list.length > 0) return rejection('IMG_ERR_NONPERSISTENT_SNAPSHOTS');
  return undefined;
}
const persistenceSet: Step = (r, ev) => {
  const want = S.eventOf(ev, 'image.setPersistent').persistent;
  return { fact: 'image.persistenceChanged', changes: { persistent: want }, detail: { persistent: want, changed: want !== r.persistent } };
};

/** §7.8: no state precondition; W18: unknown type names are refused plainly. */
function chtypeRefusal(r: ImageRecord, ev: ImageEvent): Rejection | undefined {
  const raw = S.eventOf(ev, 'image.chtype').imageType.trim();
  const wanted = raw === '' ? parseImageType(ev.ctx.defaults.imageType) ?? 'OS' : parseImageType(raw);
  if (wanted === undefined) return rejection('IMG_ERR_UNKNOWN_TYPE', { type: raw });
  if (r.type === 'BACKUP' || r.type === 'FILESYSTEM') return rejection('IMG_ERR_CHTYPE_FIXED', { type: r.type });
  const group = (t: ImageType): string => (CLONABLE_TYPES.includes(t) ? 'disk' : FILE_TYPES.includes(t) ? 'file' : t);
  if (group(wanted) !== group(r.type)) return rejection('IMG_ERR_CHTYPE_INCOMPATIBLE');
  if (r.snapshots.list.length > 0 && !SNAPSHOT_TYPES.includes(wanted)) return rejection('IMG_ERR_CHTYPE_SNAPSHOTS');
  return undefined;
}
const typeChanged: Step = (r, ev) => {
  const raw = S.eventOf(ev, 'image.chtype').imageType.trim();
  const type = (raw === '' ? parseImageType(ev.ctx.defaults.imageType) : parseImageType(raw)) ?? 'OS';
  return { fact: 'image.typeChanged', changes: { type }, detail: { from: r.type, to: type } };
};

/** §7.10 start, W25: the same type rule as finish. */
function cloneStartRefusal(r: ImageRecord, _ev: ImageEvent, from: ImageLifecycle): Rejection | undefined {
  if (r.type === 'BACKUP') return rejection('IMG_ERR_CLONE_BACKUP');
  if (!CLONABLE_TYPES.includes(r.type)) return rejection('IMG_ERR_CLONE_TYPE', { type: r.type });
  if (from !== 'READY' && from !== 'USED' && from !== 'CLONE') return rejection('IMG_ERR_CLONE_START_STATE');
  return undefined;
}
const cloneStarted: Step = (r, ev) => {
  const c = S.eventOf(ev, 'image.cloneStart').clone;
  const changes = c.kind === 'image' ? { clones: addId(r.clones, c.id) } : { appClones: addId(r.appClones, c.id) };
  return { fact: 'image.cloneStarted', changes: { ...changes, error: null }, detail: { kind: c.kind, id: c.id } };
};
const cloneFinished: Step = (r, ev) => {
  const c = S.eventOf(ev, 'image.cloneFinish').clone;
  const changes = c.kind === 'image' ? { clones: removeId(r.clones, c.id) } : { appClones: removeId(r.appClones, c.id) };
  return { fact: 'image.cloneFinished', changes, detail: { kind: c.kind, id: c.id } };
};
const cloneFinishLeaves = (s: ImageState): Guard => (r, ev) => {
  const c = S.eventOf(ev, 'image.cloneFinish').clone;
  const next = c.kind === 'image' ? { ...r, clones: removeId(r.clones, c.id) } : { ...r, appClones: removeId(r.appClones, c.id) };
  return idleStateFor(next) === s;
};
const notClonable: Guard = (r) => !CLONABLE_TYPES.includes(r.type);

/** §7.11: type, state (E5), then the snapshot-specific checks. */
type SnapOp = 'image.snapshotDelete' | 'image.snapshotRevert' | 'image.snapshotFlatten';
const SNAP_STATE_ERROR = {
  'image.snapshotDelete': 'IMG_ERR_SNAP_DELETE_STATE',
  'image.snapshotRevert': 'IMG_ERR_SNAP_REVERT_STATE',
  'image.snapshotFlatten': 'IMG_ERR_SNAP_FLATTEN_STATE',
} as const satisfies Record<SnapOp, ErrorCode>;
function snapshotRefusal(r: ImageRecord, ev: ImageEvent, from: ImageLifecycle): Rejection | undefined {
  const op = ev.type as SnapOp;
  const sid = S.eventOf(ev, op).snapshotId;
  if (!SNAPSHOT_TYPES.includes(r.type)) return rejection('IMG_ERR_SNAP_TYPE');
  if (from !== 'READY') return rejection(SNAP_STATE_ERROR[op], stateArg(from));
  if (op === 'image.snapshotDelete') return snapshotDeletionError(r.snapshots, sid);
  return findSnapshot(r.snapshots, sid) === undefined ? rejection('IMG_ERR_SNAP_NOT_FOUND') : undefined;
}
const SNAP_ACTION = { 'image.snapshotDelete': 'SNAP_DELETE', 'image.snapshotRevert': 'SNAP_REVERT', 'image.snapshotFlatten': 'SNAP_FLATTEN' } as const;
const snapshotRequested: Step = (r, ev) => {
  const op = ev.type as SnapOp;
  const sid = S.eventOf(ev, op).snapshotId;
  const req = S.request(r, ev, SNAP_ACTION[op]);
  return {
    fact: 'image.snapshotOperationRequested',
    changes: { ...req.changes, targetSnapshot: sid },
    detail: { operation: SNAP_ACTION[op], snapshotId: sid },
    effects: [req.effect],
  };
};
/** W29: reverting to the active snapshot needs no driver. */
const revertIsNoop: Guard = (r, ev) =>
  ev.type === 'image.snapshotRevert' && findSnapshot(r.snapshots, ev.snapshotId)?.active === true;
const revertNoop: Step = (_r, ev) => ({
  fact: 'image.commandIgnored',
  changes: {},
  detail: { command: ev.type, reason: 'snapshot is already active' },
});

/** §7.13.2 */
const flattenIncrementsRefusal = (r: ImageRecord, _ev: ImageEvent, from: ImageLifecycle): Rejection | undefined =>
  r.type !== 'BACKUP' ? rejection('IMG_ERR_NOT_BACKUP') : from !== 'READY' ? rejection('IMG_ERR_FLATTEN_INCREMENTS_STATE', stateArg(from)) : undefined;
const flattenIncrementsRequested: Step = (r, ev) => {
  const keepLast = S.eventOf(ev, 'image.flattenIncrements').keepLast;
  const req = S.request(r, ev, 'INCREMENT_FLATTEN', { KEEP_LAST: String(keepLast) });
  return { fact: 'image.incrementsFlattenRequested', changes: req.changes, detail: { keepLast }, effects: [req.effect] };
};

/** §7.3 later backups of an incremental chain. */
const incrementRefusal = (r: ImageRecord, ev: ImageEvent, from: ImageLifecycle): Rejection | undefined =>
  r.type !== 'BACKUP'
    ? rejection('IMG_ERR_NOT_BACKUP')
    : from !== 'READY'
      ? rejection('IMG_ERR_INCREMENT_STATE', stateArg(from))
      : r.increments.length === 0
        ? rejection('IMG_ERR_NOT_INCREMENTAL', { id: r.id })
        : // Principle 8: an increment's SOURCE reaches the backup drivers (BACKUP_INCREMENTS, IMGR_IMAGE_INCREMENTS).
          driverValueError({ SOURCE: S.eventOf(ev, 'image.addIncrement').source });
const incrementAdded: Step = (r, ev) => {
  const inc = S.eventOf(ev, 'image.addIncrement');
  const last = r.increments[r.increments.length - 1];
  const id = (last?.id ?? -1) + 1;
  const increments = [
    ...r.increments,
    { id, type: 'INCREMENT' as const, parentId: last?.id ?? -1, source: inc.source, size: inc.sizeMb, date: Math.floor(ev.meta.at / 1000) },
  ];
  const size = incrementsSize(increments);
  const keepLast = ev.ctx.datastore?.keepLast ?? null;
  return {
    fact: 'image.incrementAdded',
    changes: { increments, size },
    detail: { incrementId: id, source: inc.source, sizeMb: inc.sizeMb },
    effects: [
      { kind: 'quota.change', uid: r.uid, gid: r.gid, datastoreId: r.datastore.id, images: 0, sizeMb: size - r.size },
      // §7.3: a chain longer than the backup datastore's KEEP_LAST is flattened down to it.
      ...(keepLast !== null && increments.length > keepLast ? [{ kind: 'image.flattenIncrements' as const, imageId: r.id, keepLast }] : []),
    ],
  };
};

/** §7.13.1 with W15: a restore needs an idle backup image. */
function restoreRefusal(r: ImageRecord, ev: ImageEvent, from: ImageLifecycle): Rejection | undefined {
  const cmd = S.eventOf(ev, 'image.restore');
  if (r.type !== 'BACKUP') return rejection('IMG_ERR_RESTORE_TYPE');
  const dst = ev.ctx.datastore;
  if (dst === null) return rejection('IMG_ERR_RESTORE_DST_GONE');
  if (dst.type !== 'IMAGE_DS') return rejection('IMG_ERR_RESTORE_DST_TYPE');
  const disk = cmd.options.diskId;
  if (r.template['BACKUP_SELECTED_DISKS'] === 'YES' && disk === null) return rejection('IMG_ERR_RESTORE_SELECTED');
  if (disk !== null && !r.backupDiskIds.includes(disk)) return rejection('IMG_ERR_RESTORE_DISK', { disk });
  if (from !== 'READY') return rejection('IMG_ERR_RESTORE_STATE', stateArg(from));
  return undefined;
}
const restoreRequested: Step = (r, ev) => {
  const cmd = S.eventOf(ev, 'image.restore');
  const o = cmd.options;
  const extra: Record<string, string> = {
    DESTINATION_DS_ID: String(cmd.datastoreId),
    USERNAME: ev.meta.actor.name,
    USER_ID: String(ev.meta.actor.uid),
    GROUP_ID: String(ev.meta.actor.gid),
    NAME: o.name,
    NO_IP: o.noIp ? 'YES' : 'NO',
    NO_NIC: o.noNic ? 'YES' : 'NO',
    ...(o.incrementId !== null ? { INCREMENT_ID: String(o.incrementId) } : {}),
    ...(o.diskId !== null ? { DISK_ID: String(o.diskId) } : {}),
  };
  // A restore does not lock the backup image: it is a job on it, not `pending`.
  const effect: Extract<Effect, { kind: 'driver.request' }> = {
    kind: 'driver.request',
    requestId: ev.meta.commandId,
    action: 'RESTORE',
    imageId: r.id,
    datastoreId: r.datastore.id,
    deadline: ev.meta.at + ev.ctx.timeouts.RESTORE * 1000,
    extra,
  };
  const job = restoreJob(r, ev, {
    requestId: ev.meta.commandId,
    deadline: effect.deadline,
    destinationId: cmd.datastoreId,
    name: o.name,
    owner: { uid: ev.meta.actor.uid, gid: ev.meta.actor.gid, name: ev.meta.actor.name },
  });
  return { fact: 'image.restoreRequested', changes: job, detail: { requestId: ev.meta.commandId, destination: cmd.datastoreId }, effects: [effect] };
};

/** Backups read a disk with content that no driver is rewriting. */
const BACKUP_STATES: readonly ImageLifecycle[] = ['READY', 'USED', 'USED_PERS', 'CLONE', 'DISABLED'];
function backupRefusal(r: ImageRecord, ev: ImageEvent, from: ImageLifecycle): Rejection | undefined {
  if (!CLONABLE_TYPES.includes(r.type)) return rejection('IMG_ERR_BACKUP_TYPE', { type: r.type });
  if (ev.ctx.datastore?.type !== 'BACKUP_DS') return rejection('IMG_ERR_BACKUP_DS');
  if (!BACKUP_STATES.includes(from)) return rejection('IMG_ERR_BACKUP_STATE', stateArg(from));
  return undefined;
}
const backupRequested: Step = (r, ev) => {
  const b = S.eventOf(ev, 'image.backup');
  const effect: Extract<Effect, { kind: 'driver.request' }> = {
    kind: 'driver.request',
    requestId: ev.meta.commandId,
    action: 'BACKUP',
    imageId: r.id,
    datastoreId: b.backupDatastoreId,
    deadline: ev.meta.at + ev.ctx.timeouts.BACKUP * 1000,
    extra: {
      BACKUP_IMAGE_ID: String(b.backupImageId),
      CHAIN: b.chain ? 'YES' : 'NO',
      MODE: b.incremental ? 'INCREMENT' : 'FULL',
      VM_ID: String(b.vmId),
      DISK_SOURCE: r.source,
      DISK_FORMAT: r.format,
    },
  };
  const job = backupJob(r, ev, {
    requestId: ev.meta.commandId,
    deadline: effect.deadline,
    backupImageId: b.backupImageId,
    backupDatastoreId: b.backupDatastoreId,
    chain: b.chain,
    incremental: b.incremental,
    vmId: b.vmId,
  });
  return { fact: 'image.backupRequested', changes: job, detail: { backupImageId: b.backupImageId, backupDatastoreId: b.backupDatastoreId, incremental: b.incremental }, effects: [effect] };
};

/** §6.2: type refusals come before the state column (A4; W24 for attach). */
function acquireTypeRefusal(r: ImageRecord, ev: ImageEvent): Rejection | undefined {
  const a = S.eventOf(ev, 'image.acquire');
  if (FILE_TYPES.includes(r.type) || r.type === 'BACKUP') {
    return rejection('IMG_ERR_ACQUIRE_TYPE', { id: r.id, name: r.name, type: r.type });
  }
  if (a.mode === 'attach' && r.type === 'FILESYSTEM') return rejection('IMG_ERR_ATTACH_FILESYSTEM');
  return undefined;
}
const isAttach: Guard = (_r, ev) => S.eventOf(ev, 'image.acquire').mode === 'attach';
const persistent: Guard = (r) => r.persistent;
/** W26: a second VM may share a persistent disk only in a format the hypervisor can share. */
const shareableFormatRefusal = (r: ImageRecord): Rejection | undefined =>
  r.format === 'raw' || r.format === 'dir' ? undefined : rejection('IMG_ERR_SHAREABLE_FORMAT', { id: r.id, format: r.format });

const releaseTypeIgnored: Guard = (r) => FILE_TYPES.includes(r.type) || r.type === 'BACKUP';
const isFailedRelease: Guard = (_r, ev) => S.eventOf(ev, 'image.release').failed;
const vmSnapshotsApply: Guard = (r) => SNAPSHOT_TYPES.includes(r.type);
const snapshotsSet: Step = (_r, ev) => {
  const l = S.eventOf(ev, 'image.setSnapshots').snapshots;
  const snapshots = l ?? { mode: 'DENY' as const, currentBase: -1, nextSnapshot: 0, list: [] };
  return { fact: 'image.snapshotsSet', changes: { snapshots }, detail: { count: snapshots.list.length } };
};
const sizeSet: Step = (_r, ev) => {
  const size = S.eventOf(ev, 'image.setSize').sizeMb;
  return { fact: 'image.sizeSet', changes: { size }, detail: { sizeMb: size } };
};

/** Enable: DISABLED → derived from counters (W9); ERROR → unlock (§5.1) if content is valid (W8); W13 clears the error. */
const enabled =
  (notify: boolean): Step =>
  (r) => ({
    fact: 'image.enabled',
    changes: { error: null },
    detail: {},
    effects: notify && r.vms.length > 0 ? [{ kind: 'vm.diskReady', imageId: r.id, vmIds: [...r.vms] }] : [],
  });
const enableNoContent = (r: ImageRecord): Rejection | undefined =>
  r.source === '' && r.type !== 'BACKUP' ? rejection('IMG_ERR_ENABLE_NO_CONTENT') : undefined;
const idleIs = (s: ImageState): Guard => (r) => idleStateFor(r) === s;
/**
 * An image can reach ERROR with its copy still running (a VM waiting for it
 * failed, §6.2). Disabling it abandons that request: a DISABLED image runs
 * nothing, and the copy's late reply is a stale one (§10).
 */
const disabled: Step = (r) =>
  r.pending === null ? { fact: 'image.disabled', changes: {}, detail: {} } : { fact: 'image.disabled', changes: { pending: null }, detail: { abandoned: r.pending.requestId } };

const saveAsTransferring: Guard = (r) => r.saveAs?.transferring === true;
const saveAsSucceeded: Guard = (_r, ev) => S.eventOf(ev, 'image.saveAsDone').success;
const saveAsCompleted: Step = (r, ev, from) => {
  const ok = S.eventOf(ev, 'image.saveAsDone').success;
  const waiting = from === 'LOCKED_USED' || from === 'LOCKED_USED_PERS';
  const { SAVE_AS_HOT: _hot, ...template } = r.template;
  const vm = r.saveAs?.vmId ?? -1;
  const effects: Effect[] = waiting ? [{ kind: ok ? 'vm.diskReady' : 'vm.diskFailed', imageId: r.id, vmIds: [...r.vms] }] : [];
  return {
    fact: 'image.saveAsCompleted',
    changes: {
      template,
      saveAs: null,
      error: ok ? null : errorText(ev.meta.at, `Save-as of VM ${vm} disk ${r.saveAs?.diskId ?? -1} failed`),
    },
    detail: { success: ok, vmId: vm },
    effects,
  };
};

const driverLogged: Step = (r, ev) => {
  const l = S.eventOf(ev, 'driver.log');
  // Lines are kept only for a request this image asked for.
  if (!S.knowsRequest(r, l.requestId)) return { fact: 'image.replyIgnored', changes: {}, detail: { requestId: l.requestId, kind: `log ${l.action}`, reason: `the image never asked for request ${l.requestId}` } };
  return {
    fact: 'image.driverLogged',
    changes: {},
    detail: { requestId: l.requestId, action: l.action, lines: l.lines.map((x) => `${x.severity} ${x.text}`).join('\n') },
  };
};

const notFound: Refusal = (r) => rejection('IMG_ERR_NOT_FOUND', { id: r.id });
const gone: Refusal = (r) => rejection('IMG_ERR_REMOVED', { id: r.id });
const exists: Refusal = (r) => rejection('IMG_ERR_EXISTS', { id: r.id });
const refusesAllocation: Guard = (_r, ev) => isRejection(S.allocation(ev));
const allocationRefusal: Refusal = (_r, ev) => {
  const a = S.allocation(ev);
  if (!isRejection(a)) throw new Error('allocation accepted');
  return a;
};
const allocatesReady: Guard = (_r, ev) => {
  const a = S.allocation(ev);
  return !isRejection(a) && a.state === 'READY';
};

// -------------------------------------------------------------------------- per-state handlers

const ALLOCATIONS = ['image.allocate', 'image.clone', 'image.allocateSaveAs', 'image.allocateBackup'] as const;
const ALL_COMMANDS = [
  ...ALLOCATIONS,
  'image.addIncrement',
  'image.delete',
  'image.enable',
  'image.disable',
  'image.setPersistent',
  'image.chtype',
  'image.cloneStart',
  'image.cloneFinish',
  'image.snapshotDelete',
  'image.snapshotRevert',
  'image.snapshotFlatten',
  'image.flattenIncrements',
  'image.acquire',
  'image.release',
  'image.setSnapshots',
  'image.setSize',
  'image.saveAsDone',
  'image.restore',
  'image.backup',
] as const satisfies readonly ImageEvent['type'][];

type On = Partial<Record<ImageEvent['type'], T[]>>;

/** Handlers shared by every existing image; a state overrides what it does differently. */
function common(s: ImageState): On {
  const snap = [refuseIf(s, snapshotRefusal), go(s, 'LOCKED', snapshotRequested)];
  return {
    ...Object.fromEntries(ALLOCATIONS.map((t) => [t, [always(s, exists)]])),
    'image.addIncrement': [refuseIf(s, incrementRefusal), stay(s, incrementAdded)],
    'image.enable': [refuseIf(s, enableChecks(s, []))],
    'image.disable': [refuseIf(s, disableChecks(s, []))],
    'image.setPersistent': [refuseIf(s, persistenceRefusal), stay(s, persistenceSet)],
    'image.chtype': [refuseIf(s, chtypeRefusal), stay(s, typeChanged)],
    'image.cloneStart': [refuseIf(s, cloneStartRefusal)],
    'image.cloneFinish': [stay(s, S.ignored(`clone finish in state ${s}`))],
    'image.snapshotDelete': snap,
    'image.snapshotRevert': snap,
    'image.snapshotFlatten': snap,
    'image.flattenIncrements': [refuseIf(s, flattenIncrementsRefusal), go(s, 'LOCKED', flattenIncrementsRequested)],
    'image.acquire': [
      refuseIf(s, acquireTypeRefusal),
      always(s, (r) => rejection('IMG_ERR_ACQUIRE_STATE', { id: r.id, state: s })),
    ],
    // W9: a release always removes the VM, in every state; W25: types that VMs cannot hold are ignored.
    'image.release': [
      stay(s, S.ignored('images of this type are not held by VMs'), releaseTypeIgnored),
      stay(s, S.released, S.vmHoldsImage),
      stay(s, S.ignored('VM does not hold the image')),
    ],
    'image.setSnapshots': [stay(s, S.ignored(`snapshots are only taken from USED_PERS images`))],
    'image.setSize': [stay(s, S.ignored(`size is only taken from USED_PERS images`))],
    'image.saveAsDone': [stay(s, S.ignored('no save-as transfer in progress'))],
    'image.restore': [refuseIf(s, restoreRefusal)],
    'image.backup': [refuseIf(s, backupRefusal), stay(s, backupRequested)],
    'image.delete': [refuseIf(s, S.deleteRefusal), go(s, 'REMOVED', S.removedAtOnce, S.deleteRemovesAtOnce), go(s, 'DELETE', S.deleteRequested)],
    // W11: only the pending request's reply counts. Matching replies outside LOCKED*/DELETE
    // (e.g. after a failed VM put the image in ERROR) apply their data but unlock nothing.
    'driver.reply': [stay(s, S.replyIgnored, (r, ev) => !S.matchesPending(r, ev)), stay(s, S.replyApplied('stay'))],
    'driver.timeout': [stay(s, S.replyIgnored, (r, ev) => !S.matchesPending(r, ev)), stay(s, S.timedOut)],
    'driver.log': [stay(s, driverLogged)],
  };
}

/** LOCKED, LOCKED_USED, LOCKED_USED_PERS: a driver operation runs; `unlock` is where it ends (§5.1). */
function locked(s: 'LOCKED' | 'LOCKED_USED' | 'LOCKED_USED_PERS', unlock: ImageState): On {
  return {
    'driver.reply': [
      stay(s, S.replyIgnored, (r, ev) => !S.matchesPending(r, ev)),
      stay(s, S.replyApplied('stay'), S.replyKeepsLock),
      go(s, unlock, S.replyApplied('unlock'), (r, ev) => S.replySucceeds(r, ev) || S.replyFailureUnlocks(r, ev)),
      go(s, 'ERROR', S.replyApplied('error')),
    ],
    'driver.timeout': [stay(s, S.replyIgnored, (r, ev) => !S.matchesPending(r, ev)), go(s, 'ERROR', S.timedOut)],
    'image.saveAsDone': [
      stay(s, S.ignored('no save-as transfer in progress'), (r, ev) => !saveAsTransferring(r, ev)),
      go(s, unlock, saveAsCompleted, saveAsSucceeded),
      go(s, 'ERROR', saveAsCompleted),
    ],
  };
}

function handlers(s: ImageState, own: On): On {
  const on: On = { ...common(s), ...own };
  // A BACKUP or RESTORE job is answered in every state of an existing image: it locked nothing.
  for (const t of ['driver.reply', 'driver.timeout'] as const) on[t] = [stay(s, jobAnswered, matchesJob), ...(on[t] ?? [])];
  return on;
}

const READY = handlers('READY', {
  'image.enable': [refuseIf('READY', enableChecks('READY', ['READY'])), stay('READY', enabled(false))],
  'image.disable': [refuseIf('READY', disableChecks('READY', ['READY'])), go('READY', 'DISABLED', disabled)],
  'image.cloneStart': [refuseIf('READY', cloneStartRefusal), go('READY', 'CLONE', cloneStarted, persistent), go('READY', 'USED', cloneStarted)],
  'image.snapshotRevert': [refuseIf('READY', snapshotRefusal), stay('READY', revertNoop, revertIsNoop), go('READY', 'LOCKED', snapshotRequested)],
  'image.acquire': [refuseIf('READY', acquireTypeRefusal), go('READY', 'USED_PERS', S.acquired, persistent), go('READY', 'USED', S.acquired)],
  'image.restore': [refuseIf('READY', restoreRefusal), stay('READY', restoreRequested)],
});

const USED = handlers('USED', {
  'image.cloneStart': [refuseIf('USED', cloneStartRefusal), stay('USED', cloneStarted)],
  'image.cloneFinish': [
    stay('USED', S.ignored('images of this type are not cloned'), notClonable),
    go('USED', 'READY', cloneFinished, cloneFinishLeaves('READY')),
    stay('USED', cloneFinished),
  ],
  'image.acquire': [refuseIf('USED', acquireTypeRefusal), stay('USED', S.acquired)],
  'image.release': [
    stay('USED', S.ignored('images of this type are not held by VMs'), releaseTypeIgnored),
    go('USED', 'READY', S.released, S.releaseLeavesIdle),
    stay('USED', S.released),
  ],
});

const DISABLED = handlers('DISABLED', {
  'image.enable': [
    refuseIf('DISABLED', enableChecks('DISABLED', ['DISABLED'])),
    go('DISABLED', 'USED_PERS', enabled(false), idleIs('USED_PERS')),
    go('DISABLED', 'USED', enabled(false), idleIs('USED')),
    go('DISABLED', 'READY', enabled(false)),
  ],
  'image.disable': [refuseIf('DISABLED', disableChecks('DISABLED', ['DISABLED'])), stay('DISABLED', disabled)],
});

const LOCKED = handlers('LOCKED', {
  ...locked('LOCKED', 'READY'),
  'image.acquire': [
    refuseIf('LOCKED', acquireTypeRefusal),
    { ...always('LOCKED', (r) => rejection('IMG_ERR_ACQUIRE_LOCKED', { id: r.id })), ...when(isAttach) },
    go('LOCKED', 'LOCKED_USED_PERS', S.acquired, persistent),
    go('LOCKED', 'LOCKED_USED', S.acquired),
  ],
});

const ERROR = handlers('ERROR', {
  'image.enable': [
    refuseIf('ERROR', enableChecks('ERROR', ['ERROR'])),
    refuseIf('ERROR', enableNoContent),
    go('ERROR', 'USED_PERS', enabled(true), idleIs('USED_PERS')),
    go('ERROR', 'USED', enabled(true), idleIs('USED')),
    go('ERROR', 'READY', enabled(true)),
  ],
  'image.disable': [refuseIf('ERROR', disableChecks('ERROR', ['ERROR'])), go('ERROR', 'DISABLED', disabled)],
});

const CLONE = handlers('CLONE', {
  'image.cloneStart': [refuseIf('CLONE', cloneStartRefusal), stay('CLONE', cloneStarted)],
  'image.cloneFinish': [
    stay('CLONE', S.ignored('images of this type are not cloned'), notClonable),
    go('CLONE', 'READY', cloneFinished, cloneFinishLeaves('READY')),
    stay('CLONE', cloneFinished),
  ],
});

const DELETE = handlers('DELETE', {
  'image.delete': [refuseIf('DELETE', S.deleteRefusal), stay('DELETE', S.deleteRequested)],
  'driver.reply': [
    stay('DELETE', S.replyIgnored, (r, ev) => !S.matchesPending(r, ev)),
    go('DELETE', 'REMOVED', S.removedByDriver, S.rmRemoves),
    go('DELETE', 'ERROR', S.replyApplied('error'), (r) => r.pending?.action === 'RM'),
    go('DELETE', 'REMOVED', S.deferredRemoved, S.deferredDeleteLeavesNothing),
    stay('DELETE', S.deferredRm),
  ],
  'driver.timeout': [stay('DELETE', S.replyIgnored, (r, ev) => !S.matchesPending(r, ev)), go('DELETE', 'ERROR', S.timedOut)],
});

const USED_PERS = handlers('USED_PERS', {
  'image.acquire': [
    refuseIf('USED_PERS', acquireTypeRefusal),
    { ...always('USED_PERS', (r) => rejection('IMG_ERR_ACQUIRE_PERSISTENT', { id: r.id })), ...when((r) => !isShareable(r)) },
    refuseIf('USED_PERS', shareableFormatRefusal),
    stay('USED_PERS', S.acquired),
  ],
  'image.release': [
    stay('USED_PERS', S.ignored('images of this type are not held by VMs'), releaseTypeIgnored),
    stay('USED_PERS', S.ignored('VM does not hold the image'), (r, ev) => !S.vmHoldsImage(r, ev)),
    go('USED_PERS', 'ERROR', S.releasedFailed, isFailedRelease),
    go('USED_PERS', 'READY', S.released, S.lastHolderLeaves),
    stay('USED_PERS', S.released),
  ],
  'image.setSnapshots': [stay('USED_PERS', snapshotsSet, vmSnapshotsApply), stay('USED_PERS', S.ignored('type has no snapshots'))],
  'image.setSize': [stay('USED_PERS', sizeSet, vmSnapshotsApply), stay('USED_PERS', S.ignored('type has no snapshots'))],
});

const LOCKED_USED = handlers('LOCKED_USED', {
  ...locked('LOCKED_USED', 'USED'),
  'image.acquire': [
    refuseIf('LOCKED_USED', acquireTypeRefusal),
    { ...always('LOCKED_USED', (r) => rejection('IMG_ERR_ACQUIRE_LOCKED', { id: r.id })), ...when(isAttach) },
    stay('LOCKED_USED', S.acquired),
  ],
  'image.release': [
    stay('LOCKED_USED', S.ignored('images of this type are not held by VMs'), releaseTypeIgnored),
    stay('LOCKED_USED', S.ignored('VM does not hold the image'), (r, ev) => !S.vmHoldsImage(r, ev)),
    go('LOCKED_USED', 'LOCKED', S.released, S.lastHolderLeaves),
    stay('LOCKED_USED', S.released),
  ],
});

const LOCKED_USED_PERS = handlers('LOCKED_USED_PERS', {
  ...locked('LOCKED_USED_PERS', 'USED_PERS'),
  'image.acquire': [
    refuseIf('LOCKED_USED_PERS', acquireTypeRefusal),
    { ...always('LOCKED_USED_PERS', (r) => rejection('IMG_ERR_ACQUIRE_PERSISTENT', { id: r.id })), ...when((r) => !isShareable(r)) },
    { ...always('LOCKED_USED_PERS', (r) => rejection('IMG_ERR_ACQUIRE_LOCKED', { id: r.id })), ...when(isAttach) },
    refuseIf('LOCKED_USED_PERS', shareableFormatRefusal),
    stay('LOCKED_USED_PERS', S.acquired),
  ],
  'image.release': [
    stay('LOCKED_USED_PERS', S.ignored('images of this type are not held by VMs'), releaseTypeIgnored),
    stay('LOCKED_USED_PERS', S.ignored('VM does not hold the image'), (r, ev) => !S.vmHoldsImage(r, ev)),
    go('LOCKED_USED_PERS', 'ERROR', S.releasedFailed, isFailedRelease),
    go('LOCKED_USED_PERS', 'LOCKED', S.released, S.lastHolderLeaves),
    stay('LOCKED_USED_PERS', S.released),
  ],
});

/** INIT: the image does not exist yet (spec §4: never persisted); only an allocation makes it. */
const INIT: On = {
  ...Object.fromEntries(ALL_COMMANDS.map((t) => [t, [always('INIT', notFound)]])),
  ...Object.fromEntries(
    ALLOCATIONS.map((t) => [
      t,
      [
        { ...when(refusesAllocation), actions: refuse(allocationRefusal, 'INIT') },
        go('INIT', 'READY', S.allocated, allocatesReady),
        go('INIT', 'LOCKED', S.allocated),
      ],
    ]),
  ),
  'driver.reply': [always('INIT', notFound)],
  'driver.timeout': [always('INIT', notFound)],
  'driver.log': [always('INIT', notFound)],
};

/** REMOVED: commands are refused; late replies are recorded, with any source they orphaned (§10). */
const REMOVED: On = {
  ...Object.fromEntries(ALL_COMMANDS.map((t) => [t, [always('REMOVED', gone)]])),
  'driver.reply': [stay('REMOVED', S.replyIgnored)],
  'driver.timeout': [stay('REMOVED', S.replyIgnored)],
  // The last lines of an RM that removed the image still belong to its history.
  'driver.log': [stay('REMOVED', driverLogged)],
};

// -------------------------------------------------------------------------- the machine

export const imageMachine = imageSetup.createMachine({
  id: 'image',
  initial: 'INIT',
  context: ({ input }) => emptyImage(input.id),
  states: {
    INIT: { on: INIT },
    READY: { on: READY },
    USED: { on: USED },
    DISABLED: { on: DISABLED },
    LOCKED: { on: LOCKED },
    ERROR: { on: ERROR },
    CLONE: { on: CLONE },
    DELETE: { on: DELETE },
    USED_PERS: { on: USED_PERS },
    LOCKED_USED: { on: LOCKED_USED },
    LOCKED_USED_PERS: { on: LOCKED_USED_PERS },
    REMOVED: { on: REMOVED },
  },
});
