/**
 * The progress mark is a contiguous prefix of the log: while two managers
 * write, whenever one says it has applied the log up to N, every commit up to
 * N (the other's included) is in its resident state. A manager's own commits
 * used to move the mark past commits of the other it had not seen yet.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestNats } from '../support/nats.js';
import { readLog } from '../support/log.js';
import { Manager } from '../../src/manager.js';
import { ImgrClient } from '../../src/client/index.js';
import { silentLogger } from '../../src/platform/logger.js';
import { CommandMessageSchema } from '../../src/messages/wire.js';
import { AggregateHost } from '../../src/actors/host.js';
import { EventStore } from '../../src/store/event-store.js';
import { provision } from '../../src/store/provision.js';
import { ManagerConfigSchema } from '../../src/platform/config.js';
import { systemClock } from '../../src/platform/clock.js';

let nats: TestNats;
let a: Manager;
let b: Manager;
let c: ImgrClient;

beforeAll(async () => {
  nats = await TestNats.start();
  a = await Manager.start({ servers: nats.url, log: silentLogger() });
  b = await Manager.start({ servers: nats.url, log: silentLogger() });
  c = await ImgrClient.connect({ servers: nats.url, actor: { uid: 0, gid: 0, name: 'oneadmin' } });
});
afterAll(async () => {
  await c.close();
  await a.stop();
  await b.stop();
  await nats.dispose();
});

/**
 * The mark and the sequences a manager has folded of the images (resident
 * ones, and those of partitions it does not hold, whose commits only move its
 * indexes) and of every datastore, taken in one synchronous step.
 */
function snapshot(m: Manager, images: readonly number[]): { upTo: number; resident: Map<string, number> } {
  const resident = new Map<string, number>();
  for (const id of images) resident.set(`image.${id}`, m.host.foldedSeq('image', id));
  for (const r of m.host.allDatastores()) resident.set(`datastore.${r.agg.record.id}`, r.seq);
  return { upTo: m.host.appliedSeq, resident };
}

/** Commits at or below the mark that the snapshot did not hold. */
function missing(log: { seq: number; commit: { aggregate: string; id: number } }[], s: ReturnType<typeof snapshot>): string[] {
  const last = new Map<string, number>();
  for (const { seq, commit } of log) if (seq <= s.upTo) last.set(`${commit.aggregate}.${commit.id}`, seq);
  return [...last].filter(([k, seq]) => (s.resident.get(k) ?? 0) < seq).map(([k, seq]) => `${k}@${seq} (mark ${s.upTo})`);
}

describe('two writers, one log', () => {
  it('a manager that says it applied the log up to N has every commit up to N', async () => {
    const ds = await c.nextId('datastore');
    await c.send({ type: 'datastore.create', datastoreId: ds, template: { NAME: 'images', DS_MAD: 'dummy', TM_MAD: 'dummy' } });
    const ids: number[] = [];
    for (let i = 0; i < 150; i++) ids.push(await c.nextId('image'));
    // Both managers take commands from the one intake durable: their commits interleave.
    const load = Promise.all(ids.map((id) => c.send({ type: 'image.allocate', imageId: id, datastoreId: ds, template: { NAME: `p-${id}`, SOURCE: `/s/${id}`, FORMAT: 'raw', SIZE: '1' } })));
    // Snapshots are taken on every turn of the event loop while the load runs, and checked against the log afterwards.
    const snapshots: ReturnType<typeof snapshot>[] = [];
    const running = { done: false };
    void load.finally(() => (running.done = true));
    while (!running.done) {
      snapshots.push(snapshot(a, ids), snapshot(b, ids));
      await new Promise((r) => setImmediate(r));
    }
    const outcomes = await load;
    expect(outcomes.every((o) => o.status === 'accepted')).toBe(true);
    const log = await readLog(await nats.connect('manager'));
    expect(snapshots.length).toBeGreaterThan(0);
    expect(snapshots.flatMap((x) => missing(log, x))).toEqual([]);
  });

  it("a host's own commit does not move its mark past another writer's commit it has not seen", async () => {
    const ds = await c.nextId('datastore');
    await c.send({ type: 'datastore.create', datastoreId: ds, template: { NAME: 'mark', DS_MAD: 'dummy', TM_MAD: 'dummy' } });
    const [x, y] = [await c.nextId('image'), await c.nextId('image')];
    // A host of its own (no reactors) that stops following the log; b writes x; then this host writes y itself.
    const nc = await nats.connect('manager');
    const p = await provision(nc);
    const host = new AggregateHost(new EventStore(nc, p.jsm), p.snapshots, ManagerConfigSchema.parse({}), systemClock, silentLogger(), p.partitions);
    await host.boot();
    await host.waitFor(b.host.appliedSeq);
    await host.stop();
    const before = host.appliedSeq;
    const msg = (id: number, commandId: string) =>
      CommandMessageSchema.parse({
        envelope: { commandId, correlationId: commandId, causationId: null, actor: { uid: 0, gid: 0, name: 'oneadmin' }, at: Date.now() },
        command: { type: 'image.allocate', imageId: id, datastoreId: ds, template: { NAME: `m-${id}`, SOURCE: `/s/${id}`, FORMAT: 'raw', SIZE: '1' } },
      });
    const bx = await b.host.execute(msg(x, 'mark-x'));
    const ay = await host.execute(msg(y, 'mark-y'));
    expect(bx).toMatchObject({ status: 'accepted' });
    expect(ay).toMatchObject({ status: 'accepted' });
    // y is in a's state at once (read-your-writes), but the mark still says "not past x".
    expect(host.image(y)?.state).toBe('READY');
    expect(host.image(x)).toBeUndefined();
    expect(host.appliedSeq).toBe(before);
    expect(host.appliedSeq).toBeLessThan(bx.status === 'accepted' ? bx.seq : 0);
  });
});
