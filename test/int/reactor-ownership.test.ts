/**
 * One manager at a time runs a reactor (a pinned-client priority group on its
 * durable): with two managers every commit is reacted to by one of them, a
 * stopping manager hands over at once, a dead one once its pin times out.
 * An existing durable (an earlier version's, one commit at a time) keeps its
 * position and is brought to this version's settings.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AckPolicy, DeliverPolicy, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { TestNats } from '../support/nats.js';
import { eventually } from '../support/eventually.js';
import { Manager } from '../../src/manager.js';
import { ImgrClient } from '../../src/client/index.js';
import { silentLogger } from '../../src/platform/logger.js';
import { ImgrMetrics } from '../../src/platform/metrics.js';
import { LogReactor, REACTOR_IN_FLIGHT } from '../../src/reactors/log-reactor.js';
import type { Commit } from '../../src/messages/wire.js';
import { STREAMS } from '../../src/store/provision.js';

let nats: TestNats;
let manager: Manager;
let c: ImgrClient;
beforeAll(async () => {
  nats = await TestNats.start();
  manager = await Manager.start({ servers: nats.url, log: silentLogger(), config: { ackWaitMs: 2_000 } });
  c = await ImgrClient.connect({ servers: nats.url, actor: { uid: 0, gid: 0, name: 'oneadmin' } });
});
afterAll(async () => {
  await c.close();
  await manager.stop();
  await nats.dispose();
});

/** Records the sequence of every commit it reacts to. */
class Recorder extends LogReactor {
  readonly seen: number[] = [];
  constructor(
    ctx: ConstructorParameters<typeof LogReactor>[0],
    readonly name: string,
  ) {
    super(ctx);
  }
  protected react(_commit: Commit, seq: number): Promise<void> {
    this.seen.push(seq);
    return Promise.resolve();
  }
}

async function recorder(name: string, ackWaitMs: number): Promise<{ r: Recorder; nc: NatsConnection }> {
  const nc = await nats.connect('manager');
  const r = new Recorder({ nc, jsm: await jetstreamManager(nc), host: manager.host, log: silentLogger(), ackWaitMs, metrics: new ImgrMetrics() }, name);
  await r.start();
  return { r, nc };
}

/** Commits `n` datastores and returns the log's last sequence. */
async function commit(n: number): Promise<number> {
  for (let i = 0; i < n; i++) {
    const id = await c.nextId('datastore');
    expect(await c.send({ type: 'datastore.create', datastoreId: id, template: { NAME: `ds-${id}`, DS_MAD: 'dummy', TM_MAD: 'dummy' } })).toMatchObject({ status: 'accepted' });
  }
  const jsm = await jetstreamManager(await nats.connect('manager'));
  return (await jsm.streams.info(STREAMS.events)).state.last_seq;
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('reactor ownership', () => {
  it('two managers: one reacts to everything, a stopping one hands over at once', async () => {
    // A pin timeout far longer than the test: only the unpin at stop can hand over in time.
    const a = await recorder('test-own-stop', 120_000);
    const b = await recorder('test-own-stop', 120_000);
    const last = await commit(10);
    await eventually(() => a.r.seen.length + b.r.seen.length >= last, 'every commit reacted to');
    const [owner, standby] = a.r.seen.length > 0 ? [a, b] : [b, a];
    expect(owner.r.seen.sort((x, y) => x - y)).toEqual(range(1, last));
    expect(standby.r.seen).toEqual([]);

    await owner.r.stop();
    const later = await commit(3);
    await eventually(() => standby.r.seen.length === later - last, 'the standby to take over', 60_000);
    expect(standby.r.seen.sort((x, y) => x - y)).toEqual(range(last + 1, later));
    await standby.r.stop();
  });

  it('a manager that dies hands over once its pin times out, and what it held comes back', async () => {
    const a = await recorder('test-own-kill', 2_000);
    const b = await recorder('test-own-kill', 2_000);
    const before = await commit(2);
    await eventually(() => a.r.seen.length + b.r.seen.length >= before, 'the log so far');
    const [owner, standby] = a.r.seen.length > 0 ? [a, b] : [b, a];
    // Gone without a word: no unpin, no acknowledgement of what it takes next.
    await owner.nc.close();
    const later = await commit(3);
    await eventually(() => range(before + 1, later).every((s) => standby.r.seen.includes(s)), 'the standby to take over after the pin timed out');
    expect(standby.r.seen.filter((s) => s <= before)).toEqual([]);
    await standby.r.stop();
  });

  it('an existing durable keeps its position and gets this version\'s settings', async () => {
    const jsm = await jetstreamManager(await nats.connect('manager'));
    const start = (await jsm.streams.info(STREAMS.events)).state.last_seq;
    // As an earlier version left it: one commit at a time, no priority group, everything up to `start` acknowledged.
    await jsm.consumers.add(STREAMS.events, { durable_name: 'test-own-old', ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.New, max_ack_pending: 1 });
    const r = await recorder('test-own-old', 2_000);
    const last = await commit(2);
    await eventually(() => r.r.seen.length >= last - start, 'the new commits');
    expect(r.r.seen.sort((x, y) => x - y)).toEqual(range(start + 1, last));
    const ci = await jsm.consumers.info(STREAMS.events, 'test-own-old');
    expect(ci.config).toMatchObject({ max_ack_pending: REACTOR_IN_FLIGHT, priority_groups: ['imgr'], priority_policy: 'pinned_client' });
    await r.r.stop();
  });
});
