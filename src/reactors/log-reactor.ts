import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { JetStreamManager } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import type { Logger } from '../platform/logger.js';
import { subjects, type Commit, type ParkedCommit } from '../messages/wire.js';
import { STREAMS } from '../store/provision.js';
import { loggedCommit, type LoggedCommit } from '../store/event-store.js';
import { streamMessages } from '../store/read-stream.js';
import type { AggregateHost } from '../actors/host.js';
import type { ImgrMetrics } from '../platform/metrics.js';
import { Lease } from '../platform/lease.js';
import { Lanes } from './lanes.js';
import { Watermark } from './watermark.js';
import { readPosition, writePosition } from './reactor-position.js';

export interface ReactorContext {
  readonly nc: NatsConnection;
  readonly jsm: JetStreamManager;
  readonly host: AggregateHost;
  readonly log: Logger;
  /** The reactor's lease time: a dead holder's reactor moves to another manager within it. */
  readonly ackWaitMs: number;
  readonly metrics: ImgrMetrics;
  /** imgr_leases: who runs the reactor. */
  readonly leases: KV;
  /** imgr_meta: how far it got (`reactor.<name>`). */
  readonly meta: KV;
}

/** Tries of one commit before a reactor parks it and carries on. */
export const PARK_AFTER = 5;

/** Commits a reactor works on at once (on different aggregates; one aggregate's in log order). */
export const REACTOR_IN_FLIGHT = 256;

/** How often a running reactor stores how far it got. */
export const POSITION_EVERY_MS = 500;

/** Commits read from the log per pull while a reactor catches up. */
const READ_BATCH = 1_000;

/** One commit in a lane. */
interface InFlight {
  readonly c: LoggedCommit;
  /** Failed reactions so far. */
  failures: number;
}

/**
 * A reactor on the event log. It reads the log through the aggregate
 * host's own tail (each commit once the resident state holds it) and, when
 * it falls behind or starts, from the log itself; its position (the
 * sequence up to which every commit is done) is kept in imgr_meta, stored
 * every POSITION_EVERY_MS and when it stops. Everything it asks for is
 * published with deterministic msgIDs, so the commits after the stored
 * position that a dead holder had done already publish nothing twice.
 *
 * One manager at a time runs a reactor: the one that holds its lease
 * (`reactor.<name>` in imgr_leases); a stopping one frees it at once, a dead
 * one's lapses after the lease time. It reacts to up to REACTOR_IN_FLIGHT
 * commits at once, one aggregate's in log order. A reaction that fails is
 * retried in place, so the aggregate's later commits wait behind it and
 * other aggregates' do not; after PARK_AFTER tries the commit is parked in
 * IMGR_PARKED, so one bad commit stops nobody.
 */
export abstract class LogReactor {
  abstract readonly name: string;
  /** A reactor that acts only on effects finishes commits whose EFFECTS_HEADER says 0 without reading them. */
  protected readonly effectsOnly: boolean = false;
  private lease: Lease | undefined;
  private run: Run | undefined;

  constructor(protected readonly ctx: ReactorContext) {}

  protected abstract react(commit: Commit, seq: number): Promise<void>;

