import { DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { STREAMS } from '../../src/store/provision.js';
import { RejectionRecordSchema, parseCommit, subjects, type Commit, type RejectionRecord } from '../../src/messages/wire.js';
import { eventually } from './eventually.js';
import type { ImageFact } from '../../src/messages/image-facts.js';
import type { DatastoreFact } from '../../src/messages/datastore.js';

/** Reads the whole event log (or one filter of it) as it is now. */
export async function readLog(nc: NatsConnection, filter = 'imgr.evt.>'): Promise<{ seq: number; commit: Commit }[]> {
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(STREAMS.events, { subjects_filter: filter });
  const last = info.state.last_seq;
  const out: { seq: number; commit: Commit }[] = [];
  if (info.state.messages === 0) return out;
  const c = await jetstream(nc).consumers.get(STREAMS.events, { filter_subjects: filter, deliver_policy: DeliverPolicy.All });
  const iter = await c.fetch({ max_messages: 1_000_000, expires: 5_000 });
  for await (const m of iter) {
    const commit = parseCommit(m.string());
    if ('unreadable' in commit) throw new Error(`unreadable commit at ${m.seq}`);
    out.push({ seq: m.seq, commit });
    if (m.info.pending === 0 || m.seq >= last) break;
  }
  return out;
}

/** Every fact of a log excerpt, in order. */
export const factsIn = (log: readonly { commit: Commit }[]): (ImageFact | DatastoreFact)[] =>
  log.flatMap((e): (ImageFact | DatastoreFact)[] => e.commit.facts);

/** The refusal IMGR_REJ recorded for an unreadable or unauthenticated message with this command id, once it is there. */
export async function unreadableRefusal(nc: NatsConnection, commandId: string): Promise<RejectionRecord> {
  const js = jetstream(nc);
  return eventually(async () => {
    const c = await js.consumers.get(STREAMS.rejected, { filter_subjects: subjects.rejected('unknown', 'unknown'), deliver_policy: DeliverPolicy.All });
    for (;;) {
      const m = await c.next({ expires: 1000 });
      if (!m) return undefined;
      const r = RejectionRecordSchema.parse(m.json());
      if (r.commandId === commandId) return r;
    }
  }, `the refusal of ${commandId}`);
}
