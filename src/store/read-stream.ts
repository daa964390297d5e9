import { DeliverPolicy, JetStreamError, jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { MsgHdrs, NatsConnection } from '@nats-io/transport-node';
import { setTimeout as sleep } from 'node:timers/promises';
import { isJetStreamStarting } from './errors.js';

export interface StoredMessage {
  seq: number;
  subject: string;
  data: Uint8Array;
  headers: MsgHdrs | undefined;
  /** The data as UTF-8 text. */
  string(): string;
}

const utf8 = new TextDecoder();

export interface ReadOptions {
  /** Subjects to read (all of the stream when absent). */
  filter?: string | string[];
  /** At most this many messages. */
  limit?: number;
  /** From this sequence on (the start of the stream when absent). */
  fromSeq?: number;
  /** Up to this sequence (what the stream holds when the read starts, when absent). */
  toSeq?: number;
  /** How long a cluster that cannot answer is waited for before the read fails. */
  patienceMs?: number;
}

/**
 * A pull the cluster could not route: the node that held the ordered
 * consumer restarted or the stream's leader moved. The read goes on after the
 * last message it got.
 */
const isNodeMoving = (e: unknown): boolean => isJetStreamStarting(e) || (e instanceof JetStreamError && 'code' in e && e.code === 503);

/**
 * The messages of a stream as they are now, oldest first, with an ordered
 * consumer: what auditors and the CLI read. A node restarting under the read
 * costs a wait, not the read: it goes on after the last message it gave.
 */
export async function* streamMessages(nc: NatsConnection, stream: string, o: ReadOptions = {}): AsyncGenerator<StoredMessage> {
  const limit = o.limit ?? Number.MAX_SAFE_INTEGER;
  const until = Date.now() + (o.patienceMs ?? 30_000);
  // One aggregate's subject is counted by the server, so a subject with no message returns at once instead of holding the pull for its expiry.
  const subject = typeof o.filter === 'string' && !/[*>]/.test(o.filter) ? o.filter : undefined;
  let after = Math.max(0, (o.fromSeq ?? 1) - 1);
  let given = 0;
  for (;;) {
    try {
      const info = await (await jetstreamManager(nc)).streams.info(stream, subject === undefined ? undefined : { subjects_filter: subject });
      const last = Math.min(info.state.last_seq, o.toSeq ?? Number.MAX_SAFE_INTEGER);
      const none = info.state.messages === 0 || (subject !== undefined && (info.state.subjects?.[subject] ?? 0) === 0);
      if (none || after >= last || given >= limit) return;
      const consumer = await jetstream(nc).consumers.get(stream, {
        ...(o.filter === undefined ? {} : { filter_subjects: o.filter }),
        ...(after === 0 ? { deliver_policy: DeliverPolicy.All } : { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: after + 1 }),
      });
      const iter = await consumer.fetch({ max_messages: Math.min(limit - given, info.state.messages), expires: 10_000 });
      let got = 0;
      for await (const m of iter) {
        after = m.seq;
        given += 1;
        got += 1;
        if (m.seq > last) return;
        const data = m.data;
        yield { seq: m.seq, subject: m.subject, data, headers: m.headers, string: () => utf8.decode(data) };
        if (m.info.pending === 0 || m.seq >= last || given >= limit) return;
      }
      // The fetch ended with nothing more to give (a filter that matches nothing further).
      if (got === 0) return;
    } catch (e) {
      if (!isNodeMoving(e) || Date.now() > until) throw e;
      await sleep(250);
    }
  }
}

/** {@link streamMessages}, gathered. */
export async function readStream(nc: NatsConnection, stream: string, o: ReadOptions = {}): Promise<StoredMessage[]> {
  const out: StoredMessage[] = [];
  for await (const m of streamMessages(nc, stream, o)) out.push(m);
  return out;
}
