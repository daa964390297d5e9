/**
 * nats.conf on the nats-server setup brings (2.15): each role can do its
 * job — including acknowledging what it consumes, whose subjects the server
 * formats — and is refused what belongs to another role.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import { AckPolicy, jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { TestNats } from '../support/nats.js';
import { eventually } from '../support/eventually.js';
import { sealingInfo } from '../../src/client/sealing.js';
import { ROLES, inboxPrefixFor, type Role } from '../../src/platform/nats.js';
import { BUCKETS, DRIVERS_DURABLE, STREAMS, provision } from '../../src/store/provision.js';

let nats: TestNats;
let jsm: JetStreamManager;
beforeAll(async () => {
  nats = await TestNats.start();
  const mgr = await nats.connect('manager');
  await provision(mgr);
  jsm = await jetstreamManager(mgr);
});
afterAll(async () => nats.dispose());

const ackPending = async (stream: string, durable: string): Promise<number> => (await jsm.consumers.info(stream, durable)).num_ack_pending;

describe('nats.conf roles on nats-server 2.15', () => {
  it('drivers: take a request from their durable and acknowledge it', async () => {
    const mgr = jetstream(await nats.connect('manager'));
    await mgr.publish('imgr.drv.dummy.cp', '{"request":1}');
    const drivers = jetstream(await nats.connect('drivers'));
    const c = await drivers.consumers.get(STREAMS.driver, DRIVERS_DURABLE);
    const m = await c.next({ expires: 5_000 });
    expect(m?.string()).toBe('{"request":1}');
    expect(await m?.ackAck()).toBe(true);
    expect(await ackPending(STREAMS.driver, DRIVERS_DURABLE)).toBe(0);
    expect((await jsm.streams.info(STREAMS.driver)).state.messages).toBe(0);
  });

  it('drivers: cannot bind to, take or acknowledge the commands, nor write the log', async () => {
    await jsm.consumers.add(STREAMS.commands, { durable_name: 'perm-intake', ack_policy: AckPolicy.Explicit });
    const mgrNc = await nats.connect('manager');
    await jetstream(await nats.connect('service')).publish('imgr.cmd.service.image.1', '{"command":1}', { msgID: 'perm-cmd-1' });
    // A plain pull request on an inbox of its own, so the test sees the acknowledgement subject the server chose.
    const inbox = mgrNc.subscribe('_INBOX.manager.perm-test', { max: 1 });
    mgrNc.publish(`$JS.API.CONSUMER.MSG.NEXT.${STREAMS.commands}.perm-intake`, JSON.stringify({ batch: 1, expires: 5e9 }), { reply: '_INBOX.manager.perm-test' });
    let ackSubject = '';
    for await (const m of inbox) ackSubject = m.reply ?? '';
    expect(ackSubject).toMatch(/^\$JS\.ACK\.IMGR_CMD\.perm-intake\./);
    expect(await ackPending(STREAMS.commands, 'perm-intake')).toBe(1);

    const driversNc = await nats.connect('drivers');
    const drivers = jetstream(driversNc);
    await expect(drivers.consumers.get(STREAMS.commands, 'perm-intake')).rejects.toThrow();
    // A forged acknowledgement of the manager's delivery, in the server's subject format, changes nothing.
    driversNc.publish(ackSubject, '+ACK');
    await driversNc.flush();
    await sleep(300);
    expect(await ackPending(STREAMS.commands, 'perm-intake')).toBe(1);
    await expect(drivers.publish('imgr.evt.image.1', '{}', { timeout: 2_000 })).rejects.toThrow();
  });

  it('service: sends commands; cannot read the outcomes bucket (it asks for its own), write the log, the outcomes or the snapshots', async () => {
    const mgrNc = await nats.connect('manager');
    const outcomes = await new Kvm(mgrNc).open(BUCKETS.outcomes);
    await outcomes.put('perm-out-1', '{"status":"accepted"}');
    const nc = await nats.connect('service');
    const service = jetstream(nc);
    await expect(service.publish('imgr.cmd.service.image.2', '{}', { msgID: 'perm-svc-1' })).resolves.toMatchObject({ stream: STREAMS.commands });
    // Neither by key nor by a wildcard subject (a direct get answers one with the last message of any key).
    for (const subject of ['$JS.API.DIRECT.GET.KV_imgr_outcomes.$KV.imgr_outcomes.perm-out-1', '$JS.API.DIRECT.GET.KV_imgr_outcomes.$KV.imgr_outcomes.>', '$JS.API.STREAM.MSG.GET.KV_imgr_outcomes']) {
      await expect(nc.request(subject, '{"seq":1}', { timeout: 2_000 })).rejects.toThrow();
    }
    nc.publish(`$KV.${BUCKETS.outcomes}.perm-out-1`, 'forged');
    await nc.flush();
    expect((await outcomes.get('perm-out-1'))?.string()).toBe('{"status":"accepted"}');
    await expect(service.publish('imgr.evt.image.1', '{}', { timeout: 2_000 })).rejects.toThrow();
    await expect(service.publish(`$KV.${BUCKETS.snapshots}.image.1`, '{}', { timeout: 2_000 })).rejects.toThrow();
    await expect((await jetstreamManager(nc, { checkAPI: false })).streams.purge(STREAMS.commands)).rejects.toThrow();
  });

  it('a principal reads of imgr_meta only the two keys it seals with, and not the raw log', async () => {
    const meta = await new Kvm(await nats.connect('manager')).open(BUCKETS.meta);
    await meta.put('secrets.attributes', '["X"]');
    const nc = await nats.connect('alice');
    const kv = await new Kvm(nc).open(BUCKETS.meta, { allow_direct: true });
    expect((await kv.get('secrets.attributes'))?.string()).toBe('["X"]');
    expect((await sealingInfo(nc)).attributes).toEqual(['X']);
    for (const key of ['principals', 'next.image', 'schema']) await expect(kv.get(key)).rejects.toThrow();
    await expect(nc.request('$JS.API.DIRECT.GET.KV_imgr_meta.$KV.imgr_meta.>', '', { timeout: 2_000 })).rejects.toThrow();
    await expect(nc.request('$JS.API.DIRECT.GET.KV_imgr_meta.$KV.imgr_meta.secrets.*', '', { timeout: 2_000 })).rejects.toThrow();
    // The log is for roles: a principal's subscription to it is refused by the server.
    const mgr = jetstream(await nats.connect('manager'));
    const heard: string[] = [];
    const errors: unknown[] = [];
    nc.subscribe('imgr.evt.>', {
      callback: (e, m) => {
        if (e) errors.push(e);
        else heard.push(m.subject);
      },
    });
    await nc.flush();
    // The server refuses the subscription (the client hears why), and the commit published after it is not heard.
    await eventually(() => errors.length > 0, 'the subscription refused');
    expect(String(errors[0])).toMatch(/Permissions Violation for Subscription to "imgr\.evt\.>"/);
    await mgr.publish('imgr.evt.image.93', '{}');
    await nc.flush();
    expect(heard).toEqual([]);
  });

  it.each(['auditor', 'dashboard'] as const)('%s: reads the log and the views; cannot send commands, write or purge anything', async (role) => {
    const mgr = jetstream(await nats.connect('manager'));
    const subject = `imgr.evt.image.${role === 'auditor' ? 90 : 91}`;
    await mgr.publish(subject, `{"read":"${role}"}`);
    const nc = await nats.connect(role);
    const reader = jetstream(nc);
    const log = await reader.consumers.get(STREAMS.events, { filter_subjects: subject });
    expect((await log.next({ expires: 5_000 }))?.string()).toBe(`{"read":"${role}"}`);
    const meta = await new Kvm(nc).open(BUCKETS.meta);
    expect((await meta.get('schema'))?.string()).toMatch(/^\d+$/);

    await expect(reader.publish('imgr.cmd.service.image.1', '{}', { timeout: 2_000 })).rejects.toThrow();
    await expect(reader.publish('imgr.evt.image.1', '{}', { timeout: 2_000 })).rejects.toThrow();
    await expect(meta.put('schema', '0')).rejects.toThrow();
    const readerJsm = await jetstreamManager(nc, { checkAPI: false });
    await expect(readerJsm.streams.purge(STREAMS.commands)).rejects.toThrow();
    await expect(readerJsm.streams.delete(STREAMS.driver)).rejects.toThrow();
    expect((await jsm.streams.info(STREAMS.events)).state.messages).toBeGreaterThan(0);
  });

  /** Resolves with the server's refusal of a subscription, or 'open' while it stands. */
  const subscribeRefusal = async (role: Role, subject: string): Promise<string> => {
    const nc = await nats.connect(role);
    const sub = nc.subscribe(subject);
    const closed = await Promise.race([sub.closed.then((e) => (e instanceof Error ? e.message : 'closed')), sleep(500).then(() => 'open')]);
    sub.unsubscribe();
    return closed;
  };

  it.each(ROLES.flatMap((role) => ROLES.filter((other) => other !== role).map((other) => [role, other] as const)))('%s cannot read the inbox of %s', async (role, other) => {
    expect(await subscribeRefusal(role, `${inboxPrefixFor(other)}.>`)).toMatch(/Permissions Violation for Subscription/);
  });

  it.each(ROLES.filter((r) => r !== 'manager'))('%s cannot read every inbox at once', async (role) => {
    expect(await subscribeRefusal(role, '_INBOX.>')).toMatch(/Permissions Violation for Subscription/);
    expect(await subscribeRefusal(role, `${inboxPrefixFor(role)}.mine`)).toBe('open');
  });

  it('the manager publishes no command as a service would, so no client can make it re-send one', async () => {
    const mgr = jetstream(await nats.connect('manager'));
    await expect(mgr.publish('imgr.cmd.service.image.1', '{}', { timeout: 2_000 })).rejects.toThrow(/Permissions Violation|timeout/i);
  });

  it.each(['auditor', 'dashboard'] as const)('%s cannot create, bind to, pull from or delete a durable, nor touch a work queue', async (role) => {
    const nc = await nats.connect(role);
    const readerJsm = await jetstreamManager(nc, { checkAPI: false });
    await expect(readerJsm.consumers.add(STREAMS.driver, { durable_name: 'stolen', ack_policy: AckPolicy.Explicit })).rejects.toThrow();
    await expect(readerJsm.consumers.delete(STREAMS.driver, DRIVERS_DURABLE)).rejects.toThrow();
    await expect(readerJsm.consumers.add(STREAMS.events, { durable_name: 'imgr-dispatch', ack_policy: AckPolicy.Explicit })).rejects.toThrow();
    await expect(readerJsm.consumers.delete(STREAMS.events, 'imgr-dispatch')).rejects.toThrow();
    await expect(readerJsm.streams.getMessage(STREAMS.driver, { seq: 1 })).rejects.toThrow();
    await expect(jetstream(nc).consumers.get(STREAMS.driver, DRIVERS_DURABLE).then((c) => c.next({ expires: 1_000 }))).rejects.toThrow();
    expect((await jsm.consumers.info(STREAMS.driver, DRIVERS_DURABLE)).name).toBe(DRIVERS_DURABLE);
  });
});
