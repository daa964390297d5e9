/**
 * Identity from authentication: a principal is what NATS authenticated, by
 * the subject the server let it publish on; the envelope's actor is only a
 * hint that must match. Two principals, alice and bob, try to pass for each
 * other and for the administrator.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import { jetstream } from '@nats-io/jetstream';
import { TEST_PRINCIPALS, TestNats } from '../support/nats.js';
import { Manager } from '../../src/manager.js';
import { ImgrClient } from '../../src/client/index.js';
import { silentLogger } from '../../src/platform/logger.js';
import { inboxPrefixFor } from '../../src/platform/nats.js';
import { publishPrincipals } from '../../src/platform/principals-file.js';
import { eventually } from '../support/eventually.js';
import { readLog, unreadableRefusal } from '../support/log.js';
import type { Outcome } from '../../src/messages/wire.js';

let nats: TestNats;
let manager: Manager;
let admin: ImgrClient;
let alice: ImgrClient;
let bob: ImgrClient;
let ds: number;

beforeAll(async () => {
  nats = await TestNats.start();
  manager = await Manager.start({ servers: nats.url, log: silentLogger() });
  admin = await ImgrClient.connect({ servers: nats.url, principal: 'oneadmin', actor: { uid: 0, gid: 0, name: 'oneadmin' } });
  alice = await ImgrClient.connect({ servers: nats.url, principal: 'alice', actor: { uid: 7, gid: 100, name: 'alice' } });
  bob = await ImgrClient.connect({ servers: nats.url, principal: 'bob', actor: { uid: 8, gid: 100, name: 'bob' } });
  ds = await admin.nextId('datastore');
  await admin.send({ type: 'datastore.create', datastoreId: ds, template: { NAME: 'images', DS_MAD: 'dummy', TM_MAD: 'dummy' } });
});
afterAll(async () => {
  await Promise.all([admin.close(), alice.close(), bob.close()]);
  await manager.stop();
  await nats.dispose();
});

const envelope = (commandId: string, actor: { uid: number; gid: number; name: string }) => ({ commandId, correlationId: commandId, causationId: null, actor, at: 1 });

describe('principals bound to NATS authentication', () => {
  it('a principal acts as itself: the facts record who NATS authenticated', async () => {
    const id = await alice.nextId('image');
    const o = await alice.send({ type: 'image.allocate', imageId: id, datastoreId: ds, template: { NAME: 'mine', PATH: '/tmp/a', SIZE: '1' } });
    expect(o).toMatchObject({ status: 'accepted' });
    const [first] = await readLog(await nats.connect('manager'), `imgr.evt.image.${id}`);
    expect(first?.commit.actor).toEqual({ uid: 7, gid: 100, name: 'alice', service: 'alice' });
  });

  it('claiming to be the administrator or another user is refused, whatever the envelope says', async () => {
    const id = await alice.nextId('image');
    const asAdmin = await alice.send({ type: 'image.allocate', imageId: id, datastoreId: ds, template: { NAME: 'root', SOURCE: '/etc/shadow', FORMAT: 'raw', SIZE: '1' } }, { actor: { uid: 0, gid: 0, name: 'oneadmin', service: 'x' } });
    expect(asAdmin).toMatchObject({ status: 'rejected', code: 'CMD_ERR_ACTOR', message: 'Actor oneadmin (uid 0, gid 0) is not the authenticated principal alice' });
    const asBob = await alice.send({ type: 'image.disable', imageId: id }, { actor: { uid: 8, gid: 100, name: 'bob', service: 'x' } });
    expect(asBob).toMatchObject({ status: 'rejected', code: 'CMD_ERR_ACTOR' });
    expect(manager.host.image(id)).toBeUndefined();
  });

  it("one principal cannot manage the other's image; the group may use it", async () => {
    const id = await alice.nextId('image');
    expect(await alice.send({ type: 'image.allocate', imageId: id, datastoreId: ds, template: { NAME: 'alices', PATH: '/tmp/a', SIZE: '1' } })).toMatchObject({ status: 'accepted' });
    await eventually(() => manager.host.image(id)?.state === 'LOCKED', 'registered');
    expect(await bob.send({ type: 'image.delete', imageId: id })).toMatchObject({ status: 'rejected', code: 'AUTH_ERR_NOT_AUTHORIZED', message: `User [8] : Not authorized to perform MANAGE IMAGE [${id}].` });
    expect(await bob.send({ type: 'image.setPersistent', imageId: id, persistent: true })).toMatchObject({ code: 'AUTH_ERR_NOT_AUTHORIZED' });
    // bob may use it (he is in alice's group), but a VM's use is the VM service's to tell (test/int/grants.test.ts).
    expect(await bob.send({ type: 'image.acquire', imageId: id, vmId: 4, mode: 'attach' })).toMatchObject({ code: 'AUTH_ERR_VM_SERVICE' });
    expect(await bob.send({ type: 'datastore.create', datastoreId: 77, template: { NAME: 'bobs', DS_MAD: 'dummy', TM_MAD: 'dummy' } })).toMatchObject({ code: 'AUTH_ERR_NOT_AUTHORIZED', message: 'User [8] : Not authorized to perform ADMIN DATASTORE [77].' });
  });

  it("the server refuses a principal the subjects of another, and the manager answers no other's inbox", async () => {
    const nc = await nats.connect('alice');
    const js = jetstream(nc);
    const cmd = (replyTo: string | null) => JSON.stringify({ envelope: envelope(`alice-${replyTo ?? 'none'}`, { uid: 7, gid: 100, name: 'alice' }), command: { type: 'image.enable', imageId: 1 }, replyTo });
    await expect(js.publish('imgr.cmd.bob.image.1', cmd(null), { timeout: 2_000 })).rejects.toThrow();
    await expect(js.publish('imgr.cmd.oneadmin.image.1', cmd(null), { timeout: 2_000 })).rejects.toThrow();
    // A replyTo on bob's inbox: bob hears nothing, alice's command is refused and recorded.
    const bobNc = await nats.connect('bob');
    const bobInbox = `${inboxPrefixFor('bob')}.spied`;
    const heard: string[] = [];
    bobNc.subscribe(bobInbox, {
      callback: (_e, m) => {
        heard.push(m.string());
      },
    });
    await js.publish('imgr.cmd.alice.image.1', cmd(bobInbox));
    const rec = await unreadableRefusal(await nats.connect('manager'), `alice-${bobInbox}`);
    expect(rec).toMatchObject({ code: 'CMD_ERR_REPLY_TO', message: `Reply subject ${bobInbox} is not an inbox of principal alice` });
    await sleep(300);
    expect(heard).toEqual([]);
  });

  it('a principal the manager does not know is refused, and known again once it is added back', async () => {
    // Its id first: an unknown principal gets no id either.
    const id = await bob.nextId('image');
    await publishPrincipals(await nats.connect('manager'), Object.fromEntries(Object.entries(TEST_PRINCIPALS).filter(([n]) => n !== 'bob')));
    const refused = await eventually(async () => {
      const o: Outcome = await bob.send({ type: 'image.allocate', imageId: id, datastoreId: ds, template: { NAME: 'bobs', PATH: '/tmp/b', SIZE: '1' } });
      return o.status === 'rejected' ? o : undefined;
    }, 'the registry to drop bob');
    expect(refused).toMatchObject({ code: 'CMD_ERR_PRINCIPAL', message: 'Principal bob is not known to imgr' });
    await publishPrincipals(await nats.connect('manager'), TEST_PRINCIPALS);
    await eventually(async () => (await bob.send({ type: 'image.allocate', imageId: id, datastoreId: ds, template: { NAME: 'bobs', PATH: '/tmp/b', SIZE: '1' } })).status === 'accepted', 'bob known again');
  });
});
