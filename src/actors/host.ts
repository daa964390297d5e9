import type { KV } from '@nats-io/kv';
import { z } from 'zod';
import type { Logger } from '../platform/logger.js';
import type { ManagerConfig } from '../platform/config.js';
import type { Clock } from '../platform/clock.js';
import { INTERNAL_ID_PREFIX, aggregateOfCommand, isImageCommand, type AggregateKind, type Commit, type CommandMessage, type DriverRequest, type Outcome } from '../messages/wire.js';
import { emptyImage } from '../machines/image/record.js';
import type { ImageCommand } from '../messages/image-commands.js';
import type { DatastoreCommand, DatastoreFact } from '../messages/datastore.js';
import type { ImageFact } from '../messages/image-facts.js';
import { isJoined, type Effect } from '../messages/effects.js';
import type { Rejection } from '../messages/errors.js';
import { joinedCommand } from '../machines/effect-commands.js';
import { restoredDisks } from '../machines/image/jobs.js';
import { decideImage, evolveImage, initialImage, viewOf, aggregateOf, type ImageAggregate } from '../machines/image/decide.js';
import { decideDatastore, evolveDatastore, initialDatastore, datastoreInfo, type DatastoreAggregate } from '../machines/datastore/decide.js';
import { decisionContext, type DecisionContext, type Meta } from '../machines/image/events.js';
import type { DatastoreInfo } from '../messages/datastore-info.js';
import { StoredImageViewSchema, type ImageView } from '../messages/image-record.js';
import { DatastoreViewSchema, type DatastoreView } from '../messages/datastore.js';
import type { EventStore} from '../store/event-store.js';
import { type AtomicEntry, type LoggedCommit, type Tail } from '../store/event-store.js';
import { isConcurrencyError } from '../store/errors.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { Mailboxes } from './mailbox.js';
import { LogProgress } from '../store/progress.js';
import { safeJson } from '../platform/json.js';
import { failpoint } from '../platform/failpoint.js';
import { ImgrError } from '../messages/failures.js';
import { putIfNewer, readBucket } from '../store/kv.js';
import { RecentCommits, type ResidentDatastore, type ResidentImage } from './resident.js';

const snapshotBase = { seq: z.number().int(), hash: z.string() };
const SnapshotSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('image'), ...snapshotBase, view: StoredImageViewSchema }),
  z.object({ kind: z.literal('datastore'), ...snapshotBase, view: DatastoreViewSchema }),
]);
const CHECKPOINT_KEY = 'checkpoint';

interface Committed {
  readonly kind: 'image' | 'datastore';
  readonly id: number;
  readonly seq: number;
  readonly fact: string;
  readonly state: string;
}

/**
 * Holds every aggregate as a compact resident snapshot, decides commands
 * with the pure machines (one at a time per aggregate), appends one commit per
 * command, and keeps itself current by following the log. Boots from the KV
 * checkpoint plus the log tail, never from per-aggregate history reads.
 */
export class AggregateHost {
  private readonly images = new Map<number, ResidentImage>();
  private readonly datastores = new Map<number, ResidentDatastore>();
  private readonly imageNames = new Map<string, number>();
  private readonly datastoreNames = new Map<string, number>();
  private readonly mailboxes = new Mailboxes();
  private readonly recent = new RecentCommits<Committed>(100_000);
  private readonly dirty = new Set<string>();
  /** KV revisions this host last wrote, for compare-and-set snapshot writes. */
  private readonly revisions = new Map<string, number>();
  private readonly progress = new LogProgress();
  private tail: Tail | undefined;

  constructor(
    private readonly store: EventStore,
    private readonly snapshots: KV,
    private readonly config: ManagerConfig,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly stat: StatProbe = noStat,
    private readonly ids: IdSource = noIds,
  ) {}

