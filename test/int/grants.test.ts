/**
 * Identity only within its grant, and VM bookkeeping only for the VM
 * service, through a real nats-server: each principal is its own NATS user
 * (test/support/nats.ts). `portal` delegates for uids 2-999 in gids 100-199
 * and is not an administrator; `scheduler` delegates likewise and holds the
 * vm-service grant; alice and bob (gid 100) act as themselves.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSystem, type TestSystem } from '../support/system.js';
import { eventually } from '../support/eventually.js';
import { ImgrClient } from '../../src/client/index.js';
import { publishPrincipals } from '../../src/platform/principals-file.js';
import { TEST_PRINCIPALS } from '../support/nats.js';
import type { Outcome } from '../../src/messages/wire.js';

let sys: TestSystem;
let ds: number;
const clients: ImgrClient[] = [];
const as = async (principal: string, actor: { uid: number; gid: number; name: string }): Promise<ImgrClient> => {
  const c = await ImgrClient.connect({ servers: sys.nats.url, principal, actor });
  clients.push(c);
  return c;
};

beforeAll(async () => {
  sys = await startSystem();
  ds = await sys.admin.nextId('datastore');
  await sys.admin.send({ type: 'datastore.create', datastoreId: ds, template: { NAME: 'images', DS_MAD: 'fs', TM_MAD: 'shared' } });
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await sys.stop();
});

describe('a delegate vouches only within its grant', () => {
  it('the attack: portal acting as "carol, gid 0" cannot create a datastore whose SAFE_DIRS is /', async () => {
    const carolAsAdmin = await as('portal', { uid: 500, gid: 0, name: 'carol' });
    const id = await carolAsAdmin.nextId('datastore');
    const o = await carolAsAdmin.send({ type: 'datastore.create', datastoreId: id, template: { NAME: 'everything', DS_MAD: 'fs', TM_MAD: 'shared', SAFE_DIRS: '/' } });
    expect(o).toMatchObject({
      status: 'rejected',
      code: 'CMD_ERR_ACTOR_GRANT',
      message: 'Actor carol (uid 500, gid 0) is outside the grant of principal portal: it may act for uids 2-999 in gids 100-199, and never for uid 0 or gid 0 (it is not an administrator)',
    });
    expect(sys.manager.host.datastore(id)).toBeUndefined();
    // Nor as oneadmin's uid in a granted group.
    expect(await (await as('portal', { uid: 0, gid: 100, name: 'oneadmin' })).send({ type: 'datastore.create', datastoreId: id, template: { NAME: 'x', DS_MAD: 'fs', TM_MAD: 'shared' } })).toMatchObject({ code: 'CMD_ERR_ACTOR_GRANT' });
  });

  it('a uid outside its range is refused; inside it, the user acts and the record names the portal', async () => {
    const outside = await as('portal', { uid: 1000, gid: 100, name: 'mallory' });
    const refused = await outside.register(ds, { NAME: 'not-mine', PATH: '/tmp/a', SIZE: '1' });
    expect(refused).toMatchObject({ status: 'rejected', code: 'CMD_ERR_ACTOR_GRANT', message: expect.stringContaining('Actor mallory (uid 1000, gid 100) is outside the grant of principal portal') as unknown });
    const dave = await as('portal', { uid: 999, gid: 150, name: 'dave' });
    const ok = await dave.register(ds, { NAME: 'daves', PATH: '/tmp/a', SIZE: '1' });
    expect(ok).toMatchObject({ status: 'accepted' });
    const id = ok.status === 'accepted' ? ok.id : -1;
    await eventually(() => sys.manager.host.image(id)?.state === 'READY', 'dave\'s image READY');
    expect(sys.manager.host.image(id)).toMatchObject({ uid: 999, gid: 150 });
  });
});

describe('VM bookkeeping belongs to the VM service', () => {
  it('the attack: a member of the group cannot release the persistent image another VM writes to; the VM service can', async () => {
    const alice = await as('alice', { uid: 7, gid: 100, name: 'alice' });
    const bob = await as('bob', { uid: 8, gid: 100, name: 'bob' });
    const schedulerForAlice = await as('scheduler', { uid: 7, gid: 100, name: 'alice' });
    const portalForBob = await as('portal', { uid: 8, gid: 100, name: 'bob' });
    const o = await alice.register(ds, { NAME: 'alices-disk', PATH: '/tmp/a', SIZE: '1', PERSISTENT: 'YES' });
    const id = o.status === 'accepted' ? o.id : -1;
    await eventually(() => sys.manager.host.image(id)?.state === 'READY', 'READY');
    // alice herself may not tell imgr a VM holds it: the VM service does, acting for her.
    expect(await alice.send({ type: 'image.acquire', imageId: id, vmId: 10, mode: 'deploy' })).toMatchObject({ code: 'AUTH_ERR_VM_SERVICE' });
    expect(await schedulerForAlice.send({ type: 'image.acquire', imageId: id, vmId: 10, mode: 'deploy' })).toMatchObject({ status: 'accepted', state: 'USED_PERS' });

    // bob (USE, through his group) and a delegate without the grant acting for him: refused, the VM keeps its disk.
    expect(await bob.send({ type: 'image.release', imageId: id, vmId: 10 })).toMatchObject({
      status: 'rejected',
      code: 'AUTH_ERR_VM_SERVICE',
      message: `User [8] : Not authorized to perform image.release on IMAGE [${id}]: VM bookkeeping is a VM service's, and principal bob has no vm-service grant.`,
    });
    expect(await portalForBob.send({ type: 'image.release', imageId: id, vmId: 10 })).toMatchObject({ code: 'AUTH_ERR_VM_SERVICE' });
    expect(await bob.send({ type: 'image.setSize', imageId: id, sizeMb: 1 })).toMatchObject({ code: 'AUTH_ERR_VM_SERVICE' });
    expect(sys.manager.host.image(id)).toMatchObject({ state: 'USED_PERS', vms: [10] });

    // A grant forged in the envelope is replaced by the principal's, for one acting as itself and for a delegate.
    const forged = { service: 'scheduler', vmService: true };
    expect(await bob.send({ type: 'image.release', imageId: id, vmId: 10 }, { actor: { uid: 8, gid: 100, name: 'bob', ...forged } })).toMatchObject({ code: 'AUTH_ERR_VM_SERVICE' });
    expect(await portalForBob.send({ type: 'image.release', imageId: id, vmId: 10 }, { actor: { uid: 8, gid: 100, name: 'bob', ...forged } })).toMatchObject({ code: 'AUTH_ERR_VM_SERVICE' });
    expect(sys.manager.host.image(id)).toMatchObject({ state: 'USED_PERS', vms: [10] });

    expect(await schedulerForAlice.send({ type: 'image.release', imageId: id, vmId: 10 })).toMatchObject({ status: 'accepted', state: 'READY' });
  });
});

describe('an inconsistent registry entry is refused, not guessed at', () => {
  it('bob entered in gid 0 without admin: his commands are refused with why; the others go on', async () => {
    const meta = await sys.nats.connect('manager');
    // Written by hand into imgr_meta, past the CLI's checks.
    await publishPrincipals(meta, { ...TEST_PRINCIPALS, bob: { uid: 8, gid: 0, admin: false, delegate: false, uids: [], gids: [], vmService: false } });
    const bob = await as('bob', { uid: 8, gid: 0, name: 'bob' });
    const refused = await eventually(async () => {
      const o: Outcome = await bob.send({ type: 'datastore.create', datastoreId: 900, template: { NAME: 'bobs', DS_MAD: 'fs', TM_MAD: 'shared' } });
      return o.status === 'rejected' && o.code === 'CMD_ERR_PRINCIPAL_REFUSED' ? o : undefined;
    }, 'the registry to refuse bob');
    expect(refused.message).toBe("Principal bob is refused by imgr: gid 0 is the administrators' group: only a principal added with --admin (admin: true) is in it");
    expect(sys.manager.host.datastore(900)).toBeUndefined();
    const alice = await as('alice', { uid: 7, gid: 100, name: 'alice' });
    expect(await alice.register(ds, { NAME: 'still-works', PATH: '/tmp/a', SIZE: '1' })).toMatchObject({ status: 'accepted' });
    await publishPrincipals(meta, TEST_PRINCIPALS);
  });
});
