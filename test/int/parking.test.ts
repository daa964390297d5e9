/**
 * One commit a reactor cannot process must not stop it: after PARK_AFTER
 * tries it is parked in IMGR_PARKED (with why) and the reactor goes on with
 * the commits after it. While it is retried, other aggregates' commits go
 * ahead; its own aggregate's later commits wait behind it, in log order.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { TestNats } from '../support/nats.js';
import { eventually } from '../support/eventually.js';
import { Manager } from '../../src/manager.js';
import { ImgrClient } from '../../src/client/index.js';
import { silentLogger } from '../../src/platform/logger.js';
import { ImgrMetrics } from '../../src/platform/metrics.js';
import { LogReactor, PARK_AFTER } from '../../src/reactors/log-reactor.js';
import { ParkedCommitSchema, type Commit } from '../../src/messages/wire.js';
import { STREAMS, provision } from '../../src/store/provision.js';
import { writePosition } from '../../src/reactors/reactor-position.js';
import { listParked } from '../../src/audit/parked.js';
import { main } from '../../src/cli/imgr.js';

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

/** Fails every time on the commit that created one datastore, handles the rest. */
class Picky extends LogReactor {
  readonly name = 'test-picky';
  /** Datastore ids of the commits handled, each with how often the poisoned one had been tried by then. */
  readonly handled: { id: number; triesOfPoison: number }[] = [];
  attemptsOnPoison = 0;
  constructor(
    ctx: ConstructorParameters<typeof LogReactor>[0],
    private readonly poison: number,
  ) {
    super(ctx);
  }
  protected react(commit: Commit): Promise<void> {
    if (commit.aggregate === 'datastore' && commit.id === this.poison && commit.facts.some((f) => f.type === 'datastore.created')) {
      this.attemptsOnPoison += 1;
      return Promise.reject(new Error(`cannot react to datastore ${commit.id}`));
    }
    this.handled.push({ id: commit.id, triesOfPoison: this.attemptsOnPoison });
    return Promise.resolve();
  }
}

describe('a reactor and a commit it cannot process', () => {
  it('parks the commit with the reason after a bounded number of tries and carries on', async () => {
    const poison = await c.nextId('datastore');
    await c.send({ type: 'datastore.create', datastoreId: poison, template: { NAME: 'poison', TYPE: 'SYSTEM_DS', TM_MAD: 'dummy' } });
    const later = await c.nextId('datastore');
    await c.send({ type: 'datastore.create', datastoreId: later, template: { NAME: 'later', DS_MAD: 'dummy', TM_MAD: 'dummy' } });
    // A later commit on the poisoned datastore itself.
    expect(await c.send({ type: 'datastore.disable', datastoreId: poison })).toMatchObject({ status: 'accepted' });

    const nc = await nats.connect('manager');
    const metrics = new ImgrMetrics();
    const p = await provision(nc);
    // A new reactor starts where the log is; this one reads it from the start.
    await writePosition(p.meta, 'test-picky', 0);
    const reactor = new Picky({ nc, jsm: await jetstreamManager(nc), host: manager.host, log: silentLogger(), ackWaitMs: 2_000, metrics, leases: p.leases, meta: p.meta }, poison);
    await reactor.start();
    try {
      await eventually(() => reactor.handled.some((h) => h.id === poison), 'the commit after the poisoned one on its datastore', 120_000);
      expect(reactor.attemptsOnPoison).toBe(PARK_AFTER);
      // Operators see it counted: one parked, every other commit reacted to.
      expect((await metrics.parked.get()).values).toEqual([{ labels: { reactor: 'test-picky' }, value: 1 }]);
      // The other datastore did not wait for the retries; the poisoned one's next commit waited until it was parked.
      expect(reactor.handled.find((h) => h.id === later)?.triesOfPoison).toBeLessThan(PARK_AFTER);
      expect(reactor.handled.find((h) => h.id === poison)?.triesOfPoison).toBe(PARK_AFTER);
      const parked = await jetstream(nc).consumers.get(STREAMS.parked, { filter_subjects: 'imgr.parked.test-picky.>', deliver_policy: DeliverPolicy.All });
      const m = await parked.next({ expires: 5_000 });
      expect(ParkedCommitSchema.parse(m?.json())).toMatchObject({ reactor: 'test-picky', attempts: PARK_AFTER, error: `cannot react to datastore ${poison}` });
      // Operators see it with the read-only auditor role: imgr parked, /api/parked.
      const seen = await listParked(await nats.connect('auditor'));
      expect(seen).toEqual([expect.objectContaining({ reactor: 'test-picky', subject: `imgr.evt.datastore.${poison}` })]);
      let out = '';
      expect(await main(['--nats', nats.url, 'parked'], (s) => (out += s), () => undefined, false)).toBe(0);
      expect(out).toMatch(new RegExp(`test-picky\\s+imgr\\.evt\\.datastore\\.${poison}\\s+${PARK_AFTER}\\s+\\S+\\s+cannot react to datastore ${poison}`));
    } finally {
      await reactor.stop();
    }
  });
});
