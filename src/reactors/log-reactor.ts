import { AckPolicy, DeliverPolicy, jetstream, type ConsumerConfig, type JetStreamManager, type JsMsg } from '@nats-io/jetstream';
import { followDurable, type Follower } from '../store/follow.js';
import { nanos, type NatsConnection } from '@nats-io/transport-node';
import type { Logger } from '../platform/logger.js';
import { parseCommit, subjects, type Commit, type ParkedCommit } from '../messages/wire.js';
import { STREAMS } from '../store/provision.js';
import type { AggregateHost } from '../actors/host.js';
import { Lanes } from './lanes.js';
import { COMMIT_SHAPE_HEADER, EFFECTS_HEADER } from '../messages/names.js';
import type { ImgrMetrics } from '../platform/metrics.js';

export interface ReactorContext {
  readonly nc: NatsConnection;
  readonly jsm: JetStreamManager;
  readonly host: AggregateHost;
  readonly log: Logger;
  readonly ackWaitMs: number;
  readonly metrics: ImgrMetrics;
}

/** Deliveries of one commit before a reactor parks it and carries on. */
export const PARK_AFTER = 5;

/** Commits a reactor works on at once (on different aggregates; one aggregate's in log order). */
export const REACTOR_IN_FLIGHT = 256;

/** The priority group every manager's reactor pulls in: the server pins one of them. */
export const REACTOR_GROUP = 'imgr';

/** The durable's settings this version runs with; an existing durable is brought to them, keeping its position. */
export function reactorConsumerSettings(ackWaitMs: number): Pick<ConsumerConfig, 'ack_wait' | 'max_ack_pending' | 'priority_groups' | 'priority_policy' | 'priority_timeout'> {
  return {
    ack_wait: nanos(ackWaitMs),
    max_ack_pending: REACTOR_IN_FLIGHT,
    priority_groups: [REACTOR_GROUP],
    priority_policy: 'pinned_client',
    // A manager that died hands its reactors over once its pin times out, as its unacknowledged commits come back.
    priority_timeout: nanos(ackWaitMs),
  };
}

/** One commit in a lane; a redelivery while it is still there replaces its handle. */
interface InFlight {
  readonly seq: number;
  m: JsMsg;
  /** Failed reactions so far, counting earlier deliveries. */
  failures: number;
}

/**
 * A reactor on the event log. Its durable consumer is its checkpoint: a
 * commit is acknowledged only after everything it asked for was published
 * (with deterministic msgIDs, so a redelivery publishes nothing twice).
 *
 * One manager at a time runs a reactor: the durable is a pinned-client
 * priority group, and the others' pulls wait until the pinned one stops (it
 * unpins) or dies (its pin times out). The pinned manager reacts to up to
 * REACTOR_IN_FLIGHT commits at once, one aggregate's in log order. A
 * reaction that fails is retried in place, so the aggregate's later commits
 * wait behind it and other aggregates' do not; after PARK_AFTER tries the
 * commit is parked in IMGR_PARKED, so one bad commit stops nobody.
 */
export abstract class LogReactor {
  abstract readonly name: string;
  /** A reactor that acts only on effects acknowledges commits whose EFFECTS_HEADER says 0 without reading them. */
  protected readonly effectsOnly: boolean = false;
  private stopping = false;
  private follower: Follower | undefined;
  private readonly inFlight = new Map<number, InFlight>();
  private readonly lanes = new Lanes<InFlight>(
    (c, lane) => this.handle(c, lane),
    () => this.stopping,
    (e) => this.ctx.log.error({ err: e, reactor: this.name }, 'reactor lane failed'),
  );
  /** Ends the retry pauses under way, at a stop. */
  private readonly wakers = new Set<() => void>();

  constructor(protected readonly ctx: ReactorContext) {}

  protected abstract react(commit: Commit, seq: number): Promise<void>;

  async start(): Promise<void> {
    await this.ensureDurable();
    this.ctx.metrics.watchConsumer(this.ctx.jsm, STREAMS.events, this.name);
    this.follower = await followDurable(jetstream(this.ctx.nc), this.ctx.jsm, {
      stream: STREAMS.events,
      durable: this.name,
      // The pin lasts while its holder keeps pulling: each pull must end well within the pin's timeout.
      consume: { max_messages: REACTOR_IN_FLIGHT, group: REACTOR_GROUP, expires: Math.max(1_000, Math.floor(this.ctx.ackWaitMs / 3)) },
      log: this.ctx.log,
      onMessage: (m) => this.accept(m),
    });
  }

  async stop(): Promise<void> {
    this.stopping = true;
    for (const wake of this.wakers) wake();
    await this.follower?.stop();
    await this.lanes.idle();
    // What is left unacknowledged comes back after ack_wait; the pin goes now, so another manager takes over at once.
    await this.ctx.jsm.consumers.unpin(STREAMS.events, this.name, REACTOR_GROUP).catch((e: unknown) => this.ctx.log.debug({ err: e, reactor: this.name }, 'unpin failed'));
  }

