import type { KV } from '@nats-io/kv';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../platform/logger.js';
import { ImgrMetrics } from '../platform/metrics.js';
import type { ManagerConfig } from '../platform/config.js';
import type { Clock } from '../platform/clock.js';
import { failpoint } from '../platform/failpoint.js';
import { INTERNAL_ID_PREFIX, aggregateOfCommand, isImageCommand, type AggregateKind, type Commit, type CommandMessage, type Outcome } from '../messages/wire.js';
import type { ImageCommand } from '../messages/image-commands.js';
import type { DatastoreCommand, DatastoreFact, DatastoreView } from '../messages/datastore.js';
import type { ImageFact } from '../messages/image-facts.js';
import type { ImageView } from '../messages/image-record.js';
import { isJoined, type Effect } from '../messages/effects.js';
import { rejection, type Rejection } from '../messages/errors.js';
import { ImgrError } from '../messages/failures.js';
import { joinedCommand } from '../machines/effect-commands.js';
import { DATASTORE, IMAGE } from '../machines/aggregates.js';
import type { Meta } from '../machines/image/events.js';
import type { ImageAggregate } from '../machines/image/decide.js';
import { aggregateOfSubject, commitHash, type EventStore, type AtomicEntry, type LoggedCommit, type Tail } from '../store/event-store.js';
import { isConcurrencyError } from '../store/errors.js';
import { LogProgress } from '../store/progress.js';
import { Mailboxes } from './mailbox.js';
import { ResidentState, actorKey, imageOfSnapshot, type Committed } from './resident-state.js';
import { partitionOf } from '../messages/partitions.js';
import { inParallel } from '../platform/parallel.js';
import { foldImageCommit } from '../machines/aggregates.js';
import { DecisionContexts, PendingCreations, contextAggregates } from './decision-context.js';
import { AllocationGroups, type GroupMember } from './allocation-groups.js';
import { Checkpoints } from './checkpoints.js';
import { NO_LOOKUPS, OutsideLookups, noIds, noStat, type IdSource, type Lookups, type StatProbe } from './lookups.js';
import type { ResidentDatastore, ResidentImage } from './resident.js';

/**
 * Executes commands: decides each with the pure machines on the resident
 * state (one at a time per aggregate), commits the facts (one message, or
 * one atomic batch across the aggregates an operation joins), and keeps the
 * resident state current by following the log. Boots from the checkpoint
 * plus the log tail, never from per-aggregate history reads.
 */
