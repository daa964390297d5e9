import { ABANDONED_KEPT, type ImageRecord } from '../../messages/image-record.js';
import type { Effect } from '../../messages/effects.js';
import type { ImageFactType } from '../../messages/image-facts.js';
import type { ImageAction } from '../../messages/driver.js';
import type { ImageLifecycle } from '../../messages/states.js';
import { rejection, type Rejection } from '../../messages/errors.js';
import type { ImageEvent, ImageEventOf } from './events.js';
import { addId, errorText, idleStateFor, removeId } from './record.js';
import { abandonedOperationEffects, interpretReply, refusedSource, removalEffects, saveAsClearedEffects } from './replies.js';
import { allocateBackup, allocateClone, allocateFromTemplate, allocateSaveAs, isRejection, type AllocationResult } from './allocate.js';

import type { Detail } from '../shared/emitted.js';

/** What one accepted command does to the record, and the fact that records it. */
export interface StepResult {
  readonly fact: ImageFactType;
  readonly changes: Partial<ImageRecord>;
  readonly detail?: Detail;
  readonly effects?: readonly Effect[];
}
export type Step = (r: ImageRecord, ev: ImageEvent, from: ImageLifecycle) => StepResult;
export type Refusal = (r: ImageRecord, ev: ImageEvent, from: ImageLifecycle) => Rejection;

/** Narrows the machine event for a step; transitions are keyed by type, so a mismatch is a wiring bug. */
export function eventOf<T extends ImageEvent['type']>(ev: ImageEvent, type: T): ImageEventOf<T> {
  if (ev.type !== type) throw new Error(`handler for ${type} received ${ev.type}`);
  return ev as ImageEventOf<T>;
}

// ---------------------------------------------------------------- driver requests

/** Records the pending request (W1/W11) and asks for it in the same fact. */
export function request(
  r: ImageRecord,
  ev: ImageEvent,
  action: ImageAction,
  extra: Record<string, string> = {},
): { changes: Pick<ImageRecord, 'pending'>; effect: Effect } {
  const requestId = ev.meta.commandId;
  const deadline = ev.meta.at + ev.ctx.timeouts[action] * 1000;
  return {
    changes: { pending: { requestId, action, issuedAt: ev.meta.at, deadline } },
    effect: { kind: 'driver.request', requestId, action, imageId: r.id, datastoreId: r.datastore.id, deadline, extra },
  };
}

/** Whether the image asked for this request: it is pending, a job, or one that ended without its reply. */
export const knowsRequest = (r: ImageRecord, requestId: string): boolean =>
  r.pending?.requestId === requestId || r.jobs.some((j) => j.requestId === requestId) || r.abandoned.some((a) => a.requestId === requestId);

/**
 * The changes of a step, and the pending request they end without its reply
 * (cleared or replaced by anything but that reply) remembered in `abandoned`.
 */
export function withAbandoned(r: ImageRecord, ev: ImageEvent, changes: Partial<ImageRecord>): Partial<ImageRecord> {
  const p = r.pending;
  if (p === null || !('pending' in changes) || changes.pending?.requestId === p.requestId) return changes;
  if (ev.type === 'driver.reply' && ev.requestId === p.requestId) return changes;
  const abandoned = [...r.abandoned.filter((a) => a.requestId !== p.requestId), { requestId: p.requestId, action: p.action }].slice(-ABANDONED_KEPT);
  return { ...changes, abandoned };
}

export const matchesPending = (r: ImageRecord, ev: ImageEvent): boolean =>
  (ev.type === 'driver.reply' || ev.type === 'driver.timeout') &&
  r.pending !== null &&
  r.pending.requestId === ev.requestId &&
  (ev.type === 'driver.timeout' || r.pending.action === ev.action);

// ---------------------------------------------------------------- allocation

export function allocation(ev: ImageEvent): AllocationResult {
  switch (ev.type) {
    case 'image.allocate':
      return allocateFromTemplate(ev);
    case 'image.clone':
      return allocateClone(ev);
    case 'image.allocateSaveAs':
      return allocateSaveAs(ev);
    case 'image.allocateBackup':
      return allocateBackup(ev);
    default:
      throw new Error(`not an allocation: ${ev.type}`);
  }
}

