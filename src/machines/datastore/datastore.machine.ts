import { setup } from 'xstate';
import type { DatastoreRecord, DatastoreFact, DatastoreLifecycle } from '../../messages/datastore.js';
import type { Effect } from '../../messages/effects.js';
import { rejection, type Rejection } from '../../messages/errors.js';
import type { Detail, Outcome } from '../shared/emitted.js';
import type { DatastoreEvent, DatastoreEventOf } from './events.js';
import { capacityRefusal, parseMonitor, validateCreate } from './validate.js';
import { emptyDatastore } from './record.js';
import { inFolder } from '../shared/paths.js';

type DatastoreEmitted = Outcome<DatastoreFact['type']>;

interface Step {
  fact: DatastoreFact['type'];
  changes: Partial<DatastoreRecord>;
  detail?: Detail;
  effects?: Effect[];
}
type R = DatastoreRecord;
type E = DatastoreEvent;

function of<T extends E['type']>(ev: E, type: T): DatastoreEventOf<T> {
  if (ev.type !== type) throw new Error(`handler for ${type} received ${ev.type}`);
  return ev as DatastoreEventOf<T>;
}

const dsSetup = setup({
  types: {
    context: {} as DatastoreRecord,
    events: {} as DatastoreEvent,
    emitted: {} as DatastoreEmitted,
    input: {} as { id: number },
  },
});

const apply = (step: (r: R, ev: E) => Step) =>
  dsSetup.enqueueActions(({ context, event, enqueue }) => {
    const s = step(context, event);
    enqueue.assign(s.changes);
    enqueue.emit({ type: 'fact', fact: s.fact, detail: s.detail ?? {}, effects: s.effects ?? [] });
  });
const refuse = (r: (c: R, ev: E) => Rejection | undefined) => ({
  guard: ({ context, event }: { context: R; event: E }) => r(context, event) !== undefined,
  actions: dsSetup.enqueueActions(({ context, event, enqueue }) => {
    const x = r(context, event);
    if (x) enqueue.emit({ type: 'rejected', code: x.code, message: x.message });
  }),
});
const when = (g: (r: R, ev: E) => boolean) => ({ guard: ({ context, event }: { context: R; event: E }) => g(context, event) });

// ------------------------------------------------------------------ steps

const created = (_r: R, ev: E): Step => {
  const c = of(ev, 'datastore.create');
  const rec = validateCreate(c, ev.ctx.drivers);
  if ('code' in rec) throw new Error('created() on a refused create');
  return { fact: 'datastore.created', changes: rec, effects: [{ kind: 'datastore.monitor', datastoreId: rec.id }] };
};
const createRefusal = (_r: R, ev: E): Rejection | undefined => {
  const rec = validateCreate(of(ev, 'datastore.create'), ev.ctx.drivers);
  return 'code' in rec ? rec : undefined;
};
const onlySystem = (r: R): Rejection | undefined => (r.type === 'SYSTEM_DS' ? undefined : rejection('DS_ERR_ENABLE_TYPE'));

const reserveRefusal = (r: R, ev: E): Rejection | undefined => {
  const c = of(ev, 'datastore.reserve');
  return capacityRefusal(r, c.sizeMb, c.skipCapacityCheck, ev.ctx.capacityCheck, ev.ctx.reservedMb);
};
/** The image's record holds the space (`reservedMb`); the datastore records that it granted it, and changes nothing. */
const reserved = (_r: R, ev: E): Step => {
  const c = of(ev, 'datastore.reserve');
  return { fact: 'datastore.spaceReserved', changes: {}, detail: { imageId: c.imageId, sizeMb: c.sizeMb } };
};
const settled = (_r: R, ev: E): Step => ({ fact: 'datastore.reservationSettled', changes: {}, detail: { imageId: of(ev, 'datastore.settle').imageId } });
const monitorApplies = (_r: R, ev: E): boolean => {
  const m = of(ev, 'datastore.monitored');
  return m.result === 'SUCCESS' && !('error' in parseMonitor(m.info));
};
const monitored = (_r: R, ev: E): Step => {
  const m = parseMonitor(of(ev, 'datastore.monitored').info);
  if ('error' in m) throw new Error(m.error);
  return { fact: 'datastore.monitored', changes: { ...m, monitoredAt: ev.meta.at, monitorError: null }, detail: { ...m } };
};
/** W39: a failed or incomplete monitor changes no counter and is visible on the datastore. */
const monitorFailed = (r: R, ev: E): Step => {
  const m = of(ev, 'datastore.monitored');
  const parsed = m.result === 'SUCCESS' ? parseMonitor(m.info) : null;
  let decoded = m.info;
  try {
    decoded = atob(m.info.trim());
  } catch {
    // Not base64: report the text as the driver printed it.
  }
  const error =
    parsed !== null && 'error' in parsed ? parsed.error : `Error monitoring datastore ${r.id}: ${m.info}. Decoded info: ${decoded}`;
  return { fact: 'datastore.monitorFailed', changes: { monitorError: error }, detail: { result: m.result, info: m.info } };
};
/**
 * §10 for files no reply names: a file in the datastore's folder that no
 * image names and that is older than any creation may run is an orphan (its
 * creation's driver host died after the copy, before the reply). Recorded
 * here, removed by the driver (the dispatcher's RM).
 */