export class AggregateHost {
  private readonly state: ResidentState;
  private readonly contexts: DecisionContexts;
  private readonly lookups: OutsideLookups;
  private readonly checkpoints: Checkpoints;
  private readonly metrics: ImgrMetrics;
  private readonly mailboxes = new Mailboxes();
  private readonly groups = new AllocationGroups(this.mailboxes, (ds, members) => this.commitGroup(ds, members));
  private readonly progress = new LogProgress();
  private readonly listeners = new Set<(c: LoggedCommit) => void>();
  private tail: Tail | undefined;
  /** Images being loaded from their snapshot and subject, each once however many ask. */
  private readonly loading = new Map<number, Promise<void>>();
  /** Images of partitions not held here that were loaded for a read or a decision: given up again once idle. */
  private readonly visiting = new Set<number>();
  /** Whether this manager holds an image's partition; all of them until the manager says. */
  private holdsImage: (imageId: number) => boolean = () => true;
  private holdsPartition: (partition: number) => boolean = () => true;
  /** Partitions whose images are being loaded (adoptPartition). */
  private readonly adoptions = new Set<number>();
  /** Checkpoints one at a time: the timer's, a stop's. */
  private checkpointing: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly store: EventStore,
    private readonly snapshots: KV,
    private readonly config: ManagerConfig,
    private readonly clock: Clock,
    private readonly log: Logger,
    /** The store's command partition count (provision reads it from imgr_meta): checkpoints are kept per partition. */
    private readonly partitions: number,
    o: { readonly stat?: StatProbe; readonly ids?: IdSource; readonly metrics?: ImgrMetrics } = {},
  ) {
    this.metrics = o.metrics ?? new ImgrMetrics();
    this.state = new ResidentState(() => clock.now(), (id) => this.partitionOfImage(id));
    this.contexts = new DecisionContexts(this.state, config);
    this.lookups = new OutsideLookups(this.state, config, o.stat ?? noStat, o.ids ?? noIds, clock);
    this.checkpoints = new Checkpoints(store.client, snapshots, this.state, log, partitions);
  }

  private partitionOfImage(id: number): number {
    return partitionOf('image', id, this.partitions);
  }

  /**
   * From now on keeps resident only the images of the partitions `holds`
   * accepts (plus those loaded for a moment); the others are known by what
   * the indexes need (ResidentState). Gives up the images of the partitions
   * not held now.
   */
  hold(holds: (partition: number) => boolean): number {
    this.holdsPartition = holds;
    this.holdsImage = (id) => holds(this.partitionOfImage(id));
    this.state.hold(this.holdsImage);
    return this.release((id) => !this.holdsImage(id));
  }

  /** A partition gained: its images known here as foreign are loaded (those a command needs first are loaded on demand). */
  async adoptPartition(partition: number): Promise<void> {
    if (this.adoptions.has(partition)) return;
    this.adoptions.add(partition);
    try {
      const ids = this.state.foreignIds((id) => this.partitionOfImage(id) === partition);
      await inParallel(ids, ADOPTIONS_IN_FLIGHT, (id) => this.ensureResident([id]));
      if (ids.length > 0) this.log.info({ partition, loaded: ids.length, ...this.state.sizes }, 'partition images loaded');
    } finally {
      this.adoptions.delete(partition);
    }
  }

  /** A partition lost: its images are given up, but for those a command is deciding on (released once idle). */
  releasePartition(partition: number): number {
    return this.release((id) => this.partitionOfImage(id) === partition && !this.holdsImage(id));
  }

  /** Gives up the resident images `which` selects (among `among`, else every resident image: a scan). */
  private release(which: (id: number) => boolean, among?: Iterable<number>): number {
    const n = this.state.release((id) => {
      if (!which(id)) return false;
      if (this.mailboxes.busy(`image.${id}`) || this.loading.has(id)) {
        this.visiting.add(id);
        return false;
      }
      this.visiting.delete(id);
      return true;
    }, among);
    // A partition's images given up is news; those loaded for a moment going idle are not.
    if (n > 0) this.log[among ? 'debug' : 'info']({ released: n, ...this.state.sizes }, 'images of partitions held elsewhere given up');
    return n;
  }

  /**
   * Makes the images resident that are known here only as foreign: each
   * from its snapshot (if any) and then its own subject's later commits
   * (direct gets), so a stale snapshot only costs reads. Commits the tail
   * brings meanwhile wait and are folded after (ResidentState.adopt).
   */
  async ensureResident(ids: readonly number[]): Promise<void> {
    for (const id of ids) {
      if (!this.state.isForeign(id)) continue;
      let load = this.loading.get(id);
      if (!load) {
        load = this.load(id).finally(() => this.loading.delete(id));
        this.loading.set(id, load);
      }
      await load;
    }
  }

  private async load(id: number): Promise<void> {
    this.state.beginAdopting([id]);
    try {
      const entry = await this.snapshots.get(`image.${id}`);
      let image = (entry?.operation === 'PUT' ? imageOfSnapshot(entry.string()) : undefined) ?? { agg: IMAGE.initial(id), seq: 0, hash: '' };
      for (;;) {
        const c = await this.store.nextCommitOf('image', id, image.seq + 1);
        if (!c) break;
        image = 'unreadable' in c.commit || c.commit.aggregate !== 'image' ? { ...image, seq: c.seq } : { agg: foldImageCommit(image.agg, c.commit), seq: c.seq, hash: c.hash };
      }
      this.state.adopt(id, image);
      if (!this.holdsImage(id)) this.visiting.add(id);
    } catch (e) {
      this.state.abandon(id);
      throw e;
    }
  }

  /** Loads the last checkpoint, then follows the log from there; resolves once caught up. */
  async boot(): Promise<void> {
    const checkpoint = await this.checkpoints.load();
    const target = await this.store.lastSeq();
    this.progress.reset(checkpoint);
    this.tail = await this.store.tail(checkpoint + 1, (c) => this.onLogged(c), undefined, { name: 'aggregate host', log: this.log });
    await this.waitFor(target);
    this.log.info({ checkpoint, caughtUpTo: target, ...this.state.sizes }, 'aggregate host booted');
  }

  /** Stops following the log; a second call does nothing. */
  async stop(): Promise<void> {
    const tail = this.tail;
    this.tail = undefined;
    await tail?.stop();
  }

  /** The log applied to the resident state without a gap: every commit up to here, whoever wrote it. */
  get appliedSeq(): number {
    return this.progress.applied;
  }

  /** The image as the log has it, loaded first if it is another partition's (its holder's answer would be the same). */
  async readImage(id: number): Promise<ImageView | undefined> {
    await this.ensureResident([id]);
    return this.state.image(id);
  }

  /** The image if it is resident here; undefined for one unknown or known only as another partition's. */
  image(id: number): ImageView | undefined {
    return this.state.image(id);
  }

  /** Sequence of the aggregate's last commit folded in here (resident or known as another partition's), 0 before its first. */
  foldedSeq(kind: AggregateKind, id: number): number {
    return this.state.lastSeq(kind, id);
  }

  /** Whether the image is kept resident here. */
  isResident(id: number): boolean {
    return this.state.resident(id);
  }

  /** How many images are resident, known as other partitions', hot. */
  get sizes(): { images: number; datastores: number; imagesHot: number; imagesForeign: number } {
    return this.state.sizes;
  }

  datastore(id: number): DatastoreView | undefined {
    return this.state.datastore(id);
  }

  /** How many images live in a datastore, counted from the images' facts. */
  imagesIn(datastoreId: number): number {
    return this.state.imagesIn(datastoreId);
  }

  /** Which images being created hold space in a datastore (W38), counted from the images' records. */
  reservationsIn(datastoreId: number): { imageId: number; sizeMb: number }[] {
    return this.state.reservationsIn(datastoreId);
  }

  allImages(): IterableIterator<ResidentImage> {
    return this.state.allImages();
  }

  allDatastores(): IterableIterator<ResidentDatastore> {
    return this.state.allDatastores();
  }

  /** The images something runs on whose deadline has passed (the watchdog's), read from an index, not the pool. */
  deadlinesDue(now: number): IterableIterator<ImageAggregate> {
    return this.state.deadlinesDue(now);
  }

  /**
   * Keeps images unused for `idleImageMs` as text (ImageStore), at most
   * `max` per call, and gives up those of partitions held elsewhere that were
   * loaded for a moment and are idle now; returns how many it turned.
   */
  compact(max = COMPACT_PER_CALL): number {
    const n = this.state.compact(this.config.idleImageMs, max);
    const idle: number[] = [];
    for (const id of this.visiting) {
      // Held again, or given up meanwhile: nothing left to give up.
      if (this.holdsImage(id) || !this.state.resident(id)) this.visiting.delete(id);
      else if (!this.state.hot(id)) idle.push(id);
    }
    if (idle.length > 0) this.release((id) => !this.holdsImage(id), idle);
    // A held partition with an image still foreign here (its load failed while NATS was away) is loaded again:
    // until it is, the watchdog misses that image's deadlines and the partition's checkpoint cannot move.
    for (const p of this.state.foreignPartitions()) {
      if (this.holdsPartition(p) && !this.adoptions.has(p)) {
        this.adoptPartition(p).catch((e: unknown) => this.log.warn({ err: e, partition: p }, "loading a partition's images failed; trying again"));
      }
    }
    return n;
  }

  /**
   * Calls `listener` with every commit the tail reads from now on, in log
   * order, once the resident state holds it (the reactors read the log this
   * way instead of a consumer of their own); returns a function that stops.
   */
  onCommit(listener: (c: LoggedCommit) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Resolves once the resident state reflects the log up to `seq`. */
  waitFor(seq: number): Promise<void> {
    return this.progress.waitFor(seq);
  }

  /** Writes a checkpoint of everything applied without a gap (see Checkpoints); one at a time. Resolves with its sequence. */
  checkpoint(): Promise<number> {
    const upTo = this.progress.applied;
    const next = this.checkpointing.then(() => this.checkpoints.write(upTo));
    this.checkpointing = next.catch(() => undefined);
    return next.then((partitions) => {
      this.log.debug({ upTo, partitions }, 'checkpoint written');
      return upTo;
    });
  }

  /**
   * Decides and commits one command; commands for one aggregate run in
   * arrival order. A command already committed is answered with its commit,
   * never decided again. The checks, in the order they run (the intake has
   * looked up the stored outcome before, unless the sender minted the id):
   * 1. the recent-commit index: its commit is folded in (this manager's, or one the tail brought);
   * 2. JetStream's msgID window: a single-aggregate append of it is a duplicate (`r.duplicate`);
   * 3. after a refusal, the aggregate's last commit: a batch (no msgID) or a
   *    commit whose manager died before answering is this command's.
   * A refusal is final only once it rests on the last commits of every
   * aggregate the decision read: one that lags (the follower is behind
   * another writer) is read from its own subject and the command decided again.
   */
  async execute(msg: CommandMessage): Promise<Outcome> {
    const { kind, id } = aggregateOfCommand(msg.command);
    const commandId = msg.envelope.commandId;
    await this.ensureResident(imagesRead(msg.command));
    // What the decision needs from outside (a STAT, fresh ids) is asked once, before the command queues:
    // a slow STAT holds up nothing else.
    const lookups = this.state.committed(commandId) ? NO_LOOKUPS : await this.lookups.for(msg.command, commandId, this.progress.applied);
    // The command waits for the earlier ones of every aggregate it reads: one that joins a datastore
    // (a creation's reservation) is decided after that datastore's earlier commands, not raced against them.
    // Creations into one datastore that queue meanwhile are decided and committed together.
    if (msg.command.type === 'image.allocate') return this.groups.submit(`${kind}.${id}`, msg.command.datastoreId, msg, lookups);
    const keys = [[kind, id] as const, ...contextAggregates(msg.command)].map(([k, i]) => `${k}.${i}`);
    return this.mailboxes.run(keys, () => this.settle(msg, lookups));
  }

  /** Decides and commits one command until its outcome is final; the caller holds its mailboxes. */
  private async settle(msg: CommandMessage, lookups: Lookups): Promise<Outcome> {
    const { kind, id } = aggregateOfCommand(msg.command);
    const commandId = msg.envelope.commandId;
    let countsCurrent = false;
    for (let attempt = 1; ; attempt++) {
      // Again inside the mailboxes: a partition lost and taken back meanwhile may have given the image up.
      await this.ensureResident(imagesRead(msg.command));
      const outcome = await this.decideAndCommit(msg, lookups);
      if (outcome.status === 'accepted') return outcome;
      const last = await this.store.lastCommitOf(kind, id);
      const fact = last?.commit.facts.at(-1);
      if (last && fact && last.commit.commandId === commandId) {
        return actorKey(last.commit.actor) === actorKey(msg.envelope.actor) ? accepted(commandId, { kind, id, seq: last.seq, fact: fact.type, state: fact.state }) : reused(commandId);
      }
      if (attempt >= this.config.conflictRetries) return outcome;
      // The decision read the aggregate and those its context names (origin, datastore): any of them may lag.
      const lagging: [AggregateKind, number, number][] = [];
      for (const [k, i] of [[kind, id] as const, ...contextAggregates(msg.command)]) {
        const lastSeq = k === kind && i === id ? (last?.seq ?? 0) : await this.store.lastSeqOf(k, i);
        if (lastSeq > this.state.lastSeq(k, i)) lagging.push([k, i, lastSeq]);
      }
      if (lagging.length === 0) {
        // A refusal on a datastore's counts (its images, the space they hold) rests on every image's commits,
        // another manager's included: it is final once the tail has read the log as far as it went at the refusal.
        if (countsCurrent || !COUNTED_REFUSALS.has(outcome.code)) return outcome;
        countsCurrent = true;
        const end = await this.store.lastSeq();
        if (end <= this.progress.applied) return outcome;
        this.log.info({ kind, id, code: outcome.code, applied: this.progress.applied, end }, 'refusal on datastore counts while the tail lags; deciding again once it has read the log');
        await this.waitFor(end);
        continue;
      }
      this.log.info({ kind, id, lagging: lagging.map(([k, i, s]) => `${k}.${i}@${s}`) }, 'refusal decided on a lagging state; reading the aggregates and deciding again');
      for (const [k, i, upTo] of lagging) await this.catchUp(k, i, upTo);
    }
  }

  /**
   * A group of creations into one datastore (AllocationGroups), decided one
   * after another, each seeing the names and space the ones before it took,
   * and committed as one atomic batch: each image's commit with its own
   * expectation, the datastore's grants chained after its last commit, the
   * first of them with its expectation. A member refused, or one repeated,
   * is decided on its own afterwards (the usual checks: lagging state,
   * its own earlier commit); after a conflict every member is.
   */
  private async commitGroup(datastoreId: number, members: readonly GroupMember[]): Promise<void> {
    await this.ensureResident(members.flatMap((m) => imagesRead(m.msg.command)));
    const pending = new PendingCreations(datastoreId);
    const decided: { member: GroupMember; parts: Part[]; meta: Meta; mine: Omit<Committed, 'by' | 'seq'> }[] = [];
    const alone: GroupMember[] = [];
    for (const member of members) {
      const { envelope, command } = member.msg;
      const commandId = envelope.commandId;
      const meta: Meta = { commandId, at: this.clock.now(), actor: envelope.actor };
      const decision = members.length > 1 && !this.state.committed(commandId) ? this.decide(command, meta, member.lookups, pending) : undefined;
      if (decision?.ok !== true || decision.kind !== 'image') {
        alone.push(member);
        continue;
      }
      const joined = this.decideJoined(decision.fact.effects, meta, pending);
      if (!joined.ok) {
        alone.push(member);
        continue;
      }
      const { imageId } = decision.fact;
      const created = decision.fact.changes;
      pending.add({ id: imageId, uid: created.uid ?? envelope.actor.uid, name: created.name ?? '', reservedMb: created.reservedMb ?? 0 });
      decided.push({ member, meta, parts: [partOf(decision, imageId, commandId), ...joined.parts], mine: { kind: 'image', id: imageId, fact: decision.fact.type, state: decision.fact.state } });
    }
    if (decided.length === 1) alone.unshift(...decided.splice(0).map((d) => d.member));
    if (decided.length > 1) {
      const heads = new Map<string, string>();
      const entries = decided.flatMap(({ member, parts, meta }) =>
        parts.map((p) => {
          const e = this.commitOf(p, member.msg.envelope, meta.at, p.commandId === meta.commandId ? member.msg.envelope.causationId : meta.commandId);
          const key = `${p.kind}.${p.id}`;
          const prev = heads.get(key);
          // A later commit of the same aggregate in the batch chains to the one before it and carries no
          // expectation (the server takes one per subject, on its first message of the batch).
          const entry: AtomicEntry = prev === undefined ? e : { kind: e.kind, id: e.id, commit: { ...e.commit, prev } };
          heads.set(key, commitHash(JSON.stringify(entry.commit)));
          return entry;
        }),
      );
      try {
        failpoint('before-commit:image.allocate');
        const committing = performance.now();
        const appended = await this.store.appendAtomically(entries);
        this.metrics.commitSeconds.observe({ aggregate: 'image' }, (performance.now() - committing) / 1000);
        failpoint('after-commit:image.allocate');
        const seqOf = new Map<string, number>();
        for (const [i, r] of appended.entries()) {
          const e = entries[i];
          if (!e) continue;
          this.state.apply(r.seq, e.commit, r.hash);
          seqOf.set(e.commit.commandId, r.seq);
        }
        for (const d of decided) d.member.resolve(accepted(d.meta.commandId, { ...d.mine, seq: seqOf.get(d.meta.commandId) ?? 0 }));
      } catch (e) {
        if (!isConcurrencyError(e)) {
          for (const d of decided) d.member.reject(e);
        } else {
          this.metrics.appendConflicts.inc({ aggregate: 'datastore' });
          alone.unshift(...decided.map((d) => d.member));
        }
      }
    }
    for (const member of alone) {
      try {
        member.resolve(await this.settle(member.msg, member.lookups));
      } catch (e) {
        member.reject(e);
      }
    }
  }

  /**
   * Brings one aggregate up to `upTo` from its own subject (direct gets of
   * the commits the resident state lacks), independent of the follower.
   */
  private async catchUp(kind: AggregateKind, id: number, upTo: number): Promise<void> {
    for (let from = this.state.lastSeq(kind, id) + 1; from <= upTo; ) {
      const c = await this.store.nextCommitOf(kind, id, from);
      if (!c) return;
      if ('unreadable' in c.commit) this.stepOver(c.seq, c.subject, c.commit.unreadable);
      else this.state.apply(c.seq, c.commit, c.hash);
      from = c.seq + 1;
    }
  }

  private async decideAndCommit(msg: CommandMessage, lookups: Lookups): Promise<Outcome> {
    const { envelope, command } = msg;
    const commandId = envelope.commandId;
    const { kind, id } = aggregateOfCommand(command);
    const step = command.type === 'driver.reply' ? `${command.type}:${command.action}` : command.type;
    for (let attempt = 1; attempt <= this.config.conflictRetries; attempt++) {
      const earlier = this.state.committed(commandId);
      if (earlier) return earlier.by === actorKey(envelope.actor) ? accepted(commandId, earlier) : reused(commandId);
      const meta: Meta = { commandId, at: this.clock.now(), actor: envelope.actor };
      const deciding = performance.now();
      const decision = this.decide(command, meta, lookups);
      if (!decision.ok) {
        this.metrics.decisionSeconds.observe({ aggregate: kind }, (performance.now() - deciding) / 1000);
        return { status: 'rejected', commandId, ...decision.rejection };
      }
      const joined = this.decideJoined(decision.fact.effects, meta);
      this.metrics.decisionSeconds.observe({ aggregate: kind }, (performance.now() - deciding) / 1000);
      if (!joined.ok) return { status: 'rejected', commandId, ...joined.rejection };
      const parts: Part[] = [partOf(decision, id, commandId), ...joined.parts];
      const entries = parts.map((p) => this.commitOf(p, envelope, meta.at, p.commandId === commandId ? envelope.causationId : commandId));
      const mine = { kind, id, fact: decision.fact.type, state: decision.fact.state };
      try {
        failpoint(`before-commit:${step}`);
        const [only] = entries;
        const committing = performance.now();
        if (only && entries.length === 1) {
          const r = await this.store.append(kind, id, only.commit, only.expectedSeq);
          this.metrics.commitSeconds.observe({ aggregate: kind }, (performance.now() - committing) / 1000);
          failpoint(`after-commit:${step}`);
          if (r.duplicate) {
            // The log holds this command already (a redelivery after a crash): answer with that commit.
            await this.waitFor(r.seq);
            const first = this.state.committed(commandId);
            if (first && first.by !== actorKey(envelope.actor)) return reused(commandId);
            return accepted(commandId, first ?? { ...mine, seq: r.seq });
          }
          // Read-your-writes: the aggregate has its commit at once, but the progress mark moves only with the tail.
          this.state.apply(r.seq, only.commit, r.hash);
          return accepted(commandId, { ...mine, seq: r.seq });
        }
        const appended = await this.store.appendAtomically(entries);
        this.metrics.commitSeconds.observe({ aggregate: kind }, (performance.now() - committing) / 1000);
        failpoint(`after-commit:${step}`);
        for (const [i, r] of appended.entries()) {
          const e = entries[i];
          if (e) this.state.apply(r.seq, e.commit, r.hash);
        }
        return accepted(commandId, { ...mine, seq: appended[0]?.seq ?? 0 });
      } catch (e) {
        if (!isConcurrencyError(e)) throw e;
        this.metrics.appendConflicts.inc({ aggregate: kind });
        // Another writer got there first: read its commits and decide again.
        for (const p of parts) {
          const last = await this.store.lastSeqOf(p.kind, p.id);
          this.log.debug({ kind: p.kind, id: p.id, last, attempt }, 'append conflict, catching up');
          await this.catchUp(p.kind, p.id, last);
          // A datastore's commit is joined to its images' (a creation's grant): the space those images hold is
          // counted from their own commits, which the tail brings; they precede it in the batch.
          if (p.kind === 'datastore') await this.waitFor(last);
        }
        // Jitter keeps two managers from colliding on the same aggregate in lockstep.
        await sleep(Math.random() * 5 * attempt);
      }
    }
    // Not a decision: the command is left for redelivery rather than answered with a transient failure.
    throw new ConflictsExhaustedError(`${kind}.${id}`, this.config.conflictRetries);
  }

  /**
   * The other aggregates' part of an operation (joined effects: a clone's
   * origin, a creation's reservation), decided by their machines on their
   * resident state, as the actor of the command; one refusal refuses all.
   */
  private decideJoined(effects: readonly Effect[], meta: Meta, pending?: PendingCreations): { ok: true; parts: Part[] } | { ok: false; rejection: Rejection } {
    const parts: Part[] = [];
    for (const e of effects.filter(isJoined)) {
      const command = joinedCommand(e);
      const d = this.decide(command, meta, NO_LOOKUPS, pending);
      if (!d.ok) return d;
      const { kind, id } = aggregateOfCommand(command);
      parts.push(partOf(d, id, `${INTERNAL_ID_PREFIX}with-${meta.commandId}-${kind}-${id}`));
    }
    return { ok: true, parts };
  }

  /** One aggregate's commit of a decision, chained to its last commit. */
  private commitOf(p: Part, envelope: CommandMessage['envelope'], at: number, causationId: string | null): AtomicEntry & { readonly expectedSeq: number } {
    const last = this.state.last(p.kind, p.id);
    const base = { v: 1 as const, id: p.id, commandId: p.commandId, correlationId: envelope.correlationId, causationId, actor: envelope.actor, at, prev: last.hash };
    const commit: Commit = p.kind === 'image' ? { ...base, aggregate: 'image', facts: [p.fact] } : { ...base, aggregate: 'datastore', facts: [p.fact] };
    return { kind: p.kind, id: p.id, commit, expectedSeq: last.seq };
  }

  /**
   * What the machines decide for a command on the resident state, committing
   * nothing: audits replay the log with `fold` and check each decision.
   */
  decideOnly(command: ImageCommand | DatastoreCommand, meta: Meta, lookups: Partial<Lookups> = {}): Decision {
    return this.decide(command, meta, { ...NO_LOOKUPS, ...lookups });
  }

  /** Folds one commit of the log into the resident state, as the follower does. */
  fold(c: LoggedCommit): void {
    this.onLogged(c);
  }

  private decide(command: ImageCommand | DatastoreCommand, meta: Meta, lookups: Lookups = NO_LOOKUPS, pending?: PendingCreations): Decision {
    if (isImageCommand(command)) {
      // Deciding on what the indexes keep of another partition's image would decide on an empty one.
      if (this.state.isForeign(command.imageId)) throw new NotResidentError(command.imageId);
      const agg = this.state.residentImage(command.imageId)?.agg ?? IMAGE.initial(command.imageId);
      const d = IMAGE.decide(agg, { ...command, meta, ctx: { ...this.contexts.image(command, meta, pending), ...lookups } });
      return d.ok ? { ok: true, kind: 'image', fact: d.fact } : d;
    }
    const agg = this.state.residentDatastore(command.datastoreId)?.agg ?? DATASTORE.initial(command.datastoreId);
    const d = DATASTORE.decide(agg, { ...command, meta, ctx: this.contexts.datastore(command, pending) });
    return d.ok ? { ok: true, kind: 'datastore', fact: d.fact } : d;
  }

  /**
   * A message on an aggregate's subject that is no commit: counted as a step
   * of its sequence (ResidentState.stepOver), never applied. The reactors
   * park it, once each, for an operator to see (`imgr parked`).
   */
  private stepOver(seq: number, subject: string, reason: string): void {
    this.log.error({ seq, subject, reason }, 'an unreadable message in the log: counted as a step of its aggregate, nothing applied');
    const target = aggregateOfSubject(subject);
    if (target) this.state.stepOver(target.kind, target.id, seq);
  }

  /**
   * The ordered tail's commits. Only they move the progress mark, so
   * `appliedSeq` is always a contiguous prefix of the log: waiting for it
   * means every earlier commit, another manager's included, is in. Own
   * commits and catch-ups fold into the state without moving it.
   */
  private onLogged(c: LoggedCommit): void {
    const target = aggregateOfSubject(c.subject);
    // This manager's own commits (and those a catch-up read) are folded already: not even parsed again.
    const folded = target !== undefined && this.state.lastSeq(target.kind, target.id) >= c.seq;
    if (!folded) {
      if ('unreadable' in c.commit) this.stepOver(c.seq, c.subject, c.commit.unreadable);
      else this.state.apply(c.seq, c.commit, c.hash);
    }
    this.progress.advance(c.seq);
    for (const listener of this.listeners) {
      try {
        listener(c);
      } catch (e) {
        this.log.error({ err: e, seq: c.seq }, 'a commit listener failed');
      }
    }
  }
}