export const allocated: Step = (_r, ev) => {
  const a = allocation(ev);
  if (isRejection(a)) throw new Error('allocated() called for a refused allocation');
  const effects: Effect[] = [
    { kind: 'datastore.imageAdded', datastoreId: a.record.datastore.id, imageId: a.record.id, sizeMb: a.record.size },
    { kind: 'quota.change', uid: a.record.uid, gid: a.record.gid, datastoreId: a.record.datastore.id, images: 1, sizeMb: a.record.size },
  ];
  let record = a.record;
  if (a.action !== null) {
    const req = request(a.record, ev, a.action, { ...a.extra });
    record = { ...record, ...req.changes };
    effects.push(req.effect);
    // W38: a creation holds its space until it ends (decideImage gives it back), when the datastore counts space.
    if (ev.ctx.datastore !== null && ev.ctx.datastore.availableMb !== null && record.size > 0) {
      const skipCapacityCheck = ev.type === 'image.allocate' && ev.skipCapacityCheck;
      effects.push({ kind: 'datastore.reserveSpace', datastoreId: record.datastore.id, imageId: record.id, sizeMb: record.size, skipCapacityCheck });
      record = { ...record, reservedMb: record.size };
    }
  }
  // §7.4 step 11: the origin is held for as long as the copy runs, in the same commit.
  if (ev.type === 'image.clone') effects.push({ kind: 'image.holdCloneSource', originId: ev.originId, clone: { kind: 'image', id: record.id } });
  return { fact: 'image.registered', changes: record, detail: { via: ev.type }, effects };
};

// ---------------------------------------------------------------- delete (§7.5, D1, W4–W6)

/** W5/W6: a delete waits for a running driver operation instead of racing it. */
export const deleteWaitsForPending = (r: ImageRecord): boolean => r.pending !== null && r.pending.action !== 'RM';
/** D1: nothing stored yet and nothing running, so the record can go at once. */
export const deleteRemovesAtOnce = (r: ImageRecord): boolean => !deleteWaitsForPending(r) && r.source === '';

export const removedAtOnce: Step = (r) => ({
  fact: 'image.removed',
  changes: { pending: null, deleting: null, saveAs: null },
  detail: { reason: 'no source stored' },
  effects: removalEffects(r),
});

export const deleteRequested: Step = (r, ev) => {
  const force = eventOf(ev, 'image.delete').force;
  // W4: force belongs to this delete only; W6: a running save-as transfer is superseded.
  const saveAs = r.saveAs?.transferring === true ? { saveAs: null } : {};
  const superseded = r.saveAs?.transferring === true ? saveAsClearedEffects(r) : [];
  if (deleteWaitsForPending(r)) {
    return {
      fact: 'image.deleteRequested',
      changes: { deleting: { force }, ...saveAs },
      detail: { force, waitingFor: r.pending?.action ?? null },
      effects: superseded,
    };
  }
  const rm = request(r, ev, 'RM');
  return {
    fact: 'image.deleteRequested',
    changes: { ...rm.changes, deleting: { force }, cloningId: -1, ...saveAs },
    detail: { force, waitingFor: null },
    effects: [...superseded, rm.effect],
  };
};

export const deleteRefusal = (r: ImageRecord, ev: ImageEvent, from: ImageLifecycle): Rejection | undefined => {
  const force = eventOf(ev, 'image.delete').force;
  if (r.type === 'BACKUP' && ev.ctx.vmBackupActive) return rejection('IMG_ERR_DELETE_ACTIVE_BACKUP');
  if ((from === 'LOCKED' || from === 'LOCKED_USED' || from === 'LOCKED_USED_PERS') && !force) {
    return rejection('IMG_ERR_DELETE_LOCKED');
  }
  switch (from) {
    case 'READY':
      return r.vms.length > 0 && r.type !== 'BACKUP' ? rejection('IMG_ERR_DELETE_VMS', { vms: r.vms.length }) : undefined;
    case 'USED':
      // W7: an image held only by clone operations says so.
      return r.vms.length === 0
        ? rejection('IMG_ERR_DELETE_CLONES', { clones: r.clones.length + r.appClones.length })
        : rejection('IMG_ERR_DELETE_VMS', { vms: r.vms.length });
    case 'CLONE':
      return rejection('IMG_ERR_DELETE_CLONES', { clones: r.clones.length + r.appClones.length });
    case 'USED_PERS':
    case 'LOCKED_USED':
    case 'LOCKED_USED_PERS':
      return rejection('IMG_ERR_DELETE_VMS', { vms: r.vms.length });
    default:
      return undefined;
  }
};

// ---------------------------------------------------------------- driver replies

