import type { Logger } from '../platform/logger.js';
import type { Clock } from '../platform/clock.js';
import type { AggregateHost } from '../actors/host.js';
import type { Publisher } from './publish.js';
import type { AggregateKind } from '../messages/wire.js';

/**
 * W1/W2: turns expired driver deadlines into `driver.timeout` commands. The
 * command id is derived from the request id, so several managers (or ticks)
 * asking for the same timeout produce one command; each manager looks only at
 * the images of the partitions it holds.
 */
export class Watchdog {
  constructor(
    private readonly host: AggregateHost,
    private readonly out: Publisher,
    private readonly clock: Clock,
    private readonly log: Logger,
    /** Whether this manager holds the image's partition: only its holder times it out. */
    private readonly holds: (kind: AggregateKind, id: number) => boolean = () => true,
  ) {}

  async tick(): Promise<number> {
    const now = this.clock.now();
    let sent = 0;
    for (const agg of this.host.deadlinesDue(now)) {
      if (!this.holds('image', agg.record.id)) continue;
      // The pending operation and the BACKUP/RESTORE jobs reading the image each have a deadline.
      const expired = [...(agg.record.pending ? [agg.record.pending] : []), ...agg.record.jobs].filter((p) => p.deadline <= now);
      for (const p of expired) {
        await this.out.command({ type: 'driver.timeout', imageId: agg.record.id, requestId: p.requestId }, `timeout-${p.requestId}`, null, now);
        this.log.warn({ imageId: agg.record.id, requestId: p.requestId, action: p.action }, 'driver request expired');
        sent += 1;
      }
    }
    return sent;
  }
}
