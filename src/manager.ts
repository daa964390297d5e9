import { NoRespondersError, RequestError, TimeoutError, type NatsConnection } from '@nats-io/transport-node';
import type { KV } from '@nats-io/kv';
import { connectAs } from './platform/nats.js';
import { Responder, type Query } from './platform/responder.js';
import { QUERY_PATTERNS, READ_AS_HEADER } from './messages/queries.js';
import { mayRead, mayReadOutcome, readerOf, type Reader } from './intake/readers.js';
import { safeJson } from './platform/json.js';
import { ManagerConfigSchema, type ManagerConfig, type ManagerConfigInput } from './platform/config.js';
import { systemClock, type Clock } from './platform/clock.js';
import type { Logger } from './platform/logger.js';
import { ImgrMetrics } from './platform/metrics.js';
import { provision } from './store/provision.js';
import { EventStore } from './store/event-store.js';
import { isWrongLastSequence } from './store/errors.js';
import { AggregateHost } from './actors/host.js';
import { Intake, SOURCE_STREAMS, intakeDurable, type IntakeFeed, type IntakeOptions } from './intake/intake.js';
import { PartitionOwnership, type PartitionWork } from './intake/partition-ownership.js';
import { partitionOf } from './messages/partitions.js';
import { PartitionIntakes } from './intake/partition-intakes.js';
import { drainLegacyIntakes } from './intake/legacy-intake.js';
import { PrincipalRegistry } from './intake/principal-registry.js';
import { GivenUpCommands } from './intake/given-up.js';
import { META_KEYS } from './messages/names.js';
import { redactSealed } from './secrets/sealed.js';
import { DriverDispatcher } from './reactors/dispatcher.js';
import { ProcessManager } from './reactors/process-manager.js';
import { Watchdog } from './reactors/watchdog.js';
import { MonitorTimer } from './reactors/monitor-timer.js';
import { Publisher } from './reactors/publish.js';
import { AggregateKindSchema, COMMAND_SOURCES, OutcomeSchema, StatReplySchema, type AggregateKind, type CommandSource, type DriverRequest } from './messages/wire.js';

export interface ManagerOptions {
  readonly servers: string;
  readonly config?: ManagerConfigInput;
  readonly clock?: Clock;
  readonly log: Logger;
  /** Seconds between timer ticks (watchdog, monitor); tests shorten it. */
  readonly tickMs?: number;
  /** Where its metrics go (one registry per process); a registry of its own when absent. */
  readonly metrics?: ImgrMetrics;
}

/** The command durables' ack wait: half the partition lease (the manager's ack wait). */
export const intakeAckWait = (leaseMs: number): number => Math.max(200, Math.floor(leaseMs / 2));

/** First ids handed out: user datastores start at 100 (§12.2), images at 0. */
const FIRST_ID: Record<AggregateKind, number> = { image: 0, datastore: 100 };

/**
 * The manager role: provisions the store, boots the aggregate host, and runs
 * the intake, the reactors, the timers and the id service.
 */
export class Manager {
  private timers: NodeJS.Timeout[] = [];
  private busy = new Set<string>();

  private constructor(
    readonly nc: NatsConnection,
    readonly host: AggregateHost,
    /** Which command partitions this manager decides. */
    readonly ownership: PartitionOwnership,
    private readonly partitions: number,
    private readonly reactors: { stop(): Promise<void> }[],
    private readonly queries: Responder,
    readonly config: ManagerConfig,
    private readonly log: Logger,
  ) {}