/** The same reply handler for every state; the state machine chooses the target. */
export const replyApplied =
  (mode: 'unlock' | 'stay' | 'error'): Step =>
  (r, ev, from) => {
    const reply = eventOf(ev, 'driver.reply');
    const out = interpretReply(r, reply);
    const notify: Effect[] = [];
    const waiting = from === 'LOCKED_USED' || from === 'LOCKED_USED_PERS';
    if (waiting && mode === 'unlock') notify.push({ kind: 'vm.diskReady', imageId: r.id, vmIds: [...r.vms] });
    if (waiting && mode === 'error') notify.push({ kind: 'vm.diskFailed', imageId: r.id, vmIds: [...r.vms] });
    // W13: a successful operation clears a stale error; a failure records the new one.
    const error = out.message !== null ? errorText(ev.meta.at, out.message) : out.success ? null : r.error;
    return {
      fact: out.success ? 'image.driverSucceeded' : 'image.driverFailed',
      changes: { ...out.changes, pending: null, error },
      detail: { requestId: reply.requestId, action: reply.action, result: reply.result, info: reply.info, message: out.message },
      effects: [...out.effects, ...notify],
    };
  };

export const replySucceeds = (r: ImageRecord, ev: ImageEvent): boolean =>
  interpretReply(r, eventOf(ev, 'driver.reply')).success;
export const replyKeepsLock = (r: ImageRecord, ev: ImageEvent): boolean =>
  interpretReply(r, eventOf(ev, 'driver.reply')).keepsLock;
export const replyFailureUnlocks = (r: ImageRecord, ev: ImageEvent): boolean => {
  const out = interpretReply(r, eventOf(ev, 'driver.reply'));
  return !out.success && !out.failureIsError;
};

/** In DELETE: the RM reply removes the record (D3), or a forced delete treats failure as success. */
export const rmRemoves = (r: ImageRecord, ev: ImageEvent): boolean =>
  r.pending?.action === 'RM' && interpretReply(r, eventOf(ev, 'driver.reply')).success;

export const removedByDriver: Step = (r, ev) => {
  const reply = eventOf(ev, 'driver.reply');
  return {
    fact: 'image.removed',
    changes: { pending: null, deleting: null },
    detail: { requestId: reply.requestId, result: reply.result, info: reply.info, forced: r.deleting?.force ?? false },
    effects: removalEffects(r),
  };
};

/**
 * W5/W6: the operation a delete waited for has ended. Its data is kept (the
 * source to remove), but nothing it would start next: a save-as transfer into
 * an image being deleted is cancelled instead.
 */
function deferredOutcome(r: ImageRecord, reply: ImageEventOf<'driver.reply'>): { changes: Partial<ImageRecord>; effects: Effect[] } {
  const out = interpretReply(r, reply);
  const effects = out.effects.filter((e) => e.kind !== 'vm.saveAsTransfer' && e.kind !== 'vm.saveAsCleared');
  return { changes: { ...out.changes, saveAs: null }, effects: [...effects, ...saveAsClearedEffects(r)] };
}

export const deferredDeleteLeavesNothing = (r: ImageRecord, ev: ImageEvent): boolean =>
  (deferredOutcome(r, eventOf(ev, 'driver.reply')).changes.source ?? r.source) === '';

export const deferredRemoved: Step = (r, ev) => {
  const reply = eventOf(ev, 'driver.reply');
  const out = deferredOutcome(r, reply);
  const next = { ...r, ...out.changes };
  return {
    fact: 'image.removed',
    changes: { ...out.changes, pending: null, deleting: null },
    detail: { requestId: reply.requestId, action: reply.action, result: reply.result, info: reply.info, reason: 'deleted while running' },
    effects: [...out.effects.filter((e) => e.kind !== 'datastore.monitor'), ...removalEffects(next)],
  };
};

export const deferredRm: Step = (r, ev) => {
  const reply = eventOf(ev, 'driver.reply');
  const out = deferredOutcome(r, reply);
  const rm = request({ ...r, ...out.changes }, ev, 'RM');
  return {
    fact: reply.result === 'SUCCESS' ? 'image.driverSucceeded' : 'image.driverFailed',
    changes: { ...out.changes, ...rm.changes, cloningId: -1 },
    detail: { requestId: reply.requestId, action: reply.action, result: reply.result, info: reply.info, then: 'RM' },
    effects: [...out.effects, rm.effect],
  };
};

