import { AckPolicy, DeliverPolicy, jetstream, type JetStreamManager, type JsMsg } from '@nats-io/jetstream';
import { nanos, type NatsConnection } from '@nats-io/transport-node';
import type { Logger } from '../platform/logger.js';
import type { Commit } from '../messages/wire.js';
import { parseCommit } from '../store/event-store.js';
import { STREAMS } from '../store/provision.js';
import type { AggregateHost } from '../actors/host.js';

export interface ReactorContext {
  readonly nc: NatsConnection;
  readonly jsm: JetStreamManager;
  readonly host: AggregateHost;
  readonly log: Logger;
  readonly ackWaitMs: number;
}

/**
 * A reactor on the event log. Its durable consumer is its checkpoint: a
 * commit is acknowledged only after everything it asked for was published
 * (with deterministic msgIDs, so a redelivery publishes nothing twice).
 * Several managers share a reactor's durable and split the work.
 */
export abstract class LogReactor {
  abstract readonly name: string;
  private stopping = false;
  private loop: Promise<void> | undefined;
  private closer: (() => Promise<void>) | undefined;

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
    const consumer = await jetstream(this.ctx.nc).consumers.get(STREAMS.events, this.name);
    const messages = await consumer.consume({ max_messages: 100 });
    this.closer = async () => {
      await messages.close();
    };
    this.loop = (async () => {
      for await (const m of messages) {
        await this.handle(m);
        if (this.stopping) break;
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.closer?.();
    await this.loop;
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
      this.ctx.log.error({ err: e, reactor: this.name, seq: m.seq }, 'reaction failed, will retry');
      m.nak(1000);
    }
  }
}
