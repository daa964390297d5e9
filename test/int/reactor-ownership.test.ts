/**
 * One manager at a time runs a reactor (the holder of its lease in
 * imgr_leases), reading the log through its aggregate host's tail: with two
 * managers every commit is reacted to by one of them; a stopping manager
 * hands over at once and the next resumes at the position it stored; a dead
 * one's lease lapses and the next resumes at its last stored position. A
 * reactor that falls behind reads the log itself; an earlier version's
 * durable consumer gives a reactor its position and then goes.
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
import { LogReactor, POSITION_EVERY_MS, REACTOR_IN_FLIGHT } from '../../src/reactors/log-reactor.js';
import { positionKey, writePosition } from '../../src/reactors/reactor-position.js';
import type { Commit } from '../../src/messages/wire.js';
import { STREAMS, provision } from '../../src/store/provision.js';

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

/** Records the sequence of every commit it reacts to, and the most reactions it ran at once. */
class Recorder extends LogReactor {
  readonly seen: number[] = [];
  now = 0;
  most = 0;
  constructor(
    ctx: ConstructorParameters<typeof LogReactor>[0],
    readonly name: string,
  ) {
    super(ctx);
  }
  /** While set, every reaction waits for it: the reactor fills up to its limit whatever the machine's speed. */
  gate: Promise<void> | undefined;
  protected async react(_commit: Commit, seq: number): Promise<void> {
    this.most = Math.max(this.most, ++this.now);
    if (this.gate) await this.gate;
    this.now -= 1;
    this.seen.push(seq);
  }
}

async function recorder(name: string, leaseMs = 2_000): Promise<{ r: Recorder; nc: NatsConnection }> {
  const nc = await nats.connect('manager');
  const p = await provision(nc);
  const r = new Recorder({ nc, jsm: await jetstreamManager(nc), host: manager.host, log: silentLogger(), ackWaitMs: leaseMs, metrics: new ImgrMetrics(), leases: p.leases, meta: p.meta }, name);
  await r.start();
  return { r, nc };
}

/** Commits `n` datastores and returns the log's last sequence. */
async function commit(n: number): Promise<number> {
  for (let i = 0; i < n; i++) {
    const id = await c.nextId('datastore');
    expect(await c.send({ type: 'datastore.create', datastoreId: id, template: { NAME: `ds-${id}`, DS_MAD: 'dummy', TM_MAD: 'dummy' } })).toMatchObject({ status: 'accepted' });
  }
  return lastSeq();
}

async function lastSeq(): Promise<number> {
  const jsm = await jetstreamManager(await nats.connect('manager'));
  return (await jsm.streams.info(STREAMS.events)).state.last_seq;
}

async function storedPosition(name: string): Promise<number> {
  const meta = (await provision(await nats.connect('manager'))).meta;
  return Number((await meta.get(positionKey(name)))?.string() ?? NaN);
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('reactor ownership', () => {
  it('two managers: one reacts to everything, a stopping one hands over at once at the position it stored', async () => {
    const start = await lastSeq();
    // A lease far longer than the test: only the release at stop can hand over in time.
    const a = await recorder('test-own-stop', 120_000);
    const b = await recorder('test-own-stop', 120_000);
    const last = await commit(10);
    await eventually(() => a.r.seen.length + b.r.seen.length >= last - start, 'every commit reacted to');
    const [owner, standby] = a.r.running ? [a, b] : [b, a];
    expect(owner.r.seen.sort((x, y) => x - y)).toEqual(range(start + 1, last));
    expect(standby.r.seen).toEqual([]);

    await owner.r.stop();
    expect(await storedPosition('test-own-stop')).toBe(last);
    const later = await commit(3);
    await eventually(() => standby.r.seen.length === later - last, 'the standby to take over', 60_000);
    expect(standby.r.seen.sort((x, y) => x - y)).toEqual(range(last + 1, later));
    await standby.r.stop();
  });

  it('a manager that dies hands over once its lease lapses, and the next resumes at its last stored position', async () => {
    const a = await recorder('test-own-kill');
    const b = await recorder('test-own-kill');
    const before = await commit(2);
    await eventually(async () => (await storedPosition('test-own-kill')) >= before, 'the position stored');
    const [owner, standby] = a.r.running ? [a, b] : [b, a];
    // Gone without a word: its connection closed, its lease not freed, nothing more stored.
    await owner.nc.close();
    const later = await commit(3);
    await eventually(() => range(before + 1, later).every((s) => standby.r.seen.includes(s)), 'the standby to take over after the lease lapsed');
    // What the dead one had stored as done is not done again.
    expect(standby.r.seen.filter((s) => s <= before)).toEqual([]);
    await standby.r.stop();
  });

  it('a reactor behind the log reads it itself: every commit once, in order per aggregate, never more in flight than its limit', async () => {
    const start = await lastSeq();
    const behind = await recorder('test-own-behind');
    // Every reaction waits until the commits are all in: the reactor fills up to its limit and falls behind.
    let open = (): void => undefined;
    behind.r.gate = new Promise((r) => (open = r));
    const last = await commit(REACTOR_IN_FLIGHT + 40);
    await eventually(() => behind.r.now === REACTOR_IN_FLIGHT, 'the reactor at its limit');
    open();
    behind.r.gate = undefined;
    // The manager's own commits may follow (a monitor request of an earlier test's datastore timing out): only those up to `last` are counted.
    const upToLast = (): number[] => behind.r.seen.filter((s) => s <= last).sort((x, y) => x - y);
    await eventually(() => upToLast().length >= last - start, 'every commit', 120_000);
    expect(upToLast()).toEqual(range(start + 1, last));
    expect(behind.r.most).toBe(REACTOR_IN_FLIGHT);
    await behind.r.stop();
  });

  it("an earlier version's durable gives a reactor its position, then goes", async () => {
    const jsm = await jetstreamManager(await nats.connect('manager'));
    const start = await lastSeq();
    // As an earlier version left it: everything up to `start` acknowledged.
    await jsm.consumers.add(STREAMS.events, { durable_name: 'test-own-old', ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.New, max_ack_pending: 1 });
    const r = await recorder('test-own-old');
    const last = await commit(2);
    await eventually(() => r.r.seen.length >= last - start, 'the new commits');
    expect(r.r.seen.sort((x, y) => x - y)).toEqual(range(start + 1, last));
    await expect(jsm.consumers.info(STREAMS.events, 'test-own-old')).rejects.toThrow();
    await r.r.stop();
  });

  it('a reactor with a stored position resumes there, reading what it missed from the log', async () => {
    const meta = (await provision(await nats.connect('manager'))).meta;
    const before = await commit(3);
    await writePosition(meta, 'test-own-resume', before - 2);
    const r = await recorder('test-own-resume');
    await eventually(() => r.r.seen.length >= 2, 'the two commits after the position');
    const last = await commit(1);
    await eventually(() => r.r.seen.includes(last), 'the next live commit');
    expect(r.r.seen.sort((x, y) => x - y)).toEqual(range(before - 1, last));
    await new Promise((res) => setTimeout(res, 2 * POSITION_EVERY_MS));
    expect(await storedPosition('test-own-resume')).toBe(last);
    await r.r.stop();
  });
});
