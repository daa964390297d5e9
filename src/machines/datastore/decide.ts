import { authorizeDatastore } from '../authorize.js';
import {
  DatastoreLifecycleSchema,
  type DatastoreFact,
  type DatastoreLifecycle,
  type DatastoreRecord,
  type DatastoreView,
} from '../../messages/datastore.js';
import type { DatastoreInfo } from '../../messages/datastore-info.js';
import type { Rejection } from '../../messages/errors.js';
import { availableMb } from './validate.js';
import { changedFields, definedFields } from '../shared/equal.js';
import { singleOutcome } from '../shared/emitted.js';
import { datastoreMachine } from './datastore.machine.js';
import { pureTransition } from '../shared/pure-transition.js';
import { emptyDatastore } from './record.js';
import type { DatastoreEvent } from './events.js';

const transition = pureTransition(datastoreMachine);

export interface DatastoreAggregate {
  readonly state: DatastoreLifecycle;
  readonly record: DatastoreRecord;
}
export const initialDatastore = (id: number): DatastoreAggregate => ({ state: 'INIT', record: emptyDatastore(id) });

export type DatastoreDecision =
  | { readonly ok: true; readonly fact: DatastoreFact; readonly next: DatastoreAggregate }
  | { readonly ok: false; readonly rejection: Rejection };

export function decideDatastore(agg: DatastoreAggregate, event: DatastoreEvent): DatastoreDecision {
  const denied = authorizeDatastore(event, event.meta);
  if (denied) return { ok: false, rejection: denied };
  const snapshot = datastoreMachine.resolveState({ value: agg.state, context: agg.record });
  const [next, actions] = transition(snapshot, event);
  const out = singleOutcome<DatastoreFact['type']>(actions, `datastore machine, ${event.type} in ${agg.state}`);
  if (out.type === 'rejected') return { ok: false, rejection: { code: out.code, message: out.message } };
  const state = DatastoreLifecycleSchema.parse(next.value);
  return {
    ok: true,
    fact: {
      type: out.fact,
      datastoreId: next.context.id,
      state,
      prevState: agg.state,
      changes: agg.state === 'INIT' ? next.context : changedFields(agg.record, next.context),
      detail: out.detail,
      effects: [...out.effects],
    },
    next: { state, record: next.context },
  };
}

export function evolveDatastore(view: DatastoreView | null, fact: DatastoreFact): DatastoreView {
  const base: DatastoreView = view ?? { ...emptyDatastore(fact.datastoreId), state: 'INIT' };
  return { ...base, ...definedFields(fact.changes), state: fact.state };
}

/**
 * The picture of a datastore that image decisions get (see DecisionContext);
 * `capacityCheck` is the global setting, `reservedMb` what its images being
 * created hold.
 */
export function datastoreInfo(d: DatastoreRecord, capacityCheck: boolean, reservedMb: number): DatastoreInfo {
  const keepLast = Number.parseInt(d.template['KEEP_LAST'] ?? '', 10);
  return {
    id: d.id,
    name: d.name,
    type: d.type,
    dsMad: d.dsMad,
    tmMad: d.tmMad,
    diskType: d.diskType,
    driver: d.template['DRIVER'] ?? '',
    persistentOnly: d.persistentOnly,
    availableMb: availableMb(d, capacityCheck, reservedMb),
    bridgeList: (d.template['BRIDGE_LIST'] ?? '').trim(),
    keepLast: keepLast > 0 ? keepLast : null,
  };
}