  private async ensureDurable(): Promise<void> {
    const settings = reactorConsumerSettings(this.ctx.ackWaitMs);
    const existing = await this.ctx.jsm.consumers.info(STREAMS.events, this.name).catch(() => undefined);
    if (!existing) {
      await this.ctx.jsm.consumers.add(STREAMS.events, { durable_name: this.name, ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All, ...settings });
      return;
    }
    const c = existing.config;
    const same =
      c.ack_wait === settings.ack_wait &&
      c.max_ack_pending === settings.max_ack_pending &&
      c.priority_policy === settings.priority_policy &&
      c.priority_timeout === settings.priority_timeout &&
      JSON.stringify(c.priority_groups ?? []) === JSON.stringify(settings.priority_groups);
    if (!same) await this.ctx.jsm.consumers.update(STREAMS.events, this.name, settings);
  }

  private accept(m: JsMsg): void {
    if (this.stopping) return;
    if (this.effectsOnly && m.headers?.get(EFFECTS_HEADER) === '0') {
      // Nothing to react to: acknowledged without being read.
      m.ack();
      this.ctx.metrics.reactions.inc({ reactor: this.name });
      return;
    }
    const known = this.inFlight.get(m.seq);
    if (known) {
      // Redelivered while waiting in its lane (a long retry ahead of it): acknowledge through the latest delivery.
      known.m = m;
      return;
    }
    const c: InFlight = { seq: m.seq, m, failures: m.info.deliveryCount - 1 };
    this.inFlight.set(m.seq, c);
    this.lanes.push(m.subject, c);
  }

  private async handle(c: InFlight, lane: readonly InFlight[]): Promise<void> {
    try {
      const commit = parseCommit(c.m.string(), c.m.headers?.get(COMMIT_SHAPE_HEADER));
      if ('unreadable' in commit) {
        this.ctx.log.error({ reactor: this.name, seq: c.seq, reason: commit.unreadable }, 'reactor skips an unreadable commit');
        c.m.ack();
        return;
      }
      while (!this.stopping) {
        try {
          // Views the reaction reads must include this commit.
          await this.ctx.host.waitFor(c.seq);
          await this.react(commit, c.seq);
          c.m.ack();
          this.ctx.metrics.reactions.inc({ reactor: this.name });
          return;
        } catch (e) {
          c.failures += 1;
          if (c.failures >= PARK_AFTER) {
            if (await this.park(c, commit, e)) return;
          } else {
            this.ctx.log.error({ err: e, reactor: this.name, seq: c.seq, attempts: c.failures }, 'reaction failed, will retry');
          }
          await this.pause(1_000 * Math.min(c.failures, PARK_AFTER), lane);
        }
      }
    } finally {
      this.inFlight.delete(c.seq);
    }
  }

  /** Waits before a retry, keeping the lane's commits from being redelivered meanwhile; a stop cuts it short. */
  private async pause(ms: number, lane: readonly InFlight[]): Promise<void> {
    const keepAlive = (): void => {
      for (const c of lane) {
        try {
          c.m.working();
        } catch {
          // The connection is gone: the server redelivers after ack_wait.
        }
      }
    };
    keepAlive();
    const beat = setInterval(keepAlive, Math.max(250, Math.floor(this.ctx.ackWaitMs / 3)));
    try {
      await new Promise<void>((resolve) => {
        const wake = (): void => {
          clearTimeout(t);
          this.wakers.delete(wake);
          resolve();
        };
        const t = setTimeout(wake, ms);
        this.wakers.add(wake);
      });
    } finally {
      clearInterval(beat);
    }
  }

  /** True once parked and acknowledged. */
  private async park(c: InFlight, commit: Commit, e: unknown): Promise<boolean> {
    const parked: ParkedCommit = {
      reactor: this.name,
      seq: c.seq,
      subject: c.m.subject,
      commandId: commit.commandId,
      attempts: c.failures,
      error: (e instanceof Error ? e.message : String(e)).slice(0, 4096),
      at: Date.now(),
    };
    try {
      await jetstream(this.ctx.nc).publish(subjects.parked(this.name, c.seq), JSON.stringify(parked), { msgID: `parked-${this.name}-${c.seq}` });
      this.ctx.log.error({ ...parked }, 'reaction parked: the reactor carries on without it');
      c.m.ack();
      this.ctx.metrics.parked.inc({ reactor: this.name });
      return true;
    } catch (err) {
      this.ctx.log.error({ err, reactor: this.name, seq: c.seq }, 'could not park a failing commit, will retry');
      return false;
    }
  }
}
