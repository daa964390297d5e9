import { AckPolicy, DeliverPolicy, jetstream, type JetStreamManager, type JsMsg } from '@nats-io/jetstream';
import { followDurable, nakQuietly, type Follower } from '../store/follow.js';
import { nanos, type NatsConnection } from '@nats-io/transport-node';
import type { Logger } from '../platform/logger.js';
import { parseCommit, subjects, type Commit, type ParkedCommit } from '../messages/wire.js';
import { STREAMS } from '../store/provision.js';
import type { AggregateHost } from '../actors/host.js';

export interface ReactorContext {
  readonly nc: NatsConnection;
  readonly jsm: JetStreamManager;
  readonly host: AggregateHost;
  readonly log: Logger;
  readonly ackWaitMs: number;
}

/** Deliveries of one commit before a reactor parks it and carries on. */
export const PARK_AFTER = 5;

/**
 * A reactor on the event log. Its durable consumer is its checkpoint: a
 * commit is acknowledged only after everything it asked for was published
 * (with deterministic msgIDs, so a redelivery publishes nothing twice).
 * Several managers share a reactor's durable and split the work. A commit
 * whose reaction keeps failing is parked in IMGR_PARKED after PARK_AFTER
 * deliveries, so one bad commit cannot stop the reactor for everyone.
 */
export abstract class LogReactor {
  abstract readonly name: string;
  private stopping = false;
  private follower: Follower | undefined;

  constructor(protected readonly ctx: ReactorContext) {}

  protected abstract react(commit: Commit, seq: number): Promise<void>;

  async start(): Promise<void> {
    await this.ctx.jsm.consumers.add(STREAMS.events, {
      durable_name: this.name,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: nanos(this.ctx.ackWaitMs),
      max_ack_pending: 1,
    });
    this.follower = await followDurable(jetstream(this.ctx.nc), this.ctx.jsm, {
      stream: STREAMS.events,
      durable: this.name,
      consume: { max_messages: 100 },
      log: this.ctx.log,
      onMessage: (m) => (this.stopping ? undefined : this.handle(m)),
    });
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.follower?.stop();
  }

  private async handle(m: JsMsg): Promise<void> {
    const commit = parseCommit(m.string());
    if ('unreadable' in commit) {
      this.ctx.log.error({ reactor: this.name, seq: m.seq, reason: commit.unreadable }, 'reactor skips an unreadable commit');
      m.ack();
      return;
    }
    try {
      // Views the reaction reads must include this commit.
      await this.ctx.host.waitFor(m.seq);
      await this.react(commit, m.seq);
      m.ack();
    } catch (e) {
      const attempts = m.info.deliveryCount;
      if (attempts < PARK_AFTER) {
        this.ctx.log.error({ err: e, reactor: this.name, seq: m.seq, attempts }, 'reaction failed, will retry');
        nakQuietly(m, 1000 * attempts);
        return;
      }
      await this.park(m, commit, attempts, e);
    }
  }

  private async park(m: JsMsg, commit: Commit, attempts: number, e: unknown): Promise<void> {
    const parked: ParkedCommit = {
      reactor: this.name,
      seq: m.seq,
      subject: m.subject,
      commandId: commit.commandId,
      attempts,
      error: (e instanceof Error ? e.message : String(e)).slice(0, 4096),
      at: Date.now(),
    };
    try {
      await jetstream(this.ctx.nc).publish(subjects.parked(this.name, m.seq), JSON.stringify(parked), { msgID: `parked-${this.name}-${m.seq}` });
      this.ctx.log.error({ ...parked }, 'reaction parked: the reactor carries on without it');
      m.ack();
    } catch (err) {
      this.ctx.log.error({ err, reactor: this.name, seq: m.seq }, 'could not park a failing commit, will retry');
      nakQuietly(m, 5000);
    }
  }
}