  static async start(o: ManagerOptions): Promise<Manager> {
    const config = ManagerConfigSchema.parse(o.config ?? {});
    const clock = o.clock ?? systemClock;
    const metrics = o.metrics ?? new ImgrMetrics();
    const nc = await connectAs('manager', o.servers);
    const p = await provision(nc, { replicas: config.replicas, leaseMs: config.ackWaitMs, ...(config.partitions !== undefined ? { partitions: config.partitions } : {}) });
    const store = new EventStore(nc, p.jsm);
    const host = new AggregateHost(store, p.snapshots, config, clock, o.log.child({ component: 'host' }), p.partitions, {
      stat: (req) => statOverNats(nc, req, config.timeouts.STAT * 1000),
      ids: (kind, n) => nextIds(p.meta, kind, n),
      metrics,
    });
    await host.boot();
    metrics.watchFollower('aggregate host', async () => Math.max(0, (await store.lastSeq()) - host.appliedSeq));
    metrics.watchResidency(() => ({ resident: host.sizes.images, foreign: host.sizes.imagesForeign }));
    const ctx = { nc, jsm: p.jsm, host, log: o.log, ackWaitMs: config.ackWaitMs, metrics, leases: p.leases, meta: p.meta };
    const dispatcher = new DriverDispatcher({ ...ctx, log: o.log.child({ component: 'dispatch' }) }, config, clock);
    const pm = new ProcessManager({ ...ctx, log: o.log.child({ component: 'process' }) }, clock);
    await dispatcher.start();
    await pm.start();
    // Clients read which attributes to seal from imgr_meta.
    await p.meta.put(META_KEYS.secretAttributes, JSON.stringify(config.secretAttributes));
    const principals = await PrincipalRegistry.start(p.meta, o.log.child({ component: 'principals' }));
    const intakeOptions = (source: CommandSource, feed: IntakeFeed): IntakeOptions => ({
      clock,
      log: o.log.child({ component: source === 'public' ? 'intake' : 'intake-internal', durable: feed.durable }),
      // Half the lease: a dead holder's commands are back for redelivery before its lease ends, so the next
      // holder gets them before any later command for their aggregates (JetStream redelivers first, in order).
      ackWaitMs: intakeAckWait(config.ackWaitMs),
      source,
      secretAttributes: config.secretAttributes,
      ...(source === 'public' ? { principals } : {}),
      maxDeliver: config.intakeMaxDeliver,
      metrics,
      feed,
    });
    const newIntake = (source: CommandSource, feed: IntakeFeed): Intake => new Intake(nc, p.jsm, host, p.outcomes, intakeOptions(source, feed));
    // An upgraded store's commands from before partitioning are decided first, then their durables go.
    await drainLegacyIntakes(p.jsm, newIntake, o.log.child({ component: 'legacy-intake' }));
    for (let i = 0; i < p.partitions; i++) for (const source of COMMAND_SOURCES) metrics.watchConsumer(p.jsm, SOURCE_STREAMS[source], intakeDurable(source, i));
    const intakes = new PartitionIntakes(newIntake, metrics);
    const hostLog = o.log.child({ component: 'host' });
    // A gained partition's commands are taken at once (an image they need is loaded on demand) while its images load.
    const work: PartitionWork = {
      gain: async (partition) => {
        await intakes.gain(partition);
        host.adoptPartition(partition).catch((e: unknown) => hostLog.warn({ err: e, partition }, 'loading a partition\'s images failed; each loads when a command needs it'));
      },
      lose: async (partition) => {
        await intakes.lose(partition);
        // Checkpointed while still resident: its checkpoint moves on, and the next holder loads fresh snapshots.
        await host.checkpoint().catch((e: unknown) => hostLog.warn({ err: e, partition }, 'checkpoint before giving a partition up failed'));
        host.releasePartition(partition);
      },
    };
    const ownership = new PartitionOwnership(p.leases, work, { partitions: p.partitions, leaseMs: config.ackWaitMs, log: o.log.child({ component: 'partitions' }) });
    await ownership.start();
    // The boot loaded every image; from here on only the held partitions' stay resident.
    host.hold((partition) => ownership.holds(partition));
    // Queries are answered from a connection that may publish to inboxes only (Responder).
    const queries = await Responder.connect(o.servers, 'imgr-manager-queries', o.log.child({ component: 'queries' }));
    // Ids for principals, who create things: the read-only roles (auditor, dashboard) and the others get no answer,
    // so asking cannot advance the counters.
    queries.serve(QUERY_PATTERNS.nextId, 'imgr-ids', async (q) => {
      const kind = AggregateKindSchema.safeParse(q.tokens[4]);
      const asker = principals.lookup(q.asker);
      if (!kind.success || asker === undefined || 'refused' in asker) return undefined;
      const [id] = await nextIds(p.meta, kind.data, 1);
      return String(id);
    });
    // Point reads of the resident state, until the projections serve richer queries. Any manager answers:
    // another partition's image is loaded for the read (and given up again once idle).
    // A principal reads the images it may USE (any datastore: see Projector.serve); another is not found, as one that does not exist.
    const readerOfAsker = (q: Query): Reader | undefined => readerOf(q.asker, (name) => principals.lookup(name), q.header(READ_AS_HEADER));
    queries.serve(QUERY_PATTERNS.view, 'imgr-views', async (q) => {
      const reader = readerOfAsker(q);
      const [kind, idText] = [q.tokens[4], q.tokens[5]];
      const id = Number(idText);
      const view = reader === undefined ? undefined : kind === 'image' && Number.isSafeInteger(id) && id >= 0 ? await host.readImage(id) : kind === 'datastore' ? host.datastore(id) : undefined;
      // A deleted aggregate is not found, as the API and the commands say (its history stays in the log).
      const shown = view === undefined || view.state === 'REMOVED' || reader === undefined || (kind === 'image' && !mayRead(reader, view)) ? null : view;
      return JSON.stringify(redactSealed(shown));
    });
    // A kept outcome, for a sender that lost its reply: the sender's own only (a command id is no secret).
    queries.serve(QUERY_PATTERNS.outcome, 'imgr-outcomes', async (q) => {
      const reader = readerOfAsker(q);
      const commandId = q.text();
      // A key the bucket cannot hold (wildcards among them) names no outcome.
      if (reader === undefined || !/^[-/=.\w]{1,256}$/.test(commandId)) return 'null';
      const e = await p.outcomes.get(commandId);
      const outcome = e?.operation === 'PUT' ? OutcomeSchema.safeParse(safeJson(e.string())) : undefined;
      return outcome?.success === true && mayReadOutcome(reader, outcome.data) ? JSON.stringify(outcome.data) : 'null';
    });
    // Commands past their durable's max_deliver: recorded for audit, the operator alerted, removed from their queue.
    const givenUp = new GivenUpCommands(nc, p.jsm, { streams: Object.values(SOURCE_STREAMS), secretAttributes: config.secretAttributes, clock, log: o.log.child({ component: 'given-up' }), metrics });
    givenUp.start();
    const m = new Manager(nc, host, ownership, p.partitions, [givenUp, ownership, dispatcher, pm, { stop: async () => { principals.stop(); await Promise.resolve(); } }], queries, config, o.log);
    const out = new Publisher(nc, 'watchdog');
    // Timers act for the aggregates of the partitions this manager holds: each effect is asked for once.
    const holds = (kind: AggregateKind, id: number): boolean => m.holds(kind, id);
    const watchdog = new Watchdog(host, out, clock, o.log.child({ component: 'watchdog' }), holds);
    const monitor = new MonitorTimer(host, dispatcher, config.monitorIntervalMs, clock, holds);
    const tick = o.tickMs ?? 1000;
    m.every('watchdog', Math.min(tick, config.watchdogIntervalMs), () => watchdog.tick());
    m.every('monitor', tick, () => monitor.tick());
    m.every('checkpoint', config.snapshotIntervalMs, () => host.checkpoint());
    m.every('compact', 1_000, () => Promise.resolve(host.compact()));
    // Started means its services answer: the server has its subscriptions (a request right after start found no responder).
    await nc.flush();
    await queries.nc.flush();
    o.log.info({ servers: o.servers }, 'manager started');
    return m;
  }

