import type { JetStreamManager } from '@nats-io/jetstream';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Latency buckets in seconds: a decision takes microseconds, a commit milliseconds, a STAT or a full round seconds. */
const FAST_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Driver actions run from milliseconds (dummy) to hours (a copy of a large image). */
const DRIVER_BUCKETS = [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 14_400];

/** A durable whose backlog the role reports; its partition once the durable is one. */
interface WatchedConsumer {
  readonly jsm: JetStreamManager;
  readonly stream: string;
  readonly durable: string;
}

/**
 * Every metric imgr exports, in one registry per process: `npm start` runs
 * all roles in one process and they share it; `imgr serve --role` has one
 * per role. A role only moves its own metrics; the others show their HELP
 * and TYPE lines and no series. Names and labels are in docs/metrics.md.
 */
export class ImgrMetrics {
  readonly registry = new Registry();
  private readonly consumers: WatchedConsumer[] = [];
  private consumerInfos: Promise<{ c: WatchedConsumer; pending: number; ackPending: number }[]> | undefined;
  private readonly behindSources: { readonly name: string; readonly behind: () => Promise<number> }[] = [];
  private residency: (() => { resident: number; foreign: number }) | undefined;

  readonly commands = new Counter({ name: 'imgr_commands_total', help: 'Commands answered, by source (public, internal), type and status (accepted, rejected).', labelNames: ['source', 'type', 'status'] as const, registers: [this.registry] });
  readonly commandSeconds = new Histogram({ name: 'imgr_command_seconds', help: 'From delivery to answer, by command type.', labelNames: ['type'] as const, buckets: FAST_BUCKETS, registers: [this.registry] });
  readonly decisionSeconds = new Histogram({ name: 'imgr_decision_seconds', help: 'One decision by the machines (with its joined parts), by aggregate kind.', labelNames: ['aggregate'] as const, buckets: FAST_BUCKETS, registers: [this.registry] });
  readonly commitSeconds = new Histogram({ name: 'imgr_commit_seconds', help: 'One append to the log (a message or an atomic batch), by aggregate kind.', labelNames: ['aggregate'] as const, buckets: FAST_BUCKETS, registers: [this.registry] });
  readonly appendConflicts = new Counter({ name: 'imgr_append_conflicts_total', help: 'Appends refused because another writer got to the aggregate first (decided again after catching up).', labelNames: ['aggregate'] as const, registers: [this.registry] });
  readonly parked = new Counter({ name: 'imgr_parked_commits_total', help: 'Commits a reactor gave up on and parked in IMGR_PARKED.', labelNames: ['reactor'] as const, registers: [this.registry] });
  readonly reactions = new Counter({ name: 'imgr_reactions_total', help: 'Commits a reactor reacted to and acknowledged.', labelNames: ['reactor'] as const, registers: [this.registry] });
  readonly driverSeconds = new Histogram({ name: 'imgr_driver_action_seconds', help: 'Driver runs, by DS_MAD (or TM_MAD), action and result.', labelNames: ['mad', 'action', 'result'] as const, buckets: DRIVER_BUCKETS, registers: [this.registry] });
  readonly driverFailures = new Counter({ name: 'imgr_driver_failures_total', help: 'Driver runs that ended in FAILURE (a non-zero exit, a timeout, unreadable output), by DS_MAD and action.', labelNames: ['mad', 'action'] as const, registers: [this.registry] });
  readonly partitionsHeld = new Gauge({ name: 'imgr_partitions_held', help: 'Command partitions this manager decides now (its leases in imgr_leases).', registers: [this.registry] });
  readonly projectionLagSeconds = new Histogram({ name: 'imgr_projection_lag_seconds', help: 'From a commit (its time) to its views being in the buckets, live commits only.', buckets: FAST_BUCKETS, registers: [this.registry] });

  constructor() {
    // Both gauges read one consumer info per durable and scrape: the first collect asks, the second shares the answer.
    const infos = (): Promise<{ c: WatchedConsumer; pending: number; ackPending: number }[]> => (this.consumerInfos ??= this.readConsumers().finally(() => (this.consumerInfos = undefined)));
    new Gauge({
      name: 'imgr_consumer_pending',
      help: 'Messages a durable has not been delivered yet, by stream and durable.',
      labelNames: ['stream', 'durable'] as const,
      registers: [this.registry],
      async collect() {
        const all = await infos();
        this.reset();
        for (const i of all) this.set({ stream: i.c.stream, durable: i.c.durable }, i.pending);
      },
    });
    new Gauge({
      name: 'imgr_consumer_ack_pending',
      help: 'Messages a durable has delivered and not yet had acknowledged, by stream and durable.',
      labelNames: ['stream', 'durable'] as const,
      registers: [this.registry],
      async collect() {
        const all = await infos();
        this.reset();
        for (const i of all) this.set({ stream: i.c.stream, durable: i.c.durable }, i.ackPending);
      },
    });
    const residency = (): { resident: number; foreign: number } | undefined => this.residency?.();
    new Gauge({
      name: 'imgr_images_known',
      help: "Images a manager keeps resident (its partitions', and others' loaded for a moment) and those it knows only by what its indexes need (foreign).",
      labelNames: ['tier'] as const,
      registers: [this.registry],
      collect() {
        const r = residency();
        this.reset();
        if (!r) return;
        this.set({ tier: 'resident' }, r.resident);
        this.set({ tier: 'foreign' }, r.foreign);
      },
    });
    const sources = this.behindSources;
    new Gauge({
      name: 'imgr_log_behind_commits',
      help: 'Commits in the log a follower has not applied yet (the aggregate host, the projections).',
      labelNames: ['follower'] as const,
      registers: [this.registry],
      async collect() {
        this.reset();
        for (const s of sources) {
          const n = await s.behind().catch(() => undefined);
          if (n !== undefined) this.set({ follower: s.name }, n);
        }
      },
    });
  }

  /** Adds the process's own metrics (CPU, memory, event-loop lag, GC): once per process, by whoever serves /metrics. */
  withProcessMetrics(): this {
    collectDefaultMetrics({ register: this.registry, prefix: 'imgr_' });
    return this;
  }

  private async readConsumers(): Promise<{ c: WatchedConsumer; pending: number; ackPending: number }[]> {
    const out: { c: WatchedConsumer; pending: number; ackPending: number }[] = [];
    for (const c of this.consumers) {
      // A durable the server cannot describe now (a restart) is left out of this scrape.
      const ci = await c.jsm.consumers.info(c.stream, c.durable).catch(() => undefined);
      if (ci) out.push({ c, pending: ci.num_pending, ackPending: ci.num_ack_pending });
    }
    return out;
  }

  /** Reports a durable's backlog at each scrape. */
  watchConsumer(jsm: JetStreamManager, stream: string, durable: string): void {
    if (!this.consumers.some((c) => c.stream === stream && c.durable === durable)) this.consumers.push({ jsm, stream, durable });
  }

  /** Reports the manager's resident and foreign images at each scrape. */
  watchResidency(sizes: () => { resident: number; foreign: number }): void {
    this.residency = sizes;
  }

  /** Reports how far a log follower is behind at each scrape; a second follower of that name replaces the first. */
  watchFollower(name: string, behind: () => Promise<number>): void {
    const i = this.behindSources.findIndex((s) => s.name === name);
    if (i >= 0) this.behindSources.splice(i, 1);
    this.behindSources.push({ name, behind });
  }
}
