/**
 * Ids are handed out to those who create things: principals. The read-only
 * roles asked imgr.query.<role>.next-id.<kind> and each answer advanced a
 * counter in imgr_meta. Each user that may ask queries asks for an id of
 * each kind: the roles get no answer and the counters stay as they were; a
 * principal gets the next id and the counter moves past it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Kvm, type KV } from '@nats-io/kv';
import { TestNats } from '../support/nats.js';
import { Manager } from '../../src/manager.js';
import { silentLogger } from '../../src/platform/logger.js';
import { BUCKETS } from '../../src/messages/names.js';
import { querySubjects } from '../../src/messages/queries.js';

let nats: TestNats;
let manager: Manager;
let meta: KV;

beforeAll(async () => {
  nats = await TestNats.start();
  manager = await Manager.start({ servers: nats.url, log: silentLogger(), tickMs: 100 });
  meta = await new Kvm(await nats.connect('manager')).open(BUCKETS.meta);
});
afterAll(async () => {
  await manager.stop();
  await nats.dispose();
});

const KINDS = ['image', 'datastore'] as const;
const counter = async (kind: string): Promise<string> => {
  const e = await meta.get(`next.${kind}`);
  return e?.operation === 'PUT' ? `${e.string()}@${e.revision}` : 'none';
};
const ask = async (user: 'auditor' | 'dashboard' | 'alice', kind: (typeof KINDS)[number], timeout: number): Promise<number> => {
  const nc = await nats.connect(user);
  // Asked on the user's own inbox (connectAs sets its prefix), where imgr answers.
  const m = await nc.request(querySubjects.nextId(user, kind), '', { timeout });
  return Number(m.string());
};

describe('next-id', () => {
  it.each((['auditor', 'dashboard'] as const).flatMap((role) => KINDS.map((kind) => [role, kind] as const)))('%s asking for a %s id gets none and moves no counter', async (role, kind) => {
    const before = await counter(kind);
    await expect(ask(role, kind, 1_500)).rejects.toThrow();
    expect(await counter(kind)).toBe(before);
  });

  it.each(KINDS)('a principal gets the next %s id and the counter moves past it', async (kind) => {
    const first = await ask('alice', kind, 10_000);
    const second = await ask('alice', kind, 10_000);
    expect(second).toBe(first + 1);
    expect((await counter(kind)).split('@')[0]).toBe(String(second + 1));
  });
});
