import type { KV } from '@nats-io/kv';
import type { Logger } from './logger.js';
import { isWrongLastSequence } from '../store/errors.js';

/** What a holder does when it gains or loses the lease; `gain` should return soon (renewals wait for it). */
export interface LeaseWork {
  gain(): Promise<void>;
  /** Resolves once nothing is done under the lease here any more. */
  lose(): Promise<void>;
}

/**
 * One named lease in imgr_leases, a KV bucket whose entries the server
 * expires after the lease time: a contender takes it with `create` (one
 * winner), renews it at its revision three times per lease time (at least
 * once a second, which is how soon a freed lease is taken), and gives
 * it up by stopping its work, then deleting it. A holder that dies stops
 * renewing, the server expires the entry, and another contender takes it
 * within the lease time plus a round. A renewal refused because the entry
 * changed hands ends the holding at once; one that fails because NATS is
 * away keeps it until the lease time has passed since the last renewal.
 */
export class Lease {
  private revision: number | undefined;
  private renewedAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private round: Promise<void> = Promise.resolve();
  private stopping = false;

  constructor(
    private readonly kv: KV,
    readonly key: string,
    private readonly holder: string,
    private readonly leaseMs: number,
    private readonly work: LeaseWork,
    private readonly log: Logger,
  ) {}

  get held(): boolean {
    return this.revision !== undefined;
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
    const revision = this.revision;
    if (revision === undefined) return;
    this.revision = undefined;
    await this.work.lose();
    await this.kv.delete(this.key, { previousSeq: revision }).catch((e: unknown) => this.log.warn({ lease: this.key, err: e }, 'lease not freed; it expires'));
  }

  private async tick(): Promise<void> {
    if (this.stopping) return;
    if (this.revision !== undefined) {
      try {
        this.revision = await this.kv.update(this.key, this.holder, this.revision);
        this.renewedAt = Date.now();
      } catch (e) {
        if (!isWrongLastSequence(e) && Date.now() - this.renewedAt < this.leaseMs) {
          this.log.warn({ lease: this.key, err: e }, 'lease not renewed, trying again');
          return;
        }
        this.log.warn({ lease: this.key, err: e }, 'lease lost');
        this.revision = undefined;
        await this.work.lose();
      }
      return;
    }
    try {
      this.revision = await this.kv.create(this.key, this.holder);
    } catch (e) {
      if (isWrongLastSequence(e)) return;
      throw e;
    }
    this.renewedAt = Date.now();
    try {
      await this.work.gain();
    } catch (e) {
      // Not started: free it again for whoever can.
      const revision = this.revision;
      this.revision = undefined;
      await this.kv.delete(this.key, { previousSeq: revision }).catch(() => undefined);
      throw e;
    }
    this.log.info({ lease: this.key, holder: this.holder }, 'lease taken');
  }
}