export const replyIgnored: Step = (r, ev) => {
  if (ev.type !== 'driver.reply' && ev.type !== 'driver.timeout') throw new Error(`not a reply: ${ev.type}`);
  const expected = r.pending ? `${r.pending.action} ${r.pending.requestId}` : 'none';
  // Only a request this image asked for may leave an orphan to reclaim: a reply naming any other changes nothing.
  const known = knowsRequest(r, ev.requestId);
  const orphan =
    known &&
    ev.type === 'driver.reply' &&
    ev.result === 'SUCCESS' &&
    (ev.action === 'CP' || ev.action === 'CLONE' || ev.action === 'MKFS') &&
    (ev.info.trim().split(/\s+/)[0] ?? '') !== '' &&
    ev.info.trim().split(/\s+/)[0] !== r.source &&
    // Reclaimed only if it is a file of the datastore's folder that no other live image holds (#27).
    refusedSource(r, ev, ev.info.trim().split(/\s+/)[0] ?? '') === null;
  const source = ev.type === 'driver.reply' ? (ev.info.trim().split(/\s+/)[0] ?? '') : '';
  return {
    fact: 'image.replyIgnored',
    changes: {},
    detail: {
      requestId: ev.requestId,
      kind: ev.type === 'driver.reply' ? `${ev.action} ${ev.result}` : 'timeout',
      reason: known ? `no pending request matches (expected ${expected})` : `no pending request matches (expected ${expected}); the image never asked for request ${ev.requestId}`,
    },
    // §10: data a stale success stored is nobody's now; say so for the reaper.
    effects: orphan ? [{ kind: 'datastore.orphanSource', datastoreId: r.datastore.id, imageId: r.id, source }] : [],
  };
};

/** W1: an expired deadline fails the operation with a message that names it. */
export const timedOut: Step = (r, ev, from) => {
  const t = eventOf(ev, 'driver.timeout');
  const p = r.pending;
  const action = p?.action ?? 'driver';
  const secs = p ? Math.round((p.deadline - p.issuedAt) / 1000) : 0;
  const message = `Driver action ${action} timed out after ${secs} s (request ${t.requestId})`;
  const waiting = from === 'LOCKED_USED' || from === 'LOCKED_USED_PERS';
  return {
    fact: 'image.driverTimedOut',
    changes: {
      pending: null,
      deleting: null,
      error: errorText(ev.meta.at, message),
      ...(action === 'CLONE' ? { cloningId: -1 } : {}),
      ...(action === 'MKFS' && r.saveAs ? { saveAs: null } : {}),
      ...(action.startsWith('SNAP_') ? { targetSnapshot: -1 } : {}),
    },
    detail: { requestId: t.requestId, action, message },
    effects: [
      ...abandonedOperationEffects(r),
      ...(waiting ? [{ kind: 'vm.diskFailed' as const, imageId: r.id, vmIds: [...r.vms] }] : []),
    ],
  };
};

// ---------------------------------------------------------------- VMs (§6.2, §7.9)

export const acquired: Step = (r, ev) => {
  const a = eventOf(ev, 'image.acquire');
  return { fact: 'image.acquired', changes: { vms: addId(r.vms, a.vmId) }, detail: { vmId: a.vmId, mode: a.mode } };
};

export const released: Step = (r, ev) => {
  const rel = eventOf(ev, 'image.release');
  const vms = removeId(r.vms, rel.vmId);
  const modTime = r.persistent ? { modTime: Math.floor(ev.meta.at / 1000) } : {};
  return { fact: 'image.released', changes: { vms, ...modTime }, detail: { vmId: rel.vmId, failed: rel.failed } };
};

/** REL-F of a persistent image: its content may be inconsistent (§7.9.3); W10: every remaining VM hears of it. */
export const releasedFailed: Step = (r, ev, from) => {
  const rel = eventOf(ev, 'image.release');
  const base = released(r, ev, from);
  const vms = removeId(r.vms, rel.vmId);
  const message = `VM ${rel.vmId} was destroyed while using the persistent image; its content may be inconsistent`;
  return {
    ...base,
    changes: { ...base.changes, error: errorText(ev.meta.at, message) },
    effects: vms.length > 0 ? [{ kind: 'vm.diskFailed', imageId: r.id, vmIds: vms }] : [],
  };
};

export const vmHoldsImage = (r: ImageRecord, ev: ImageEvent): boolean =>
  r.vms.includes(eventOf(ev, 'image.release').vmId);
export const lastHolderLeaves = (r: ImageRecord, ev: ImageEvent): boolean => {
  const rel = eventOf(ev, 'image.release');
  return removeId(r.vms, rel.vmId).length === 0;
};
export const releaseLeavesIdle = (r: ImageRecord, ev: ImageEvent): boolean =>
  idleStateFor({ ...r, vms: removeId(r.vms, eventOf(ev, 'image.release').vmId) }) === 'READY';

// ---------------------------------------------------------------- generic

export const ignored =
  (reason: string): Step =>
  (_r, ev) => ({ fact: 'image.commandIgnored', changes: {}, detail: { command: ev.type, reason } });