  /** Contends for the reactor's lease; runs it while it holds it. */
  async start(): Promise<void> {
    const holder = `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
    this.lease = new Lease(this.ctx.leases, `reactor.${this.name}`, holder, this.ctx.ackWaitMs, { gain: () => this.begin(), lose: () => this.end() }, this.ctx.log);
    this.ctx.metrics.watchFollower(`reactor ${this.name}`, () => Promise.resolve(this.run ? Math.max(0, this.ctx.host.appliedSeq - this.run.position) : 0));
    await this.lease.start();
  }

  async stop(): Promise<void> {
    await this.lease?.stop();
  }

  /** Whether this manager runs the reactor now. */
  get running(): boolean {
    return this.run !== undefined;
  }

  private async begin(): Promise<void> {
    const from = await readPosition(this.ctx, this.name);
    const run = new Run(this.ctx, this.name, from, this.effectsOnly, (c, seq) => this.react(c, seq), this.ctx.log.child({ reactor: this.name }));
    this.run = run;
    run.start();
    this.ctx.log.info({ reactor: this.name, from }, 'reactor running');
  }

  private async end(): Promise<void> {
    const run = this.run;
    this.run = undefined;
    await run?.stop();
  }
}

/** A reactor while this manager holds its lease. */
class Run {
  private stopping = false;
  private readingNow = false;
  private reading: Promise<void> = Promise.resolve();
  /** The next sequence to hand on. */
  private next: number;
  private readonly done: Watermark;
  private stored: number;
  private readonly lanes = new Lanes<InFlight>(
    (item) => this.handle(item),
    () => this.stopping,
    (e) => this.log.error({ err: e }, 'reactor lane failed'),
  );
  private readonly roomWaiters: (() => void)[] = [];
  /** Ends the retry pauses under way, at a stop. */
  private readonly wakers = new Set<() => void>();
  private unlisten: () => void = () => undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly ctx: ReactorContext,
    private readonly name: string,
    from: number,
    private readonly effectsOnly: boolean,
    private readonly react: (commit: Commit, seq: number) => Promise<void>,
    private readonly log: Logger,
  ) {
    this.next = from + 1;
    this.done = new Watermark(from);
    this.stored = from;
  }

  get position(): number {
    return this.done.value;
  }

  start(): void {
    this.unlisten = this.ctx.host.onCommit((c) => this.live(c));
    this.timer = setInterval(() => {
      void this.store();
      // A read that failed (NATS away) is tried again here even when no new commit comes to start it.
      if (this.next <= this.ctx.host.appliedSeq && this.done.open < REACTOR_IN_FLIGHT) this.catchUp();
    }, POSITION_EVERY_MS);
    this.timer.unref();
    this.catchUp();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.unlisten();
    clearInterval(this.timer);
    for (const wake of this.wakers) wake();
    for (const w of this.roomWaiters.splice(0)) w();
    await this.reading;
    await this.lanes.idle();
    await this.store();
  }

  /** A commit the host's tail just read: handed on at once when it is the next and there is room, else read from the log. */
  private live(c: LoggedCommit): void {
    if (this.stopping || c.seq < this.next) return;
    if (this.readingNow || c.seq > this.next || this.done.open >= REACTOR_IN_FLIGHT) {
      this.catchUp();
      return;
    }
    this.hand(c);
  }

  /** Reads the log from the next sequence up to what the host holds, with room for what it hands on. */
  private catchUp(): void {
    if (this.readingNow || this.stopping) return;
    this.readingNow = true;
    this.reading = this.read()
      .catch((e: unknown) => this.log.warn({ err: e, next: this.next }, 'reading the log failed; trying again'))
      .finally(() => {
        this.readingNow = false;
        // A commit the tail brought while this read ended is read now, not at the next one.
        if (!this.stopping && this.next <= this.ctx.host.appliedSeq) setTimeout(() => this.catchUp(), 0).unref();
      });
  }

  private async read(): Promise<void> {
    while (!this.halted() && this.next <= this.ctx.host.appliedSeq) {
      const upTo = this.ctx.host.appliedSeq;
      for await (const m of streamMessages(this.ctx.nc, STREAMS.events, { fromSeq: this.next, toSeq: upTo, limit: READ_BATCH })) {
        await this.room();
        if (this.halted()) return;
        if (m.seq >= this.next) this.hand(loggedCommit(m.seq, m.subject, m.data, m.headers));
      }
    }
  }

  /** Read through a call: a stop lands while `read` awaits, which a narrowed `this.stopping` would not show. */
  private halted(): boolean {
    return this.stopping;
  }

  private room(): Promise<void> {
    if (this.done.open < REACTOR_IN_FLIGHT || this.stopping) return Promise.resolve();
    return new Promise((resolve) => this.roomWaiters.push(resolve));
  }

  private hand(c: LoggedCommit): void {
    this.next = c.seq + 1;
    this.done.handed(c.seq);
    if (this.effectsOnly && c.effects === 0) {
      // Nothing to react to: done without being read.
      this.finished(c.seq);
      return;
    }
    this.lanes.push(c.subject, { c, failures: 0 });
  }

  private finished(seq: number): void {
    this.done.finish(seq);
    this.ctx.metrics.reactions.inc({ reactor: this.name });
    if (this.done.open < REACTOR_IN_FLIGHT) for (const w of this.roomWaiters.splice(0)) w();
  }

  private async store(): Promise<void> {
    const at = this.done.value;
    if (at <= this.stored) return;
    try {
      await writePosition(this.ctx.meta, this.name, at);
      this.stored = at;
    } catch (e) {
      this.log.warn({ err: e, position: at }, 'reactor position not stored; trying again');
    }
  }

  private async handle(item: InFlight): Promise<void> {
    const { c } = item;
    const commit = c.commit;
    if ('unreadable' in commit) {
      // Nothing to react to; parked once so that an operator sees it (`imgr parked`), as any commit given up on.
      while (!this.stopping && !(await this.park(item, 'unreadable', `unreadable commit: ${commit.unreadable}`))) await this.pause(1_000);
      return;
    }
    while (!this.stopping) {
      try {
        await this.react(commit, c.seq);
        this.finished(c.seq);
        return;
      } catch (e) {
        item.failures += 1;
        if (item.failures >= PARK_AFTER) {
          if (await this.park(item, commit.commandId, e)) return;
        } else {
          this.log.error({ err: e, seq: c.seq, attempts: item.failures }, 'reaction failed, will retry');
        }
        await this.pause(1_000 * Math.min(item.failures, PARK_AFTER));
      }
    }
  }

  /** Waits before a retry; a stop cuts it short. */
  private pause(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const wake = (): void => {
        clearTimeout(t);
        this.wakers.delete(wake);
        resolve();
      };
      const t = setTimeout(wake, ms);
      this.wakers.add(wake);
    });
  }

  /** True once parked (the commit then counts as done). */
  private async park(item: InFlight, commandId: string, e: unknown): Promise<boolean> {
    const parked: ParkedCommit = {
      reactor: this.name,
      seq: item.c.seq,
      subject: item.c.subject,
      commandId,
      attempts: Math.max(1, item.failures),
      error: (e instanceof Error ? e.message : String(e)).slice(0, 4096),
      at: Date.now(),
    };
    try {
      await jetstream(this.ctx.nc).publish(subjects.parked(this.name, item.c.seq), JSON.stringify(parked), { msgID: `parked-${this.name}-${item.c.seq}` });
      this.log.error({ ...parked }, 'reaction parked: the reactor carries on without it');
      this.finished(item.c.seq);
      this.ctx.metrics.parked.inc({ reactor: this.name });
      return true;
    } catch (err) {
      this.log.error({ err, seq: item.c.seq }, 'could not park a failing commit, will retry');
      return false;
    }
  }
}
