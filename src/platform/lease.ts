import type { KV } from '@nats-io/kv';
import type { Logger } from './logger.js';
import { isWrongLastSequence } from '../store/errors.js';

/**
 * One entry of imgr_leases, a KV bucket whose entries the server expires
 * after the lease time: taken with `create` (one winner), renewed with
 * `update` at its revision, freed with `delete` at its revision. A renewal
 * refused because the entry changed hands ends the holding at once; one that
 * fails because NATS is away keeps it until the lease time has passed since
 * the last renewal. What is done under it, and when, is the holder's.
 */
export class LeaseEntry {
  private revision: number | undefined;
  private renewedAt = 0;

  constructor(
    private readonly kv: KV,
    readonly key: string,
    private readonly holder: string,
    private readonly leaseMs: number,
  ) {}

  get held(): boolean {
    return this.revision !== undefined;
  }

  /** Takes the entry if nobody holds it; false when another does. */
  async take(): Promise<boolean> {
    try {
      this.revision = await this.kv.create(this.key, this.holder);
    } catch (e) {
      if (isWrongLastSequence(e)) return false;
      throw e;
    }
    this.renewedAt = Date.now();
    return true;
  }

  /** Renews it: `held` after a renewal or a failure within the lease time, `lost` when the holding ended (logged). */
  async renew(log: Logger): Promise<'held' | 'lost'> {
    if (this.revision === undefined) return 'lost';
    try {
      this.revision = await this.kv.update(this.key, this.holder, this.revision);
      this.renewedAt = Date.now();
      return 'held';
    } catch (e) {
      if (!isWrongLastSequence(e) && Date.now() - this.renewedAt < this.leaseMs) {
        log.warn({ lease: this.key, err: e }, 'lease not renewed, trying again');
        return 'held';
      }
      log.warn({ lease: this.key, err: e }, 'lease lost');
      this.revision = undefined;
      return 'lost';
    }
  }

  /** Ends the holding here and frees the entry for the others at once (it expires if the delete fails). */
  async free(log: Logger): Promise<void> {
    const revision = this.revision;
    if (revision === undefined) return;
    this.revision = undefined;
    await this.kv.delete(this.key, { previousSeq: revision }).catch((e: unknown) => log.warn({ lease: this.key, err: e }, 'lease not freed; it expires'));
  }
}

/** What a holder does when it gains or loses the lease; `gain` should return soon (renewals wait for it). */
export interface LeaseWork {
  gain(): Promise<void>;
  /** Resolves once nothing is done under the lease here any more. */
  lose(): Promise<void>;
}

/**
 * One named lease contended for on a timer (LeaseEntry): renewed three times
 * per lease time (at least once a second, which is how soon a freed lease is
 * taken), given up by stopping its work, then freeing the entry. A holder
 * that dies stops renewing, the server expires the entry, and another
 * contender takes it within the lease time plus a round.
 */
export class Lease {
  private readonly entry: LeaseEntry;
  private timer: NodeJS.Timeout | undefined;
  private round: Promise<void> = Promise.resolve();
  private stopping = false;

  constructor(
    kv: KV,
    readonly key: string,
    private readonly holder: string,
    private readonly leaseMs: number,
    private readonly work: LeaseWork,
    private readonly log: Logger,
  ) {
    this.entry = new LeaseEntry(kv, key, holder, leaseMs);
  }

  get held(): boolean {
    return this.entry.held;
  }

  /** Contends now, then every third of the lease time (at least every second). */
  async start(): Promise<void> {
    await this.tick();
    this.timer = setInterval(() => {
      this.round = this.round.then(() => this.tick()).catch((e: unknown) => this.log.error({ err: e, lease: this.key }, 'lease round failed'));
      // A freed lease is taken within a second, however long the lease.
    }, Math.max(100, Math.min(1_000, Math.floor(this.leaseMs / 3))));
    this.timer.unref();
  }

  /** Stops the work, then frees the lease for the other contenders at once. */
  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.timer);
    await this.round.catch(() => undefined);
    if (!this.entry.held) return;
    await this.work.lose();
    await this.entry.free(this.log);
  }

  private async tick(): Promise<void> {
    if (this.stopping) return;
    if (this.entry.held) {
      if ((await this.entry.renew(this.log)) === 'lost') await this.work.lose();
      return;
    }
    if (!(await this.entry.take())) return;
    try {
      await this.work.gain();
    } catch (e) {
      // Not started: free it again for whoever can.
      await this.entry.free(this.log);
      throw e;
    }
    this.log.info({ lease: this.key, holder: this.holder }, 'lease taken');
  }
}
