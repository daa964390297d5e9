import type { NatsConnection } from '@nats-io/transport-node';
import { ParkedCommitSchema, subjects, type ParkedCommit } from '../messages/wire.js';
import { safeJson } from '../platform/json.js';
import { STREAMS } from '../store/provision.js';
import { readStream } from '../store/read-stream.js';

/** Every commit a reactor parked (log-reactor.ts), oldest first; read with an ordered consumer. */
export async function listParked(nc: NatsConnection, limit = 1000): Promise<ParkedCommit[]> {
  const out: ParkedCommit[] = [];
  for (const m of await readStream(nc, STREAMS.parked, { filter: subjects.parkedAll, limit })) {
    const p = ParkedCommitSchema.safeParse(safeJson(m.string()));
    if (p.success) out.push(p.data);
  }
  return out;
}