  /** Loads the last checkpoint, then follows the log from there; resolves once caught up. */
  async boot(): Promise<void> {
    const checkpoint = await this.loadSnapshots();
    const target = await this.store.lastSeq();
    this.progress.reset(checkpoint);
    this.tail = await this.store.tail(checkpoint + 1, (c) => this.onLogged(c), undefined, { name: 'aggregate host', log: this.log });
    await this.waitFor(target);
    this.log.info({ checkpoint, caughtUpTo: target, images: this.images.size, datastores: this.datastores.size }, 'aggregate host booted');
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

  image(id: number): ImageView | undefined {
    const r = this.images.get(id);
    return r ? viewOf(r.agg) : undefined;
  }

  datastore(id: number): DatastoreView | undefined {
    const r = this.datastores.get(id);
    return r ? { ...r.agg.record, state: r.agg.state } : undefined;
  }

  allImages(): IterableIterator<ResidentImage> {
    return this.images.values();
  }

  allDatastores(): IterableIterator<ResidentDatastore> {
    return this.datastores.values();
  }

  /** Resolves once the resident state reflects the log up to `seq`. */
  waitFor(seq: number): Promise<void> {
    return this.progress.waitFor(seq);
  }

  /**
   * Decides and commits one command; commands for one aggregate run in
   * arrival order. A refusal is final only once it is known to rest on the
   * aggregate's last commit: when the log holds a later commit of the
   * aggregate than the resident state (the follower lags another writer),
   * the host reads those commits and decides again; when that commit is this
   * command's (its manager died before answering), the command is accepted.
   */
  execute(msg: CommandMessage): Promise<Outcome> {
    const { kind, id } = aggregateOfCommand(msg.command);
    return this.mailboxes.run(`${kind}.${id}`, async () => {
      for (let attempt = 1; ; attempt++) {
        const outcome = await this.decideAndCommit(msg);
        if (outcome.status === 'accepted') return outcome;
        const last = await this.store.lastCommitOf(kind, id);
        const fact = last?.commit.facts.at(-1);
        if (last && fact && last.commit.commandId === msg.envelope.commandId) {
          return { status: 'accepted', commandId: outcome.commandId, aggregate: kind, id, fact: fact.type, state: fact.state, seq: last.seq };
        }
        if (attempt >= this.config.conflictRetries) return outcome;
        // The decision read the aggregate and those its context names (origin, datastore): any of them may lag.
        const lagging: [AggregateKind, number, number][] = [];
        for (const [k, i] of [[kind, id] as const, ...contextAggregates(msg.command)]) {
          const lastSeq = k === kind && i === id ? (last?.seq ?? 0) : await this.store.lastSeqOf(k, i);
          if (lastSeq > this.residentSeq(k, i)) lagging.push([k, i, lastSeq]);
        }
        if (lagging.length === 0) return outcome;
        this.log.info({ kind, id, lagging: lagging.map(([k, i, s]) => `${k}.${i}@${s}`) }, 'refusal decided on a lagging state; reading the aggregates and deciding again');
        for (const [k, i, upTo] of lagging) await this.catchUp(k, i, upTo);
      }
    });
  }

  private residentSeq(kind: AggregateKind, id: number): number {
    return (kind === 'image' ? this.images.get(id) : this.datastores.get(id))?.seq ?? 0;
  }

  /**
   * Brings one aggregate up to `upTo` from its own subject (direct gets of
   * the commits the resident state lacks), independent of the follower.
   */
  private async catchUp(kind: AggregateKind, id: number, upTo: number): Promise<void> {
    for (let from = this.residentSeq(kind, id) + 1; from <= upTo; ) {
      const c = await this.store.nextCommitOf(kind, id, from);
      if (!c) return;
      if (!('unreadable' in c.commit)) this.apply(c.seq, c.commit, c.hash, false);
      from = c.seq + 1;
    }
  }

  private async decideAndCommit(msg: CommandMessage): Promise<Outcome> {
    const { envelope, command } = msg;
    const commandId = envelope.commandId;
    const { kind, id } = aggregateOfCommand(command);
    let lookedUp: Lookups = NO_LOOKUPS;
    for (let attempt = 1; attempt <= this.config.conflictRetries; attempt++) {
      const earlier = this.recent.get(commandId);
      if (earlier) return { status: 'accepted', commandId, aggregate: earlier.kind, id: earlier.id, fact: earlier.fact, state: earlier.state, seq: earlier.seq };
      const meta: Meta = { commandId, at: this.clock.now(), actor: envelope.actor };
      // What the decision needs from outside (a STAT, fresh ids) is asked once per command, not per conflict.
      if (attempt === 1) lookedUp = { ...(await this.sizeByStat(command, meta)), newImageIds: await this.restoredImageIds(command) };
      const decision = this.decide(command, meta, lookedUp);
      if (!decision.ok) return { status: 'rejected', commandId, ...decision.rejection };
      const joined = this.decideJoined(decision.fact.effects, meta);
      if (!joined.ok) return { status: 'rejected', commandId, ...joined.rejection };
      const parts: Part[] = [partOf(decision, id, commandId), ...joined.parts];
      const entries = parts.map((p) => this.commitOf(p, envelope, meta.at, p.commandId === commandId ? envelope.causationId : commandId));
      try {
        const step = command.type === 'driver.reply' ? `${command.type}:${command.action}` : command.type;
        failpoint(`before-commit:${step}`);
        if (entries.length === 1 && entries[0]) {
          const e = entries[0];
          const r = await this.store.append(kind, id, e.commit, e.expectedSeq);
          failpoint(`after-commit:${step}`);
          if (r.duplicate) {
            // The log holds this command already (a redelivery after a crash): answer with that commit.
            await this.waitFor(r.seq);
            const done = this.recent.get(commandId);
            if (done) return { status: 'accepted', commandId, aggregate: done.kind, id: done.id, fact: done.fact, state: done.state, seq: done.seq };
            return { status: 'accepted', commandId, aggregate: kind, id, fact: decision.fact.type, state: decision.fact.state, seq: r.seq };
          }
          // Read-your-writes: the aggregate has its commit at once, but the progress mark moves only with the tail.
          this.apply(r.seq, e.commit, r.hash, false);
          return { status: 'accepted', commandId, aggregate: kind, id, fact: decision.fact.type, state: decision.fact.state, seq: r.seq };
        }
        const appended = await this.store.appendAtomically(entries);
        failpoint(`after-commit:${step}`);
        for (const [i, r] of appended.entries()) {
          const e = entries[i];
          if (e) this.apply(r.seq, e.commit, r.hash, false);
        }
        const seq = appended[0]?.seq ?? 0;
        return { status: 'accepted', commandId, aggregate: kind, id, fact: decision.fact.type, state: decision.fact.state, seq };
      } catch (e) {
        if (!isConcurrencyError(e)) throw e;
        // Another writer got there first: read its commits and decide again.
        for (const p of parts) {
          const last = await this.store.lastSeqOf(p.kind, p.id);
          this.log.debug({ kind: p.kind, id: p.id, last, attempt }, 'append conflict, catching up');
          await this.catchUp(p.kind, p.id, last);
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
  private decideJoined(effects: readonly Effect[], meta: Meta): { ok: true; parts: Part[] } | { ok: false; rejection: Rejection } {
    const parts: Part[] = [];
    for (const e of effects.filter(isJoined)) {
      const command = joinedCommand(e);
      const d = this.decide(command, meta);
      if (!d.ok) return d;
      const { kind, id } = aggregateOfCommand(command);
      parts.push(partOf(d, id, `${INTERNAL_ID_PREFIX}with-${meta.commandId}-${kind}-${id}`));
    }
    return { ok: true, parts };
  }

  /** One aggregate's commit of a decision, chained to its last commit. */
  private commitOf(p: Part, envelope: CommandMessage['envelope'], at: number, causationId: string | null): AtomicEntry {
    const resident = p.kind === 'image' ? this.images.get(p.id) : this.datastores.get(p.id);
    const base = { v: 1 as const, id: p.id, commandId: p.commandId, correlationId: envelope.correlationId, causationId, actor: envelope.actor, at, prev: resident?.hash ?? '' };
    const commit: Commit = p.kind === 'image' ? { ...base, aggregate: 'image', facts: [p.fact] } : { ...base, aggregate: 'datastore', facts: [p.fact] };
    return { kind: p.kind, id: p.id, commit, expectedSeq: resident?.seq ?? 0 };
  }

  /**
   * W12: a registration from a PATH without SIZE learns the size from the
   * datastore driver's STAT (run by a driver host) before the machine decides.
   */
  private async sizeByStat(command: ImageCommand | DatastoreCommand, meta: Meta): Promise<Pick<Lookups, 'statSizeMb' | 'statFailure'>> {
    if (command.type !== 'image.allocate' || this.images.has(command.imageId)) return NO_STAT;
    const tpl = Object.fromEntries(Object.entries(command.template).map(([k, v]) => [k.trim().toUpperCase(), v.trim()]));
    const path = tpl['PATH'] ?? '';
    if (path === '' || (tpl['SOURCE'] ?? '') !== '' || /^\d/.test(tpl['SIZE'] ?? '')) return NO_STAT;
    const ds = this.datastore(command.datastoreId);
    if (!ds || ds.state === 'REMOVED') return NO_STAT;
    const request: DriverRequest = {
      requestId: `stat-${meta.commandId}`,
      action: 'STAT',
      imageId: command.imageId,
      datastoreId: ds.id,
      deadline: meta.at + this.config.timeouts.STAT * 1000,
      extra: {},
      image: { ...emptyImage(command.imageId), path, size: 0, template: tpl, state: 'INIT' },
      datastore: ds,
      seq: this.progress.applied,
    };
    const r = await this.stat(request);
    return r.result === 'SUCCESS' ? { statSizeMb: Number(r.info), statFailure: null } : { statSizeMb: null, statFailure: r.info };
  }

  /**
   * §7.13.1: the images a RESTORE reply creates get their ids here, once, and
   * the fact records them: a redelivered reply is answered from that commit,
   * so it never creates twice.
   */
  private async restoredImageIds(command: ImageCommand | DatastoreCommand): Promise<number[]> {
    if (command.type !== 'driver.reply' || command.action !== 'RESTORE' || command.result !== 'SUCCESS') return [];
    const waiting = this.images.get(command.imageId)?.agg.record.jobs.some((j) => j.requestId === command.requestId) ?? false;
    const disks = restoredDisks(command.info);
    return waiting && disks !== null ? this.ids('image', disks.length) : [];
  }

  /**
   * What the machines decide for a command on the resident state, committing
   * nothing: audits replay the log with `fold` and check each decision.
   */
  decideOnly(command: ImageCommand | DatastoreCommand, meta: Meta, lookups: Partial<Lookups> = {}): ReturnType<AggregateHost['decide']> {
    return this.decide(command, meta, { ...NO_LOOKUPS, ...lookups });
  }

  /** Folds one commit of the log into the resident state, as the follower does. */
  fold(c: LoggedCommit): void {
    this.onLogged(c);
  }

  private decide(command: ImageCommand | DatastoreCommand, meta: Meta, sized: Lookups = NO_LOOKUPS) {
    if (isImageCommand(command)) {
      const agg = this.images.get(command.imageId)?.agg ?? initialImage(command.imageId);
      const d = decideImage(agg, { ...command, meta, ctx: { ...this.imageContext(command, meta), ...sized } });
      return d.ok ? { ok: true as const, kind: 'image' as const, fact: d.fact } : d;
    }
    const agg = this.datastores.get(command.datastoreId)?.agg ?? initialDatastore(command.datastoreId);
    const name = command.type === 'datastore.create' ? nameIn(command.template) : '';
    const ctx = {
      nameTakenBy: this.datastoreNames.get(name) ?? null,
      drivers: this.config.drivers,
      capacityCheck: this.config.capacityCheck,
      ...(command.type === 'datastore.swept' ? { sweep: this.sweepContext(command.datastoreId) } : {}),
    };
    const d = decideDatastore(agg, { ...command, meta, ctx });
    return d.ok ? { ok: true as const, kind: 'datastore' as const, fact: d.fact } : d;
  }

  /** What a sweep compares the files with: a scan of the pool, once per monitor period, never per command. */
  private sweepContext(datastoreId: number): { named: ReadonlySet<string>; graceSec: number } {
    const named = new Set<string>();
    for (const { agg } of this.images.values()) {
      if (agg.state === 'REMOVED' || agg.record.datastore.id !== datastoreId) continue;
      for (const p of [agg.record.source, agg.record.path, ...agg.record.increments.map((i) => i.source)]) if (p !== '') named.add(p);
    }
    const t = this.config.timeouts;
    const graceMs = this.config.orphanGraceMs ?? Math.max(t.CP, t.CLONE, t.MKFS) * 1000 + 60_000;
    return { named, graceSec: Math.ceil(graceMs / 1000) };
  }

  /** What an image decision needs from other aggregates (DecisionContext). */
  private imageContext(c: ImageCommand, meta: Meta): DecisionContext {
    const base = { defaults: this.config.defaults, timeouts: this.config.timeouts };
    const own = this.images.get(c.imageId)?.agg.record;
    const taken = (name: string) => this.imageNames.get(nameKey(meta.actor.uid, name)) ?? null;
    switch (c.type) {
      case 'image.allocate':
        return decisionContext({ ...base, datastore: this.dsInfo(c.datastoreId), nameTakenBy: taken(nameIn(c.template)) });
      case 'image.clone': {
        const origin = this.image(c.originId) ?? null;
        return decisionContext({
          ...base,
          datastore: this.dsInfo(c.datastoreId),
          origin,
          originDatastore: origin ? this.dsInfo(origin.datastore.id) : null,
          nameTakenBy: taken(c.name),
        });
      }
      case 'image.allocateSaveAs': {
        const origin = this.images.get(c.originImageId)?.agg.record;
        return decisionContext({ ...base, datastore: origin ? this.dsInfo(origin.datastore.id) : null, nameTakenBy: taken(c.name) });
      }
      case 'image.allocateBackup':
        return decisionContext({ ...base, datastore: this.dsInfo(c.datastoreId) });
      case 'image.restore':
        return decisionContext({ ...base, datastore: this.dsInfo(c.datastoreId) });
      case 'image.backup':
        return decisionContext({ ...base, datastore: this.dsInfo(c.backupDatastoreId) });
      default:
        return decisionContext({ ...base, datastore: own ? this.dsInfo(own.datastore.id) : null });
    }
  }

  private dsInfo(id: number): DatastoreInfo | null {
    const r = this.datastores.get(id);
    return r && (r.agg.state === 'READY' || r.agg.state === 'DISABLED') ? datastoreInfo(r.agg.record, this.config.capacityCheck) : null;
  }

  private onLogged(c: LoggedCommit): void {
    if ('unreadable' in c.commit) {
      this.log.error({ seq: c.seq, subject: c.subject, reason: c.commit.unreadable }, 'skipping an unreadable commit');
      this.progress.advance(c.seq);
      return;
    }
    this.apply(c.seq, c.commit, c.hash);
  }

  /**
   * Folds a commit into the resident state; a commit already applied is
   * skipped. Only the ordered tail (`advance`) moves the progress mark, so
   * `appliedSeq` is always a contiguous prefix of the log: waiting for it
   * means every earlier commit, another manager's included, is in.
   */
  private apply(seq: number, commit: Commit, hash: string, advance = true): void {
    if (commit.aggregate === 'image') {
      const r = this.images.get(commit.id) ?? { agg: initialImage(commit.id), seq: 0, hash: '' };
      if (seq > r.seq) {
        const before = r.agg.record;
        const view = commit.facts.reduce<ImageView>((v, f) => evolveImage(v, f), viewOf(r.agg));
        r.agg = aggregateOf(view);
        r.seq = seq;
        r.hash = hash;
        this.images.set(commit.id, r);
        this.indexImageName(before.uid, before.name, r.agg);
        this.dirty.add(`image.${commit.id}`);
        const last = commit.facts[commit.facts.length - 1];
        if (last) this.recent.set(commit.commandId, { kind: 'image', id: commit.id, seq, fact: last.type, state: last.state });
      }
    } else {
      const r = this.datastores.get(commit.id) ?? { agg: initialDatastore(commit.id), seq: 0, hash: '' };
      if (seq > r.seq) {
        const beforeName = r.agg.record.name;
        const view = commit.facts.reduce((v, f) => evolveDatastore(v, f), { ...r.agg.record, state: r.agg.state });
        const { state, ...record } = view;
        r.agg = { state, record };
        r.seq = seq;
        r.hash = hash;
        this.datastores.set(commit.id, r);
        if (this.datastoreNames.get(beforeName) === commit.id) this.datastoreNames.delete(beforeName);
        if (state !== 'REMOVED' && record.name !== '') this.datastoreNames.set(record.name, commit.id);
        this.dirty.add(`datastore.${commit.id}`);
        const last = commit.facts[commit.facts.length - 1];
        if (last) this.recent.set(commit.commandId, { kind: 'datastore', id: commit.id, seq, fact: last.type, state: last.state });
      }
    }
    if (advance) this.progress.advance(seq);
  }

  private indexImageName(uid: number, name: string, agg: ImageAggregate): void {
    const oldKey = nameKey(uid, name);
    if (this.imageNames.get(oldKey) === agg.record.id) this.imageNames.delete(oldKey);
    if (agg.state !== 'REMOVED' && agg.state !== 'INIT') this.imageNames.set(nameKey(agg.record.uid, agg.record.name), agg.record.id);
  }

  /**
   * Writes every aggregate changed since the last checkpoint to KV, then the
   * checkpoint sequence: a restart replays only the log after it. Managers
   * share the bucket, so no write replaces a snapshot of a later sequence and
   * the checkpoint only grows: then every aggregate's snapshot includes its
   * commits up to the checkpoint whoever wrote it, and any manager may boot
   * from it (the checkpoint a lagging manager wrote used to hide the commits it
   * had not seen behind another's newer checkpoint).
   */
  async checkpoint(): Promise<number> {
    const upTo = this.progress.applied;
    const keys = [...this.dirty];
    this.dirty.clear();
    try {
      await Promise.all(
        keys.map(async (key) => {
          const snap = this.snapshotOf(key);
          if (snap) await putIfNewer(this.snapshots, key, JSON.stringify(snap), snap.seq, snapshotSeq, this.revisions);
        }),
      );
      await putIfNewer(this.snapshots, CHECKPOINT_KEY, String(upTo), upTo, Number, this.revisions);
    } catch (e) {
      for (const k of keys) this.dirty.add(k);
      throw e;
    }
    return upTo;
  }

  /** The KV form of one resident aggregate, keyed `image.<id>` or `datastore.<id>`. */
  private snapshotOf(key: string): z.infer<typeof SnapshotSchema> | undefined {
    const [kind, idText] = key.split('.');
    const id = Number(idText);
    if (kind === 'image') {
      const r = this.images.get(id);
      return r && { kind: 'image', seq: r.seq, hash: r.hash, view: viewOf(r.agg) };
    }
    const r = this.datastores.get(id);
    return r && { kind: 'datastore', seq: r.seq, hash: r.hash, view: { ...r.agg.record, state: r.agg.state } };
  }

  private async loadSnapshots(): Promise<number> {
    let checkpoint = 0;
    await readBucket(this.snapshots, (key, text) => {
      if (key === CHECKPOINT_KEY) checkpoint = Number(text);
      else this.loadSnapshot(key, text);
    });
    return Number.isFinite(checkpoint) ? checkpoint : 0;
  }

  private loadSnapshot(key: string, text: string): void {
    const s = SnapshotSchema.safeParse(safeJson(text));
    if (!s.success) {
      // An unreadable snapshot only costs a longer replay: drop it and the checkpoint with it.
      this.log.warn({ key }, 'ignoring an unreadable snapshot');
      return;
    }
    if (s.data.kind === 'image') {
      const agg = aggregateOf(s.data.view);
      this.images.set(agg.record.id, { agg, seq: s.data.seq, hash: s.data.hash });
      this.indexImageName(agg.record.uid, agg.record.name, agg);
    } else {
      const { state, ...record } = s.data.view;
      this.datastores.set(record.id, { agg: { state, record }, seq: s.data.seq, hash: s.data.hash });
      if (state !== 'REMOVED') this.datastoreNames.set(record.name, record.id);
    }
  }
}

/** One aggregate's share of a decision: its fact and the id its commit carries. */
type Part = { readonly id: number; readonly commandId: string } & (
  | { readonly kind: 'image'; readonly fact: ImageFact }
  | { readonly kind: 'datastore'; readonly fact: DatastoreFact }
);
const partOf = (d: { kind: 'image'; fact: ImageFact } | { kind: 'datastore'; fact: DatastoreFact }, id: number, commandId: string): Part =>
  d.kind === 'image' ? { kind: 'image', fact: d.fact, id, commandId } : { kind: 'datastore', fact: d.fact, id, commandId };

/** Runs a STAT request somewhere a driver runs and answers with the reply. */
export type StatProbe = (req: DriverRequest) => Promise<{ result: 'SUCCESS' | 'FAILURE'; info: string }>;
const noStat: StatProbe = () => Promise.resolve({ result: 'FAILURE', info: 'no driver host can run STAT' });
/** Takes `count` fresh ids of a kind from the manager's counter. */
export type IdSource = (kind: AggregateKind, count: number) => Promise<number[]>;
const noIds: IdSource = () => Promise.reject(new Error('this host hands out no ids'));
/** Outside knowledge a decision gets in its context (never read inside the machines). */
type Lookups = Pick<DecisionContext, 'statSizeMb' | 'statFailure' | 'newImageIds'>;
const NO_STAT = { statSizeMb: null, statFailure: null };
const NO_LOOKUPS: Lookups = { ...NO_STAT, newImageIds: [] };

/** An aggregate kept changing under a command; the intake redelivers it later. */
export class ConflictsExhaustedError extends ImgrError {
  override readonly name = 'ConflictsExhaustedError';
  constructor(aggregate: string, tries: number) {
    super('IMGR_CONFLICTS_EXHAUSTED', `${aggregate} kept changing under the command; ${tries} tries`);
  }
}

/** The other aggregates an image decision reads through its context (host.imageContext). */
function contextAggregates(c: ImageCommand | DatastoreCommand): (readonly [AggregateKind, number])[] {
  switch (c.type) {
    case 'image.allocate':
    case 'image.allocateBackup':
    case 'image.restore':
      return [['datastore', c.datastoreId]];
    case 'image.clone':
      return [['image', c.originId], ['datastore', c.datastoreId]];
    case 'image.allocateSaveAs':
      return [['image', c.originImageId]];
    case 'image.backup':
      return [['datastore', c.backupDatastoreId]];
    default:
      return [];
  }
}

const snapshotSeq = (text: string): number => {
  const s = SnapshotSchema.safeParse(safeJson(text));
  return s.success ? s.data.seq : 0;
};

const nameKey = (uid: number, name: string): string => `${uid}\u0000${name}`;
const nameIn = (template: Readonly<Record<string, string>>): string =>
  Object.entries(template).find(([k]) => k.trim().toUpperCase() === 'NAME')?.[1] ?? '';

export type { ImageAggregate, DatastoreAggregate };
