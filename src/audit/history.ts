import { redactSealed } from '../secrets/sealed.js';
import type { NatsConnection } from '@nats-io/transport-node';
import { safeJson } from '../platform/json.js';
import { STREAMS } from '../store/provision.js';
import { readStream, streamMessages } from '../store/read-stream.js';
import { RejectionRecordSchema, parseCommit, subjects, type AggregateKind, type Commit, type RejectionRecord } from '../messages/wire.js';
import type { ImageView } from '../messages/image-record.js';
import type { DatastoreView } from '../messages/datastore.js';
import { foldCommit } from '../machines/aggregates.js';

/** One line of an aggregate's history: what happened, when, who did it, and why. */
export interface HistoryEntry {
  readonly seq: number;
  /** Epoch ms. */
  readonly at: number;
  readonly kind: 'fact' | 'rejected';
  /** The fact type, or the refused command's type. */
  readonly what: string;
  readonly state: string | null;
  readonly actor: { uid: number; gid: number; name: string; service: string } | null;
  readonly commandId: string | null;
  readonly correlationId: string | null;
  /** Error text of a refusal, or the fact's own detail. */
  readonly why: string;
}

interface Stored {
  seq: number;
  text: string;
}

/** Every message of one subject of a stream (an ordered, filtered read: auditors do this rarely). */
async function readSubject(nc: NatsConnection, stream: string, subject: string): Promise<Stored[]> {
  return (await readStream(nc, stream, { filter: subject })).map((m) => ({ seq: m.seq, text: m.string() }));
}

export async function commitsOf(nc: NatsConnection, kind: AggregateKind, id: number): Promise<{ seq: number; commit: Commit }[]> {
  return (await readSubject(nc, STREAMS.events, subjects.event(kind, id))).flatMap((m) => {
    const c = parseCommit(m.text);
    return 'unreadable' in c ? [] : [{ seq: m.seq, commit: c }];
  });
}

/** The history of an image or datastore: every fact, and every refused command, in time order. */
export async function historyOf(nc: NatsConnection, kind: AggregateKind, id: number): Promise<HistoryEntry[]> {
  const facts: HistoryEntry[] = (await commitsOf(nc, kind, id)).flatMap(({ seq, commit }) =>
    commit.facts.map((f) => ({
      seq,
      at: commit.at,
      kind: 'fact' as const,
      what: f.type,
      state: f.state,
      actor: commit.actor,
      commandId: commit.commandId,
      correlationId: commit.correlationId,
      why: Object.entries(f.detail)
        .map(([k, v]) => `${k}=${String(v)}`)
        .join(' '),
    })),
  );
  const refused: HistoryEntry[] = (await readSubject(nc, STREAMS.rejected, subjects.rejected(kind, id))).flatMap((m) => {
    const r = RejectionRecordSchema.safeParse(safeJson(m.text));
    return r.success ? [rejectionEntry(m.seq, r.data)] : [];
  });
  return redactSealed([...facts, ...refused].sort((a, b) => a.at - b.at || a.seq - b.seq));
}

function rejectionEntry(seq: number, r: RejectionRecord): HistoryEntry {
  return {
    seq,
    at: r.at,
    kind: 'rejected',
    what: typeof r.command === 'string' ? 'unreadable' : r.command.type,
    state: null,
    actor: r.actor,
    commandId: r.commandId,
    correlationId: null,
    why: `${r.code}: ${r.message}`,
  };
}

/** Time travel: the view as of a log sequence or a time (epoch ms), from its facts alone. */
export async function imageAt(nc: NatsConnection, id: number, until: { seq: number } | { at: number }): Promise<ImageView | null> {
  let view: ImageView | null = null;
  for (const { seq, commit } of await commitsOf(nc, 'image', id)) {
    if ('seq' in until ? seq > until.seq : commit.at > until.at) break;
    if (commit.aggregate === 'image') view = foldCommit(view, commit);
  }
  return redactSealed(view);
}

export async function datastoreAt(nc: NatsConnection, id: number, until: { seq: number } | { at: number }): Promise<DatastoreView | null> {
  let view: DatastoreView | null = null;
  for (const { seq, commit } of await commitsOf(nc, 'datastore', id)) {
    if ('seq' in until ? seq > until.seq : commit.at > until.at) break;
    if (commit.aggregate === 'datastore') view = foldCommit(view, commit);
  }
  return redactSealed(view);
}

/** The whole log, or one aggregate, as NDJSON lines `{"seq":…,"subject":…,"commit":…}`. */
export async function* exportNdjson(nc: NatsConnection, filter: string = subjects.events): AsyncGenerator<string> {
  for await (const m of streamMessages(nc, STREAMS.events, { filter })) {
    yield `${JSON.stringify({ seq: m.seq, subject: m.subject, commit: redactSealed(JSON.parse(m.string()) as unknown) })}\n`;
  }
}
