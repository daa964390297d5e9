import type { ImageAggregate } from '../machines/image/decide.js';
import type { DatastoreAggregate } from '../machines/datastore/decide.js';

/** One aggregate's compact state and the log sequence of its last commit (0: none yet). */
export interface Resident<A> {
  agg: A;
  seq: number;
  /** SHA-256 of the aggregate's last commit message: the next commit's `prev`. */
  hash: string;
}

export type ResidentImage = Resident<ImageAggregate>;
export type ResidentDatastore = Resident<DatastoreAggregate>;

/** Remembers recent command ids with the commit they produced, so a redelivered command is answered, not decided again. */
export class RecentCommits<V> {
  private readonly map = new Map<string, V>();
  constructor(private readonly capacity: number) {}

  set(commandId: string, v: V): void {
    this.map.delete(commandId);
    this.map.set(commandId, v);
    if (this.map.size > this.capacity) {
      const oldest = this.map.keys().next();
      if (!oldest.done) this.map.delete(oldest.value);
    }
  }

  get(commandId: string): V | undefined {
    return this.map.get(commandId);
  }
}
