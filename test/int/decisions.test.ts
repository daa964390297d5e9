/**
 * Decisions that must not rest on stale state and outcomes that are never
 * taken back (the faults issue, causes 4 and 5): a refusal decided while the
 * resident state lags the log is decided again on the aggregate's last
 * commit; a command whose decision outlasts ack_wait (a slow STAT) keeps its
 * lease instead of being redelivered and decided in parallel; the outcome
 * bucket keeps one outcome per command id.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Kvm } from '@nats-io/kv';
import { jetstreamManager } from '@nats-io/jetstream';
import { TestNats } from '../support/nats.js';
import { Manager } from '../../src/manager.js';
import { ImgrClient } from '../../src/client/index.js';
import { silentLogger } from '../../src/platform/logger.js';
import { AggregateHost } from '../../src/actors/host.js';
import { EventStore } from '../../src/store/event-store.js';
import { BUCKETS, provision } from '../../src/store/provision.js';
import { ManagerConfigSchema } from '../../src/platform/config.js';
import { systemClock } from '../../src/platform/clock.js';
import { CommandMessageSchema, type Outcome } from '../../src/messages/wire.js';
import { Outcomes } from '../../src/intake/outcomes.js';
import { intakeDurable } from '../../src/intake/intake.js';
import { DEFAULT_PARTITIONS } from '../../src/messages/partitions.js';
import { readLog } from '../support/log.js';

let nats: TestNats;
let a: Manager;
let c: ImgrClient;
let ds: number;

beforeAll(async () => {
  nats = await TestNats.start();
  a = await Manager.start({ servers: nats.url, log: silentLogger(), config: { ackWaitMs: 1_000 } });
  c = await ImgrClient.connect({ servers: nats.url, actor: { uid: 0, gid: 0, name: 'oneadmin' } });
  ds = await c.nextId('datastore');
  await c.send({ type: 'datastore.create', datastoreId: ds, template: { NAME: 'decisions', DS_MAD: 'dummy', TM_MAD: 'dummy' } });
});
afterAll(async () => {
  await c.close();
  await a.stop();
  await nats.dispose();
});

const message = (commandId: string, command: unknown) =>
  CommandMessageSchema.parse({
    envelope: { commandId, correlationId: commandId, causationId: null, actor: { uid: 0, gid: 0, name: 'oneadmin' }, at: Date.now() },
    command,
    replyTo: null,
  });

describe('a refusal decided on a lagging state', () => {
  it('is decided again on the aggregate\'s last commit: no "does not exist" for an image another manager created', async () => {
    const nc = await nats.connect('manager');
    const p = await provision(nc);
    const lagging = new AggregateHost(new EventStore(nc, p.jsm), p.snapshots, ManagerConfigSchema.parse({}), systemClock, silentLogger(), p.partitions);
    await lagging.boot();
    await lagging.stop();
    const x = await c.nextId('image');
    const made = await c.send({ type: 'image.allocate', imageId: x, datastoreId: ds, template: { NAME: 'lag-x', SOURCE: '/s/x', FORMAT: 'raw', SIZE: '1' } });
    expect(made).toMatchObject({ status: 'accepted', state: 'READY' });
    expect(lagging.image(x)).toBeUndefined();
    const o = await lagging.execute(message('lag-disable', { type: 'image.disable', imageId: x }));
    expect(o).toMatchObject({ status: 'accepted', state: 'DISABLED' });
    const log = await readLog(nc, `imgr.evt.image.${x}`);
    expect(log.map((l) => l.commit.commandId).slice(-1)).toEqual(['lag-disable']);
  });
});

describe('a refusal decided on a lagging context', () => {
  it('re-reads the origin a clone decision read: no "Cannot clone image in state: USED_PERS" for an origin released since', async () => {
    const x = await c.nextId('image');
    expect(await c.send({ type: 'image.allocate', imageId: x, datastoreId: ds, template: { NAME: 'lag-origin', SOURCE: '/s/o', FORMAT: 'raw', SIZE: '1', PERSISTENT: 'YES' } })).toMatchObject({ state: 'READY' });
    const used = await c.send({ type: 'image.acquire', imageId: x, vmId: 40, mode: 'deploy' });
    expect(used).toMatchObject({ state: 'USED_PERS' });
    const nc = await nats.connect('manager');
    const p = await provision(nc);
    const lagging = new AggregateHost(new EventStore(nc, p.jsm), p.snapshots, ManagerConfigSchema.parse({}), systemClock, silentLogger(), p.partitions);
    await lagging.boot();
    await lagging.waitFor(used.status === 'accepted' ? used.seq : 0);
    await lagging.stop();
    const target = await c.nextId('image');
    expect(await c.send({ type: 'image.release', imageId: x, vmId: 40 })).toMatchObject({ state: 'READY' });
    expect(lagging.image(x)?.state).toBe('USED_PERS');
    const o = await lagging.execute(message('lag-clone', { type: 'image.clone', imageId: target, originId: x, name: 'lag-copy', datastoreId: ds }));
    expect(o).toMatchObject({ status: 'accepted', state: 'LOCKED' });
    // The hold it committed with the clone went onto the origin's latest commit, not the stale one.
    expect(lagging.image(x)).toMatchObject({ state: 'CLONE', clones: [target] });
  });
});

describe('a decision that outlasts ack_wait', () => {
  it('keeps its lease: a STAT slower than ack_wait is asked once and the command is not redelivered', async () => {
    const drivers = await nats.connect('drivers');
    let stats = 0;
    drivers.subscribe('imgr.stat', {
      queue: 'imgr-drivers',
      callback: (_e, m) => {
        stats++;
        setTimeout(() => m.respond(JSON.stringify({ result: 'SUCCESS', info: '7' })), 4_000);
      },
    });
    const jsm = await jetstreamManager(await nats.connect('manager'));
    // Every delivery, redeliveries included, takes a consumer sequence.
    const deliveries = async (): Promise<number> => {
      let n = 0;
      for (let p = 0; p < DEFAULT_PARTITIONS; p++) n += (await jsm.consumers.info('IMGR_CMD', intakeDurable('public', p))).delivered.consumer_seq;
      return n;
    };
    const before = await deliveries();
    const id = await c.nextId('image');
    const o = await c.send({ type: 'image.allocate', imageId: id, datastoreId: ds, template: { NAME: 'slow-stat', PATH: '/srv/slow.img' } }, { timeoutMs: 30_000 });
    expect(o).toMatchObject({ status: 'accepted' });
    expect(stats).toBe(1);
    expect((await deliveries()) - before).toBe(1);
  }, 60_000);
});

describe('one outcome per command id', () => {
  const accepted = (id: string, seq = 9): Outcome => ({ status: 'accepted', commandId: id, aggregate: 'image', id: 1, fact: 'disabled', state: 'DISABLED', seq });
  const refused = (id: string, message: string): Outcome => ({ status: 'rejected', commandId: id, code: 'IMG_ERR_NOT_FOUND', message });

  it('a refusal never replaces a kept outcome, a commit replaces a kept refusal, the first refusal stays', async () => {
    const kv = await new Kvm(await nats.connect('manager')).open(BUCKETS.outcomes);
    const kept = new Outcomes(kv, silentLogger());
    await kept.accepted('o-1', accepted('o-1'));
    expect(await kept.refusal('o-1', refused('o-1', 'stale'))).toEqual(accepted('o-1'));
    expect(await kept.get('o-1')).toEqual(accepted('o-1'));

    expect(await kept.refusal('o-2', refused('o-2', 'first'))).toEqual(refused('o-2', 'first'));
    expect(await kept.refusal('o-2', refused('o-2', 'second'))).toEqual(refused('o-2', 'first'));
    await kept.accepted('o-2', accepted('o-2'));
    expect(await kept.get('o-2')).toEqual(accepted('o-2'));
    await kept.accepted('o-2', accepted('o-2', 10));
    expect(await kept.get('o-2')).toEqual(accepted('o-2'));
  });
});
