import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { KV } from '@nats-io/kv';
import type { Logger } from '../platform/logger.js';
import { isWrongLastSequence } from '../store/errors.js';
import { LeaseEntry } from '../platform/lease.js';

/** What a manager does when it gains or gives up a partition: start or stop deciding its commands. */
export interface PartitionWork {
  gain(partition: number): Promise<void>;
  /** Resolves once nothing of the partition is decided here any more. */
  lose(partition: number): Promise<void>;
}

export interface OwnershipOptions {
  readonly partitions: number;
  /** A lease not renewed within this long ends (the bucket's entry lifetime); renewed three times as often. */
  readonly leaseMs: number;
  readonly log: Logger;
  /** This manager's name in the leases; unique per process. */
  readonly managerId?: string;
}

/** Keys of imgr_leases: a partition's holder, and each manager that is alive. */
export const leaseKey = (partition: number): string => `partition.${partition}`;
const presenceKey = (id: string): string => `manager.${id}`;

/**
 * Which manager decides each command partition. Every partition has a lease
 * in imgr_leases (LeaseEntry): a manager takes a free one, renews it every
 * round, and gives it up by stopping its work and then freeing it. A
 * manager that dies stops renewing, the server expires
 * the lease, and another takes the partition: fail-over within the lease
 * time (the manager's ack wait) plus a round. The command durables' own ack
 * wait is half the lease, so the dead one's unacknowledged commands are back
 * for redelivery when the new holder starts (InheritedOrder puts them in
 * order).
 *
 * Managers share the partitions evenly: each announces itself
 * (`manager.<id>`, renewed the same way) and holds at most ceil(partitions /
 * managers alive); one above its share gives partitions back for the others
 * to take.
 *
 * Optimistic concurrency stays the safety net: a manager that stalls past
 * its lease while another takes over can only fail to append.
 */
export class PartitionOwnership {
  readonly managerId: string;
  private readonly held = new Map<number, LeaseEntry>();
  private presence: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private round: Promise<void> = Promise.resolve();
  private stopping = false;

  constructor(
    private readonly kv: KV,
    private readonly work: PartitionWork,
    private readonly o: OwnershipOptions,
  ) {
    this.managerId = o.managerId ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  }

  /** The partitions this manager decides now. */
  get partitions(): number[] {
    return [...this.held.keys()].sort((a, b) => a - b);
  }

  /** Whether this manager decides the partition now. */
  holds(partition: number): boolean {
    return this.held.has(partition);
  }

  /** Takes a share of the partitions now, then keeps the share current. */
  async start(): Promise<void> {
    await this.tick();
    this.timer = setInterval(() => {
      this.round = this.round.then(() => this.tick()).catch((e: unknown) => this.o.log.error({ err: e }, 'partition leases round failed'));
    }, Math.max(100, Math.floor(this.o.leaseMs / 3)));
    this.timer.unref();
  }

  /** Stops every partition's work, then frees the leases for the other managers at once. */
  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.timer);
    await this.round.catch(() => undefined);
    for (const p of this.partitions) await this.release(p);
    await this.kv.delete(presenceKey(this.managerId)).catch(() => undefined);
  }

  private async tick(): Promise<void> {
    if (this.stopping) return;
    await this.announce();
    for (const p of this.partitions) await this.renew(p);
    const share = Math.ceil(this.o.partitions / (await this.managersAlive()));
    for (const p of this.partitions.slice(share).reverse()) await this.release(p);
    if (this.held.size < share) await this.claim(share);
  }

  private async announce(): Promise<void> {
    const key = presenceKey(this.managerId);
    try {
      this.presence = this.presence === undefined ? await this.kv.create(key, '') : await this.kv.update(key, '', this.presence);
    } catch (e) {
      // Expired while NATS was away, or never there: announce afresh.
      if (!isWrongLastSequence(e)) throw e;
      this.presence = await this.kv.put(key, '');
    }
  }

  private async managersAlive(): Promise<number> {
    let n = 0;
    for await (const key of await this.kv.keys(presenceKey('*'))) if (key !== '') n++;
    return Math.max(1, n);
  }

  private async renew(p: number): Promise<void> {
    const lease = this.held.get(p);
    if (!lease || (await lease.renew(this.o.log.child({ partition: p }))) === 'held') return;
    this.held.delete(p);
    await this.work.lose(p);
  }

  /** Takes free partitions up to the share, starting at a place of its own so that managers do not all race for the same. */
  private async claim(share: number): Promise<void> {
    const start = Number.parseInt(this.managerId.slice(-6), 16) % this.o.partitions;
    for (let i = 0; i < this.o.partitions && this.held.size < share && !this.stopping; i++) {
      const p = (start + i) % this.o.partitions;
      if (this.held.has(p)) continue;
      const lease = new LeaseEntry(this.kv, leaseKey(p), this.managerId, this.o.leaseMs);
      if (!(await lease.take())) continue;
      this.held.set(p, lease);
      try {
        await this.work.gain(p);
      } catch (e) {
        // Not started: free it again for whoever can.
        await this.release(p);
        throw e;
      }
      this.o.log.info({ partition: p, manager: this.managerId }, 'partition taken');
    }
  }

  private async release(p: number): Promise<void> {
    const lease = this.held.get(p);
    if (!lease) return;
    this.held.delete(p);
    await this.work.lose(p);
    await lease.free(this.o.log.child({ partition: p }));
    this.o.log.info({ partition: p, manager: this.managerId }, 'partition given back');
  }
}
