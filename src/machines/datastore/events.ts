import type { DatastoreCommand } from '../../messages/datastore.js';
import type { DriverConfig } from '../../messages/datastore.js';
import type { Meta } from '../image/events.js';

/** What a datastore decision needs from outside: the name index, driver configuration, global defaults. */
export interface DatastoreDecisionContext {
  readonly nameTakenBy: number | null;
  readonly drivers: DriverConfig;
  /** Global DATASTORE_CAPACITY_CHECK (§14). */
  readonly capacityCheck: boolean;
  /**
   * How many images live in the datastore (neither INIT nor REMOVED): the
   * images' own facts name their datastore, so membership is counted from
   * them (an index the host keeps) instead of a list the datastore carries.
   */
  readonly images: number;
  /**
   * W38: the space its images still being created hold (their `reservedMb`),
   * counted from the images' facts like membership.
   */
  readonly reservedMb: number;
  /**
   * For a sweep: every SOURCE and PATH the datastore's images name, and how
   * old an unnamed file must be before it is nobody's (older than any
   * creation may run). Absent: a sweep reclaims nothing.
   */
  readonly sweep?: { readonly named: ReadonlySet<string>; readonly graceSec: number };
}

export type DatastoreEvent = DatastoreCommand & { readonly meta: Meta; readonly ctx: DatastoreDecisionContext };
export type DatastoreEventOf<T extends DatastoreCommand['type']> = Extract<DatastoreCommand, { type: T }> & {
  readonly meta: Meta;
  readonly ctx: DatastoreDecisionContext;
};
