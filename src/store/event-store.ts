import { createHash, randomUUID } from 'node:crypto';
import { z } from 'zod';
import { DeliverPolicy, jetstream, type Consumer, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { headers, type MsgHdrs, type NatsConnection } from '@nats-io/transport-node';
import { COMMIT_SHAPE_HEADER, EFFECTS_HEADER } from '../messages/names.js';
import { COMMIT_SHAPE, parseCommit, subjects, type AggregateKind, type Commit } from '../messages/wire.js';
import { ConcurrencyError, isWrongLastSequence, isWrongLastSequenceCode } from './errors.js';
import { STREAMS } from './provision.js';
import { follow, type Follower } from './follow.js';
import { silentLogger, type Logger } from '../platform/logger.js';

export interface Appended {
  readonly seq: number;
  /** True when the log already held this command's commit (msgID de-duplication). */
  readonly duplicate: boolean;
}

const DECODER = new TextDecoder();

/**
 * A log message read. It is parsed and hashed only when asked for: a
 * manager's own commits come back through its tail already folded, and the
 * projections never read the hash.
 */
export function loggedCommit(seq: number, subject: string, data: Uint8Array, h: MsgHdrs | undefined): LoggedCommit {
  let hash: string | undefined;
  let commit: LoggedCommit['commit'] | undefined;
  const effects = h?.get(EFFECTS_HEADER);
  return {
    seq,
    subject,
    effects: effects === undefined || effects === '' ? undefined : Number(effects),
    get commit(): LoggedCommit['commit'] {
      return (commit ??= parseCommit(DECODER.decode(data), h?.get(COMMIT_SHAPE_HEADER)));
    },
    get hash(): string {
      return (hash ??= commitHash(data));
    },
  };
}

/** The aggregate a log subject (`imgr.evt.<kind>.<id>`) belongs to, if it is one. */
export function aggregateOfSubject(subject: string): { kind: AggregateKind; id: number } | undefined {
  const [, , kind, idText, extra] = subject.split('.');
  if (extra !== undefined || (kind !== 'image' && kind !== 'datastore')) return undefined;
  const id = Number(idText);
  return Number.isSafeInteger(id) && id >= 0 ? { kind, id } : undefined;
}

export interface LoggedCommit {
  readonly seq: number;
  readonly subject: string;
  /** The parsed commit, or why it could not be read (it is then skipped, never fatal). */
  readonly commit: Commit | { readonly unreadable: string };
  /** SHA-256 of the message as stored: the next commit of the aggregate names it as `prev`. */
  readonly hash: string;
  /** How many effects its facts carry, as its header says (EFFECTS_HEADER); undefined when it does not say (an older log). */
  readonly effects: number | undefined;
}

/** Headers of a commit as appended: how many effects it carries, and the shape it is written in. */
export function commitHeaders(commit: Commit): MsgHdrs {
  const h = headers();
  h.set(EFFECTS_HEADER, String(commit.facts.reduce((n, f) => n + f.effects.length, 0)));
  h.set(COMMIT_SHAPE_HEADER, COMMIT_SHAPE);
  return h;
}

export const commitHash = (data: Uint8Array | string): string => createHash('sha256').update(data).digest('hex');

/**
 * The event log: one JetStream message per command on the aggregate's
 * subject, appended with the expected last sequence of that subject
 * (optimistic concurrency) and the command id as msgID (idempotency).
 */
export class EventStore {
  private readonly js: JetStreamClient;

  constructor(
    private readonly nc: NatsConnection,
    private readonly jsm: JetStreamManager,
  ) {
    this.js = jetstream(nc);
  }

  /** The JetStream client the store reads and writes with (its readers share it). */
  get client(): JetStreamClient {
    return this.js;
  }

  /** Appends a commit; `hash` is what its successor must name as `prev`. */
  async append(kind: AggregateKind, id: number, commit: Commit, expectedSeq: number): Promise<Appended & { hash: string }> {
    const subject = subjects.event(kind, id);
    const data = JSON.stringify(commit);
    try {
      const ack = await this.js.publish(subject, data, {
        msgID: commit.commandId,
        expect: { lastSubjectSequence: expectedSeq },
        headers: commitHeaders(commit),
      });
      return { seq: ack.seq, duplicate: ack.duplicate, hash: commitHash(data) };
    } catch (e) {
      if (isWrongLastSequence(e)) throw new ConcurrencyError(subject, expectedSeq, { cause: e });
      throw e;
    }
  }

  /**
   * Appends commits of several aggregates as one JetStream atomic batch: all
   * land, each on its subject with its own expected last sequence, or none
   * does (ConcurrencyError when an aggregate moved on). A batch carries no
   * msgID: a redelivered command finds its commit through the aggregate's
   * last commit instead (AggregateHost.execute).
   */
  async appendAtomically(entries: readonly AtomicEntry[]): Promise<(Appended & { hash: string })[]> {
    const batch = randomUUID();
    const data = entries.map((e) => JSON.stringify(e.commit));
    const answers: Promise<unknown>[] = [];
    for (const [i, e] of entries.entries()) {
      const h = commitHeaders(e.commit);
      h.set('Nats-Batch-Id', batch);
      h.set('Nats-Batch-Sequence', String(i + 1));
      if (e.expectedSeq !== undefined) h.set('Nats-Expected-Last-Subject-Sequence', String(e.expectedSeq));
      const last = i === entries.length - 1;
      if (last) h.set('Nats-Batch-Commit', '1');
      const subject = subjects.event(e.kind, e.id);
      // The first message and the commit are requests: the server answers an unsupported batch and the outcome there.
      if (i === 0 || last) answers.push(this.nc.request(subject, data[i], { headers: h, timeout: 10_000 }).then((m) => (m.data.length > 0 ? m.json() : null)));
      else this.nc.publish(subject, data[i], { headers: h });
    }
    const replies = await Promise.all(answers);
    for (const r of replies) {
      const error = BatchErrorSchema.safeParse(r);
      if (!error.success) continue;
      const { err_code, description } = error.data.error;
      if (isWrongLastSequenceCode(err_code)) throw new ConcurrencyError(entries.map((e) => subjects.event(e.kind, e.id)).join(' + '), -1);
      throw new Error(`atomic commit refused: ${description} (${err_code})`);
    }
    const ack = BatchAckSchema.parse(replies.at(-1));
    if (ack.count !== entries.length) throw new Error(`atomic commit stored ${ack.count} of ${entries.length} commits`);
    const first = ack.seq - entries.length + 1;
    return entries.map((_, i) => ({ seq: first + i, duplicate: false, hash: commitHash(data[i] ?? '') }));
  }

  /** The sequence of the aggregate's last commit, 0 if it has none (one direct get). */
  async lastSeqOf(kind: AggregateKind, id: number): Promise<number> {
    const m = await this.jsm.direct.getMessage(STREAMS.events, { last_by_subj: subjects.event(kind, id) });
    return m?.seq ?? 0;
  }

  /** The aggregate's last commit, if it has one and it reads. */
  async lastCommitOf(kind: AggregateKind, id: number): Promise<{ seq: number; commit: Commit } | undefined> {
    const m = await this.jsm.direct.getMessage(STREAMS.events, { last_by_subj: subjects.event(kind, id) });
    if (!m) return undefined;
    const commit = parseCommit(m.string(), m.header.get(COMMIT_SHAPE_HEADER));
    return 'unreadable' in commit ? undefined : { seq: m.seq, commit };
  }

  /** The aggregate's first commit at or after `fromSeq`, if any (one direct get). */
  async nextCommitOf(kind: AggregateKind, id: number, fromSeq: number): Promise<LoggedCommit | undefined> {
    const m = await this.jsm.direct.getMessage(STREAMS.events, { seq: fromSeq, next_by_subj: subjects.event(kind, id) });
    return m ? loggedCommit(m.seq, m.subject, m.data, m.header) : undefined;
  }

  async lastSeq(): Promise<number> {
    return (await this.jsm.streams.info(STREAMS.events)).state.last_seq;
  }

  /**
   * Reads the log from `fromSeq` on and keeps following it, each commit once
   * and in order. An ordered consumer, supervised: when it stops receiving
   * while the log holds a commit it has not delivered (seen after nats-server
   * restarts), it is reopened from the next sequence.
   */
  async tail(fromSeq: number, onCommit: (c: LoggedCommit) => void, filter: string = subjects.events, o: TailOptions = {}): Promise<Tail> {
    let next = Math.max(1, fromSeq);
    let consumer: Consumer | undefined;
    return follow({
      name: o.name ?? `tail ${filter}`,
      log: o.log ?? silentLogger(),
      ...(o.checkMs !== undefined ? { checkMs: o.checkMs } : {}),
      open: async () => {
        consumer = await this.js.consumers.get(STREAMS.events, {
          filter_subjects: filter,
          deliver_policy: DeliverPolicy.StartSequence,
          opt_start_seq: next,
          // A follower that dies without stopping (SIGKILL) leaves its consumer behind this long.
          inactive_threshold: TAIL_INACTIVE_MS,
        });
        return consumer.consume({ max_messages: 1000 });
      },
      onClosed: async () => {
        const name = (await consumer?.info(true))?.name;
        if (name !== undefined) await this.jsm.consumers.delete(STREAMS.events, name).catch(() => undefined);
      },
      onMessage: (m) => {
        if (m.seq < next) return;
        next = m.seq + 1;
        onCommit(loggedCommit(m.seq, m.subject, m.data, m.headers));
      },
      behind: async () => (await this.jsm.direct.getMessage(STREAMS.events, { seq: next, next_by_subj: filter })) !== null,
    });
  }
}

/** One commit of an atomic batch and the last sequence its aggregate must still have. */
export interface AtomicEntry {
  readonly kind: AggregateKind;
  readonly id: number;
  readonly commit: Commit;
  /** Absent on a later commit of an aggregate already in the batch: the server checks the first one only. */
  readonly expectedSeq?: number;
}
const BatchErrorSchema = z.object({ error: z.object({ err_code: z.number(), description: z.string() }) });
const BatchAckSchema = z.object({ seq: z.number().int().positive(), count: z.number().int() });

/** How long the server keeps the consumer of a follower that stopped pulling without a word. */
export const TAIL_INACTIVE_MS = 60_000;

export interface TailOptions {
  readonly name?: string;
  readonly log?: Logger;
  readonly checkMs?: number;
}

export type Tail = Follower;
