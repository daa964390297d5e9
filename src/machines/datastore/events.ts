import type { DatastoreCommand } from '../../messages/datastore.js';
import type { DriverConfig } from '../../messages/datastore.js';
import type { Meta } from '../image/events.js';

/** What a datastore decision needs from outside: the name index, driver configuration, global defaults. */
export interface DatastoreDecisionContext {
  readonly nameTakenBy: number | null;
  readonly drivers: DriverConfig;
  /** Global DATASTORE_CAPACITY_CHECK (§14). */
  readonly capacityCheck: boolean;
}

export type DatastoreEvent = DatastoreCommand & { readonly meta: Meta; readonly ctx: DatastoreDecisionContext };
export type DatastoreEventOf<T extends DatastoreCommand['type']> = Extract<DatastoreCommand, { type: T }> & {
  readonly meta: Meta;
  readonly ctx: DatastoreDecisionContext;
};
