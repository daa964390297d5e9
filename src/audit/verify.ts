import type { NatsConnection } from '@nats-io/transport-node';
import { commitHash } from '../store/event-store.js';
import { STREAMS } from '../store/provision.js';
import { readStream } from '../store/read-stream.js';
import { parseCommit, subjects } from '../messages/wire.js';

export interface LoggedMessage {
  readonly seq: number;
  readonly subject: string;
  readonly data: Uint8Array;
}

export interface ChainBreak {
  readonly seq: number;
  readonly subject: string;
  readonly reason: string;
}

export interface Verification {
  readonly ok: boolean;
  readonly commits: number;
  readonly aggregates: number;
  readonly breaks: ChainBreak[];
}

/**
 * Walks commits in log order and checks that each names the SHA-256 of its
 * aggregate's previous commit: an altered commit breaks the link after it, a
 * removed one leaves a gap, reordered ones point at the wrong predecessor.
 */
export function verifyChain(messages: Iterable<LoggedMessage>): Verification {
  const last = new Map<string, string>();
  const breaks: ChainBreak[] = [];
  let commits = 0;
  for (const m of messages) {
    commits += 1;
    const commit = parseCommit(new TextDecoder().decode(m.data));
    if ('unreadable' in commit) {
      breaks.push({ seq: m.seq, subject: m.subject, reason: `unreadable commit: ${commit.unreadable.slice(0, 200)}` });
      last.set(m.subject, commitHash(m.data));
      continue;
    }
    if (subjects.event(commit.aggregate, commit.id) !== m.subject) {
      breaks.push({ seq: m.seq, subject: m.subject, reason: `commit of ${commit.aggregate} ${commit.id} stored on ${m.subject}` });
    }
    const expected = last.get(m.subject) ?? '';
    if (commit.prev !== expected) {
      breaks.push({
        seq: m.seq,
        subject: m.subject,
        reason:
          expected === ''
            ? `first commit of ${m.subject} names a predecessor (${commit.prev.slice(0, 12)}…): earlier commits are missing`
            : `previous commit of ${m.subject} was altered, removed or reordered (expected ${expected.slice(0, 12)}…, found ${commit.prev.slice(0, 12) || 'none'}…)`,
      });
    }
    last.set(m.subject, commitHash(m.data));
  }
  return { ok: breaks.length === 0, commits, aggregates: last.size, breaks };
}

/** Reads the whole event log (auditor role suffices) and verifies it. */
export async function verifyLog(nc: NatsConnection, filter: string = subjects.events): Promise<Verification> {
  const messages: LoggedMessage[] = await readStream(nc, STREAMS.events, { filter });
  return verifyChain(messages);
}