  /** Whether this manager holds the partition of an aggregate (decides its commands, runs its timers). */
  holds(kind: AggregateKind, id: number): boolean {
    return this.ownership.holds(partitionOf(kind, id, this.partitions));
  }

  /** Runs `task` every `ms`, never two at once, logging failures instead of dying. */
  private every(name: string, ms: number, task: () => Promise<unknown>): void {
    const t = setInterval(() => {
      if (this.busy.has(name)) return;
      this.busy.add(name);
      task()
        .catch((e: unknown) => this.log.error({ err: e, timer: name }, 'timer task failed'))
        .finally(() => this.busy.delete(name));
    }, ms);
    t.unref();
    this.timers.push(t);
  }

  async stop(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.queries.unsubscribe();
    for (const r of this.reactors) await r.stop();
    await this.host.checkpoint().catch((e: unknown) => this.log.warn({ err: e }, 'final checkpoint failed'));
    await this.host.stop();
    await this.queries.close();
    await this.nc.drain();
  }
}

/** STAT is a synchronous request (§9.3): a driver host answers on imgr.stat. */
async function statOverNats(nc: NatsConnection, req: DriverRequest, timeoutMs: number): Promise<{ result: 'SUCCESS' | 'FAILURE'; info: string }> {
  try {
    const m = await nc.request('imgr.stat', JSON.stringify(req), { timeout: timeoutMs });
    return StatReplySchema.parse(m.json());
  } catch (e) {
    if (e instanceof NoRespondersError || (e instanceof RequestError && e.isNoResponders())) return { result: 'FAILURE', info: 'no driver host is running' };
    if (e instanceof TimeoutError) return { result: 'FAILURE', info: 'Request timeout' };
    throw e;
  }
}

/** A counter in KV, advanced with a revision check so that several managers never hand out one id twice. */
async function nextIds(meta: KV, kind: AggregateKind, count: number): Promise<number[]> {
  const key = `next.${kind}`;
  for (;;) {
    const e = await meta.get(key);
    const next = e?.operation === 'PUT' ? Number(e.string()) : FIRST_ID[kind];
    try {
      if (e) await meta.update(key, String(next + count), e.revision);
      else await meta.create(key, String(next + count));
      return Array.from({ length: count }, (_, i) => next + i);
    } catch (err) {
      if (!isWrongLastSequence(err)) throw err;
    }
  }
}
