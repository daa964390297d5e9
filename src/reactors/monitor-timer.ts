import type { Clock } from '../platform/clock.js';
import type { AggregateHost } from '../actors/host.js';
import type { DriverDispatcher } from './dispatcher.js';
import type { AggregateKind } from '../messages/wire.js';

/**
 * The periodic datastore monitor (§11, §12.5) with W37 fixed: each datastore
 * has its own slot in the period (spread by id), disabled datastores are
 * skipped, and the request id names the datastore and the period, so several
 * managers asking for the same probe produce one request.
 */
export class MonitorTimer {
  private readonly done = new Map<number, number>();

  constructor(
    private readonly host: AggregateHost,
    private readonly dispatcher: DriverDispatcher,
    private readonly periodMs: number,
    private readonly clock: Clock,
    /** Whether this manager holds the datastore's partition: only its holder probes it (at once when it takes it over). */
    private readonly holds: (kind: AggregateKind, id: number) => boolean = () => true,
  ) {}

  async tick(): Promise<number> {
    const now = this.clock.now();
    const period = Math.floor(now / this.periodMs);
    const into = now - period * this.periodMs;
    let sent = 0;
    for (const { agg } of this.host.allDatastores()) {
      const id = agg.record.id;
      if (agg.state !== 'READY' || !this.holds('datastore', id)) continue;
      const slot = slotOf(id, this.periodMs);
      // The first tick after a start probes at once (§11), then each datastore in its slot.
      const due = !this.done.has(id) || (into >= slot && this.done.get(id) !== period);
      if (!due) continue;
      await this.dispatcher.monitor(id, `monitor-${id}-${period}`, this.host.appliedSeq);
      this.done.set(id, period);
      sent += 1;
    }
    return sent;
  }
}

/** A stable offset in [0, period) per datastore: Knuth's multiplicative hash of the id. */
export const slotOf = (id: number, periodMs: number): number => ((id * 2654435761) >>> 0) % periodMs;
