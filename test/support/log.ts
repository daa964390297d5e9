import { DeliverPolicy, jetstream } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { STREAMS } from '../../src/store/provision.js';
import { readStream } from '../../src/store/read-stream.js';
import { RejectionRecordSchema, parseCommit, subjects, type Commit, type RejectionRecord } from '../../src/messages/wire.js';
import { eventually } from './eventually.js';
import type { ImageFact } from '../../src/messages/image-facts.js';
import type { DatastoreFact } from '../../src/messages/datastore.js';

/** Reads the whole event log (or one filter of it) as it is now. */
export async function readLog(nc: NatsConnection, filter = 'imgr.evt.>'): Promise<{ seq: number; commit: Commit }[]> {
  return (await readStream(nc, STREAMS.events, { filter })).map((m) => {
    const commit = parseCommit(m.string());
    if ('unreadable' in commit) throw new Error(`unreadable commit at ${m.seq}`);
    return { seq: m.seq, commit };
  });
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
