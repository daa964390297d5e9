/**
 * Public operations end to end through NATS: a real nats-server, the manager,
 * and a responder standing in for the driver host.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { setTimeout as sleep } from 'node:timers/promises';
import { Kvm } from '@nats-io/kv';
import { headers, nanos } from '@nats-io/transport-node';
import { MINTED_ID_HEADER } from '../../src/messages/names.js';
import { TestNats } from '../support/nats.js';
import { DriverResponder } from '../support/driver-responder.js';
import { eventually } from '../support/eventually.js';
import { readLog, unreadableRefusal } from '../support/log.js';
import { Manager } from '../../src/manager.js';
import { ImgrClient } from '../../src/client/index.js';
import { silentLogger } from '../../src/platform/logger.js';
import type { Outcome } from '../../src/messages/wire.js';
import { STREAMS } from '../../src/store/provision.js';
import { RejectionRecordSchema } from '../../src/messages/wire.js';
import { DEFAULT_DRIVER_TIMEOUTS } from '../../src/messages/driver.js';
import { UNREADABLE_KEPT } from '../../src/intake/intake.js';

let nats: TestNats;
let manager: Manager;
let drivers: DriverResponder;
let admin: ImgrClient;
let user: ImgrClient;
let ds: number;

const accepted = (o: Outcome) => {
  if (o.status !== 'accepted') throw new Error(`rejected: ${o.code} ${o.message}`);
  return o;
};

beforeAll(async () => {
  nats = await TestNats.start();
  // MKFS gets a 1 s deadline so that the watchdog test does not wait long.
  manager = await Manager.start({ servers: nats.url, log: silentLogger(), tickMs: 100, config: { watchdogIntervalMs: 100, timeouts: { ...DEFAULT_DRIVER_TIMEOUTS, MKFS: 1 } } });
  drivers = await DriverResponder.start(nats.url);
  admin = await ImgrClient.connect({ servers: nats.url, actor: { uid: 0, gid: 0, name: 'oneadmin', service: 'test' } });
  user = await ImgrClient.connect({ servers: nats.url, actor: { uid: 7, gid: 100, name: 'alice', service: 'test' } });
  ds = await admin.nextId('datastore');
  accepted(await admin.send({ type: 'datastore.create', datastoreId: ds, template: { NAME: 'images', DS_MAD: 'fs', TM_MAD: 'shared' } }));
  await eventually(() => manager.host.datastore(ds)?.monitoredAt !== null, 'first monitor');
});

afterAll(async () => {
  await drivers.stop();
  await admin.close();
  await user.close();
  await manager.stop();
  await nats.dispose();
});

const register = async (name: string, extra: Record<string, string> = {}) => {
  const id = await user.nextId('image');
  const o = accepted(await user.send({ type: 'image.allocate', imageId: id, datastoreId: ds, template: { NAME: name, PATH: '/tmp/x.img', SIZE: '10', ...extra } }));
  expect(o).toMatchObject({ state: 'LOCKED', fact: 'image.registered' });
  await eventually(() => manager.host.image(id)?.state === 'READY', `${name} READY`);
  return id;
};

describe('datastores', () => {
  it('a created datastore is monitored at once', () => {
    expect(manager.host.datastore(ds)).toMatchObject({ totalMb: 1000, freeMb: 900, usedMb: 100, monitorError: null });
    expect(drivers.seen.some((r) => r.action === 'MONITOR' && r.datastoreId === ds)).toBe(true);
  });
  it('ids come from the manager and never repeat', async () => {
    const a = await user.nextId('image');
    const b = await user.nextId('image');
    expect(b).toBe(a + 1);
    expect(await admin.nextId('datastore')).toBeGreaterThanOrEqual(101);
  });
});

describe('image life cycle through NATS', () => {
  it('register from a PATH: LOCKED, CP dispatched with the documents, READY, member of its datastore', async () => {
    const id = await register('disk-a');
    const cp = drivers.seen.find((r) => r.action === 'CP' && r.imageId === id);
    expect(cp?.image).toMatchObject({ id, name: 'disk-a', path: '/tmp/x.img' });
    expect(cp?.datastore).toMatchObject({ id: ds, dsMad: 'fs' });
    expect(manager.host.image(id)).toMatchObject({ source: `${manager.host.datastore(ds)?.basePath ?? ''}/img-${id}`, format: 'raw', uname: 'alice' });
    await eventually(() => manager.host.image(id)?.state === 'READY', 'READY');
    expect(manager.host.imagesIn(ds)).toBeGreaterThan(0);
  });

  it('clone: one command holds the origin while the copy runs; the process manager releases it', async () => {
    const origin = await register('origin-b');
    const target = await user.nextId('image');
    const o = accepted(await user.send({ type: 'image.clone', imageId: target, originId: origin, name: 'copy-b', datastoreId: ds }));
    // The target and its origin's hold are one atomic commit: the origin is USED the moment the clone is accepted.
    expect(o).toMatchObject({ id: target, state: 'LOCKED' });
    expect(manager.host.image(origin)).toMatchObject({ state: 'USED', clones: [target] });
    await eventually(() => manager.host.image(target)?.state === 'READY', 'clone READY');
    await eventually(() => manager.host.image(origin)?.state === 'READY', 'origin released');
    expect(manager.host.image(origin)?.clones).toEqual([]);
  });

  it('VMs acquire and release; a refused command carries its code and text', async () => {
    const id = await register('vm-disk', { PERSISTENT: 'YES' });
    expect(accepted(await user.send({ type: 'image.acquire', imageId: id, vmId: 1, mode: 'deploy' })).state).toBe('USED_PERS');
    expect(await user.send({ type: 'image.acquire', imageId: id, vmId: 2, mode: 'deploy' })).toMatchObject({
      status: 'rejected',
      code: 'IMG_ERR_ACQUIRE_PERSISTENT',
      message: `Cannot acquire image ${id}, it is persistent and already in use`,
    });
    expect(accepted(await user.send({ type: 'image.release', imageId: id, vmId: 1 })).state).toBe('READY');
  });

  it('delete: DELETE, RM, then the record is gone and the datastore forgets it', async () => {
    const before = manager.host.imagesIn(ds);
    const id = await register('doomed');
    expect(manager.host.imagesIn(ds)).toBe(before + 1);
    expect(accepted(await user.send({ type: 'image.delete', imageId: id })).state).toBe('DELETE');
    await eventually(() => manager.host.image(id)?.state === 'REMOVED', 'removed');
    expect(manager.host.imagesIn(ds)).toBe(before);
    expect(await user.send({ type: 'image.enable', imageId: id })).toMatchObject({ status: 'rejected', code: 'IMG_ERR_REMOVED' });
  });

  it('W1: a driver that never answers is timed out by the watchdog', async () => {
    drivers.set('MKFS', 'silent');
    try {
      const id = await user.nextId('image');
      accepted(await user.send({ type: 'image.allocate', imageId: id, datastoreId: ds, template: { NAME: 'blank', SIZE: '1' } }));
      await eventually(() => manager.host.image(id)?.state === 'ERROR', 'timed out');
      expect(manager.host.image(id)?.error).toMatch(/Driver action MKFS timed out after 1 s/);
    } finally {
      drivers.set('MKFS', 'succeed');
    }
  });
});

describe('client reads', () => {
  it('queries a view and follows an image\'s commits (the log is a role\'s to follow: here the auditor\'s)', async () => {
    const id = await register('watched');
    const seen: string[] = [];
    const auditor = await ImgrClient.connect({ servers: nats.url, role: 'auditor', actor: { uid: 0, gid: 0, name: 'auditor' } });
    const stop = auditor.watchImage(id, (c) => seen.push(...c.facts.map((f) => `${f.type}:${f.state}`)));
    try {
      accepted(await user.send({ type: 'image.disable', imageId: id }));
      await eventually(() => seen.length > 0, 'a watched commit');
      expect(seen).toEqual(['image.disabled:DISABLED']);
      expect(await user.image(id)).toMatchObject({ id, state: 'DISABLED', name: 'watched' });
      expect(await user.image(987_654)).toBeNull();
      expect(await user.datastore(ds)).toMatchObject({ id: ds, name: 'images', state: 'READY' });
    } finally {
      stop();
      await auditor.close();
    }
  });
});

describe('idempotency and bad input', () => {
  it('the same command id twice returns the first outcome and commits nothing new', async () => {
    const id = await register('twice');
    const first = accepted(await user.send({ type: 'image.disable', imageId: id }, { commandId: 'same-id-1' }));
    const second = await user.send({ type: 'image.disable', imageId: id }, { commandId: 'same-id-1' });
    expect(second).toEqual(first);
    const log = await readLog(await nats.connect('manager'), `imgr.evt.image.${id}`);
    expect(log.filter((c) => c.commit.commandId === 'same-id-1').map((c) => c.seq)).toEqual([first.seq]);
  });

  it('a command id used again for another command is refused, in the de-duplication window and beyond it', async () => {
    const id = await register('reuse');
    const first = accepted(await user.send({ type: 'image.disable', imageId: id }, { commandId: 'reuse-1' }));
    // Inside the window JetStream drops the second message; the client sees the fingerprints differ.
    expect(await user.send({ type: 'image.enable', imageId: id }, { commandId: 'reuse-1' })).toMatchObject({
      status: 'rejected',
      code: 'CMD_ERR_ID_REUSED',
      message: 'Command id reuse-1 was already used for a different command',
    });
    // Beyond it (here: another JetStream msgID) the intake compares and refuses, keeping the first outcome.
    const nc = await nats.connect('service');
    const inbox = `_INBOX.service.reuse.${Math.random().toString(36).slice(2)}`;
    const sub = nc.subscribe(inbox, { max: 1, timeout: 20_000 });
    await jetstream(nc).publish(`imgr.cmd.service.image.${id}`, JSON.stringify({ envelope: { ...envelope('reuse-1'), actor: user.actor }, command: { type: 'image.enable', imageId: id }, replyTo: inbox }), { msgID: 'reuse-1-later' });
    let later: Outcome | undefined;
    for await (const m of sub) later = m.json<Outcome>();
    expect(later).toMatchObject({ status: 'rejected', code: 'CMD_ERR_ID_REUSED' });
    expect((await user.image(id))?.state).toBe('DISABLED');
    expect(await user.send({ type: 'image.disable', imageId: id }, { commandId: 'reuse-1' })).toEqual(first);
  });

  const raw = async (subject: string, body: string) => {
    const nc = await nats.connect('service');
    const inbox = `_INBOX.service.raw.${Math.random().toString(36).slice(2)}`;
    const sub = nc.subscribe(inbox, { max: 1, timeout: 20_000 });
    await jetstream(nc).publish(subject, body.replace('$REPLY', inbox));
    for await (const m of sub) return m.json<Outcome>();
    throw new Error('no reply');
  };
  const envelope = (commandId: string) => ({ commandId, correlationId: commandId, causationId: null, actor: { uid: 7, gid: 100, name: 'alice' }, at: 1 });

  /** A command published raw, as `actor`, with JetStream msgID `msgID` and, when `minted`, the header that says its id is new. */
  const publishAs = async (actor: { uid: number; gid: number; name: string }, commandId: string, command: object, o: { minted: boolean; msgID: string }) => {
    const nc = await nats.connect('service');
    const inbox = `_INBOX.service.as.${Math.random().toString(36).slice(2)}`;
    const sub = nc.subscribe(inbox, { max: 1, timeout: 20_000 });
    const h = headers();
    if (o.minted) h.set(MINTED_ID_HEADER, '1');
    await jetstream(nc).publish(`imgr.cmd.service.image.${(command as { imageId: number }).imageId}`, JSON.stringify({ envelope: { ...envelope(commandId), actor }, command, replyTo: inbox }), { msgID: o.msgID, headers: h });
    for await (const m of sub) return m.json<Outcome>();
    throw new Error('no reply');
  };

  it('a command whose sender minted its id is decided without looking up a stored outcome; any other is looked up first', async () => {
    const id = await register('minted');
    // An outcome planted under two ids: only a lookup can find it.
    const kv = await new Kvm(await nats.connect('manager')).open('imgr_outcomes');
    const planted = { status: 'rejected', commandId: '', code: 'CMD_ERR_MALFORMED', message: 'planted' };
    for (const cid of ['planted-minted', 'planted-given']) await kv.put(cid, JSON.stringify({ ...planted, commandId: cid }));
    const alice = { uid: 7, gid: 100, name: 'alice' };
    const minted = await publishAs(alice, 'planted-minted', { type: 'image.disable', imageId: id }, { minted: true, msgID: 'planted-minted' });
    expect(minted).toMatchObject({ status: 'accepted', fact: 'image.disabled' });
    const given = await publishAs(alice, 'planted-given', { type: 'image.enable', imageId: id }, { minted: false, msgID: 'planted-given' });
    expect(given).toMatchObject({ status: 'rejected', message: 'planted' });
    expect((await user.image(id))?.state).toBe('DISABLED');
  });

  it('an id another actor committed under is refused as a reuse even when its sender claims to have minted it', async () => {
    const id = await register('taken');
    const first = accepted(await user.send({ type: 'image.disable', imageId: id }, { commandId: 'taken-by-alice' }));
    const bobs = await register('bobs');
    // Beyond the stream's de-duplication window (shortened to a second here), bob claims the id as new.
    const jsm = await jetstreamManager(await nats.connect('manager'));
    const window = (await jsm.streams.info(STREAMS.commands)).config.duplicate_window;
    await jsm.streams.update(STREAMS.commands, { duplicate_window: nanos(1000) });
    await sleep(1500);
    const later = await publishAs({ uid: 8, gid: 100, name: 'bob' }, 'taken-by-alice', { type: 'image.disable', imageId: bobs }, { minted: true, msgID: 'taken-by-alice' }).finally(() => jsm.streams.update(STREAMS.commands, { duplicate_window: window }));
    expect(later).toMatchObject({ status: 'rejected', code: 'CMD_ERR_ID_REUSED' });
    expect(later).not.toMatchObject({ id: first.id });
    expect((await user.image(bobs))?.state).toBe('READY');
    const log = await readLog(await nats.connect('manager'));
    expect(log.filter((c) => c.commit.commandId === 'taken-by-alice').map((c) => c.seq)).toEqual([first.seq]);
  });

  it('malformed JSON is refused, acknowledged and recorded, and nothing crashes', async () => {
    const nc = await nats.connect('service');
    await jetstream(nc).publish('imgr.cmd.service.image.1', '{not json');
    const js = jetstream(await nats.connect('manager'));
    const rec = await eventually(async () => {
      const c = await js.consumers.get(STREAMS.rejected, { filter_subjects: 'imgr.rej.unknown.unknown' });
      const m = await c.next({ expires: 1000 });
      return m ? { rec: RejectionRecordSchema.parse(m.json()), ttl: m.headers?.get('Nats-TTL') } : undefined;
    }, 'rejection record');
    expect(rec.rec).toMatchObject({ code: 'CMD_ERR_MALFORMED', subject: 'imgr.cmd.service.image.1', command: '{not json' });
    // What cannot be read is kept a week, not for ever (per-message TTL on IMGR_REJ).
    expect(rec.ttl).toBe(UNREADABLE_KEPT);
  });

  it('an unknown command type, wrong field types and a wrong subject get clear refusals', async () => {
    const unknown = await raw('imgr.cmd.service.image.1', JSON.stringify({ envelope: envelope('bad-1'), command: { type: 'image.explode', imageId: 1 }, replyTo: '$REPLY' }));
    expect(unknown).toMatchObject({ status: 'rejected', code: 'CMD_ERR_INVALID', commandId: 'bad-1' });
    expect(unknown.status === 'rejected' && unknown.message).toMatch(/command\.type/);
    const types = await raw('imgr.cmd.service.image.1', JSON.stringify({ envelope: envelope('bad-2'), command: { type: 'image.acquire', imageId: 'one', vmId: 1, mode: 'deploy' }, replyTo: '$REPLY' }));
    expect(types).toMatchObject({ status: 'rejected', code: 'CMD_ERR_INVALID' });
    const subject = await raw('imgr.cmd.service.image.2', JSON.stringify({ envelope: envelope('bad-3'), command: { type: 'image.enable', imageId: 1 }, replyTo: '$REPLY' }));
    expect(subject).toMatchObject({ status: 'rejected', code: 'CMD_ERR_SUBJECT', message: 'Command published on imgr.cmd.service.image.2 belongs on imgr.cmd.service.image.1' });
  });

  it('the manager answers only on inboxes: a replyTo on a JetStream API, KV or log subject, or with a space, is refused and nothing is published there', async () => {
    const mgr = await nats.connect('manager');
    const js = jetstream(mgr);
    const outcomesBefore = (await js.jetstreamManager()).streams.info('KV_imgr_outcomes');
    const logBefore = (await (await js.jetstreamManager()).streams.info(STREAMS.events)).state.last_seq;
    const watched = mgr.subscribe('$JS.API.STREAM.PURGE.>');
    const forged = ['$JS.API.STREAM.PURGE.KV_imgr_outcomes', '$KV.imgr_meta.next.image', 'imgr.evt.image.1', '_INBOX.a b', '_INBOX.>'];
    const service = jetstream(await nats.connect('service'));
    for (const [i, replyTo] of forged.entries()) {
      const commandId = `forged-reply-${i}`;
      await service.publish('imgr.cmd.service.image.1', JSON.stringify({ envelope: envelope(commandId), command: { type: 'image.enable', imageId: 1 }, replyTo }), { msgID: commandId });
    }
    const kv = await new Kvm(mgr).open('imgr_outcomes');
    for (const [i] of forged.entries()) {
      const rec = await unreadableRefusal(mgr, `forged-reply-${i}`);
      expect(rec).toMatchObject({ code: 'CMD_ERR_INVALID' });
      expect(rec.message).toMatch(/replyTo/);
      expect(await kv.get(`forged-reply-${i}`)).toBeNull();
    }
    expect(watched.getProcessed()).toBe(0);
    watched.unsubscribe();
    expect((await (await js.jetstreamManager()).streams.info('KV_imgr_outcomes')).state.messages).toBeGreaterThanOrEqual((await outcomesBefore).state.messages);
    // Refused commands commit nothing, and nothing else reached the log.
    expect((await (await js.jetstreamManager()).streams.info(STREAMS.events)).state.last_seq).toBe(logBefore);
  });

  it('internal commands: the server refuses them to a service, the intake refuses them on a service subject, and reserved ids cannot be claimed', async () => {
    const id = await register('internal');
    const before = await user.image(id);
    const service = jetstream(await nats.connect('service'));
    const reply = { type: 'driver.reply', imageId: id, requestId: 'forged-1', action: 'CP', result: 'SUCCESS', info: '/etc/shadow raw' };
    // 1. imgr's own subject is closed to services by nats.conf.
    await expect(service.publish(`imgr.int.image.${id}`, JSON.stringify({ envelope: envelope('imgr.reply-forged-1'), command: reply }), { timeout: 2_000 })).rejects.toThrow();
    // 2. On a service's subject an internal command is refused, and changes nothing.
    const forged = await raw(`imgr.cmd.service.image.${id}`, JSON.stringify({ envelope: envelope('forged-reply-cmd'), command: reply, replyTo: '$REPLY' }));
    expect(forged).toMatchObject({ status: 'rejected', code: 'CMD_ERR_INTERNAL', message: 'Command driver.reply is internal to imgr; services cannot send it' });
    for (const type of ['driver.timeout', 'datastore.monitored', 'image.allocateBackup', 'image.addIncrement']) {
      const command =
        type === 'datastore.monitored'
          ? { type, datastoreId: ds, result: 'SUCCESS', info: btoa('TOTAL_MB=1\nFREE_MB=1\nUSED_MB=0') }
          : type === 'image.allocateBackup'
            ? { type, imageId: 90_000, datastoreId: ds, vmId: 1, source: 'x', sizeMb: 1, format: 'raw', diskIds: [0], incremental: false, owner: { uid: 7, gid: 100, uname: 'alice', gname: 'users' } }
            : type === 'image.addIncrement'
              ? { type, imageId: id, source: 'x', sizeMb: 1 }
              : { type, imageId: id, requestId: 'forged-2' };
      const subject = type === 'datastore.monitored' ? `imgr.cmd.service.datastore.${ds}` : `imgr.cmd.service.image.${command.imageId ?? id}`;
      const o = await raw(subject, JSON.stringify({ envelope: envelope(`forged-${type}`), command, replyTo: '$REPLY' }));
      expect(o, type).toMatchObject({ status: 'rejected', code: 'CMD_ERR_INTERNAL' });
    }
    // 3. The id imgr will give its timeout of a request cannot be taken first.
    const squat = await raw(`imgr.cmd.service.image.${id}`, JSON.stringify({ envelope: envelope('imgr.timeout-req-1'), command: { type: 'image.disable', imageId: id }, replyTo: '$REPLY' }));
    expect(squat).toMatchObject({ status: 'rejected', code: 'CMD_ERR_RESERVED_ID', message: 'Command id imgr.timeout-req-1 is reserved: ids starting with "imgr." are imgr\'s own' });
    expect(await user.image(id)).toEqual(before);
  });

  it('W12: a registration that needs a STAT while no driver host runs is refused with the reason', async () => {
    const id = await user.nextId('image');
    expect(await user.send({ type: 'image.allocate', imageId: id, datastoreId: ds, template: { NAME: 'unsized', PATH: '/tmp/x.img' } })).toMatchObject({
      status: 'rejected',
      code: 'IMG_ERR_STAT_FAILED',
      message: 'Cannot determine image SIZE: no driver host is running',
    });
  });

  it('an unknown image id is refused with the spec text', async () => {
    expect(await user.send({ type: 'image.enable', imageId: 99_999 })).toMatchObject({ status: 'rejected', code: 'IMG_ERR_NOT_FOUND', message: 'Error getting image [99999].' });
  });
});