/** Foreign images a gained partition loads at once (a KV get and direct gets each). */
const ADOPTIONS_IN_FLIGHT = 32;

/** The images a command's decision reads: its own and the origin its context names. */
function imagesRead(c: ImageCommand | DatastoreCommand): number[] {
  const own = isImageCommand(c) ? [c.imageId] : [];
  return [...own, ...contextAggregates(c).filter(([k]) => k === 'image').map(([, i]) => i)];
}

/** Images turned into text per call of `compact`: at a few µs each, a few ms every second at most. */
const COMPACT_PER_CALL = 2_000;

/** Refusals decided on a datastore's counts of its images (members, the space creations hold). */
const COUNTED_REFUSALS: ReadonlySet<string> = new Set(['DS_ERR_NO_SPACE', 'DS_ERR_NOT_EMPTY']);

/** What the machines decided for a command, before any commit. */
export type Decision = { readonly ok: true; readonly kind: 'image'; readonly fact: ImageFact } | { readonly ok: true; readonly kind: 'datastore'; readonly fact: DatastoreFact } | { readonly ok: false; readonly rejection: Rejection };

/** One aggregate's share of a decision: its fact and the id its commit carries. */
type Part = { readonly id: number; readonly commandId: string } & (
  | { readonly kind: 'image'; readonly fact: ImageFact }
  | { readonly kind: 'datastore'; readonly fact: DatastoreFact }
);
const partOf = (d: Extract<Decision, { ok: true }>, id: number, commandId: string): Part =>
  d.kind === 'image' ? { kind: 'image', fact: d.fact, id, commandId } : { kind: 'datastore', fact: d.fact, id, commandId };

/**
 * Another actor's command committed under this id: answering with its commit
 * would tell one service what another did, so the id is refused as taken.
 */
const reused = (commandId: string): Outcome => ({ status: 'rejected', commandId, ...rejection('CMD_ERR_ID_REUSED', { id: commandId }) });

const accepted = (commandId: string, c: Omit<Committed, 'by'>): Outcome => ({ status: 'accepted', commandId, aggregate: c.kind, id: c.id, fact: c.fact, state: c.state, seq: c.seq });

/** A decision reached an image that was given up meanwhile; the intake redelivers the command (no answer is given). */
export class NotResidentError extends Error {
  override readonly name = 'NotResidentError';
  constructor(imageId: number) {
    super(`image ${imageId} is another partition's and was not loaded`);
  }
}

/** An aggregate kept changing under a command; the intake redelivers it later. */
export class ConflictsExhaustedError extends ImgrError {
  override readonly name = 'ConflictsExhaustedError';
  constructor(aggregate: string, tries: number) {
    super('IMGR_CONFLICTS_EXHAUSTED', `${aggregate} kept changing under the command; ${tries} tries`);
  }
}

export type { StatProbe, IdSource } from './lookups.js';