const swept = (r: R, ev: E): Step => {
  const c = of(ev, 'datastore.swept');
  const sweep = ev.ctx.sweep;
  // Only a file directly in this datastore's folder can be its orphan: a report naming any other path reclaims nothing.
  const orphans = sweep ? c.files.filter((f) => inFolder(r.basePath, f.path) && f.ageSec > sweep.graceSec && !sweep.named.has(f.path)) : [];
  return {
    fact: 'datastore.swept',
    changes: {},
    detail: { files: c.files.length, orphans: orphans.length },
    effects: orphans.map((f) => ({ kind: 'datastore.orphanSource' as const, datastoreId: r.id, imageId: -1, source: f.path })),
  };
};
const removed = (): Step => ({ fact: 'datastore.removed', changes: {} });
const notEmpty = (r: R, ev: E): Rejection | undefined => (ev.ctx.images > 0 ? rejection('DS_ERR_NOT_EMPTY', { id: r.id }) : undefined);

const notFound = { actions: dsSetup.emit(({ context }) => ({ type: 'rejected' as const, ...rejection('DS_ERR_NOT_FOUND', { id: context.id }) })) };
const exists = { actions: dsSetup.emit(({ context }) => ({ type: 'rejected' as const, ...rejection('DS_ERR_EXISTS', { id: context.id }) })) };

const COMMANDS = [
  'datastore.create',
  'datastore.enable',
  'datastore.disable',
  'datastore.delete',
  'datastore.reserve',
  'datastore.settle',
  'datastore.monitored',
  'datastore.swept',
] as const satisfies readonly E['type'][];

/** READY and DISABLED handle every command alike; only the state value differs. */
const LIVE = {
  'datastore.create': [exists],
  'datastore.enable': [refuse(onlySystem), { target: '#datastore.READY', actions: apply(() => ({ fact: 'datastore.enabled', changes: {} })) }],
  'datastore.disable': [refuse(onlySystem), { target: '#datastore.DISABLED', actions: apply(() => ({ fact: 'datastore.disabled', changes: {} })) }],
  'datastore.delete': [refuse(notEmpty), { target: '#datastore.REMOVED', actions: apply(removed) }],
  'datastore.reserve': [refuse(reserveRefusal), { actions: apply(reserved) }],
  'datastore.settle': [{ actions: apply(settled) }],
  'datastore.monitored': [{ ...when(monitorApplies), actions: apply(monitored) }, { actions: apply(monitorFailed) }],
  'datastore.swept': [{ actions: apply(swept) }],
};

/**
 * The datastore aggregate (§12, §13): READY and DISABLED behave alike for
 * image work (the state only matters to system datastores and the monitor
 * timer, W37); REMOVED keeps the tombstone.
 */
export const datastoreMachine = dsSetup.createMachine({
  id: 'datastore',
  initial: 'INIT',
  context: ({ input }) => emptyDatastore(input.id),
  states: {
    INIT: {
      on: {
        ...Object.fromEntries(COMMANDS.map((t) => [t, [notFound]])),
        'datastore.create': [refuse(createRefusal), { target: '#datastore.READY', actions: apply(created) }],
      },
    },
    READY: { on: LIVE },
    DISABLED: { on: LIVE },
    REMOVED: { on: Object.fromEntries(COMMANDS.map((t) => [t, [notFound]])) },
  },
});

export type { DatastoreLifecycle };
