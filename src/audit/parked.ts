import { DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { ParkedCommitSchema, subjects, type ParkedCommit } from '../messages/wire.js';
import { safeJson } from '../platform/json.js';
import { STREAMS } from '../store/provision.js';

/** Every commit a reactor parked (log-reactor.ts), oldest first; read with an ordered consumer. */
export async function listParked(nc: NatsConnection, limit = 1000): Promise<ParkedCommit[]> {
  const info = await (await jetstreamManager(nc)).streams.info(STREAMS.parked);
  if (info.state.messages === 0) return [];
  const c = await jetstream(nc).consumers.get(STREAMS.parked, { filter_subjects: subjects.parkedAll, deliver_policy: DeliverPolicy.All });
  const out: ParkedCommit[] = [];
  const iter = await c.fetch({ max_messages: Math.min(limit, info.state.messages), expires: 10_000 });
  for await (const m of iter) {
    const p = ParkedCommitSchema.safeParse(safeJson(m.string()));
    if (p.success) out.push(p.data);
    if (m.info.pending === 0 || out.length >= limit) break;
  }
  return out;
}
