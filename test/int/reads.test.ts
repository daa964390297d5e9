/**
 * Reads follow USE: a principal sees the views, listings and outcomes of
 * what it may USE (its own images and its group's), as OpenNebula shows a
 * user only that; administrators and the operators' roles (auditor,
 * dashboard) keep the whole picture. Another's image is "not found", as one
 * that does not exist.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSystem, type TestSystem } from '../support/system.js';
import { eventually } from '../support/eventually.js';
import { ImgrClient } from '../../src/client/index.js';
import { querySubjects } from '../../src/messages/queries.js';
import { z } from 'zod';

let sys: TestSystem;
const clients: Record<string, ImgrClient> = {};
let aliceImage: number;
let aliceCommand: string;
let ds: number;

beforeAll(async () => {
  sys = await startSystem();
  for (const [name, uid, gid] of [['alice', 7, 100], ['bob', 8, 100], ['mallory', 9, 200], ['oneadmin', 0, 0]] as const) {
    clients[name] = await ImgrClient.connect({ servers: sys.nats.url, principal: name, actor: { uid, gid, name } });
  }
  ds = await sys.admin.nextId('datastore');
  await sys.admin.send({ type: 'datastore.create', datastoreId: ds, template: { NAME: 'shared', DS_MAD: 'dummy', TM_MAD: 'dummy' } });
  const alice = clients['alice'] as ImgrClient;
  aliceImage = await alice.nextId('image');
  aliceCommand = 'reads-alice-allocate';
  await alice.send({ type: 'image.allocate', imageId: aliceImage, datastoreId: ds, template: { NAME: 'alices', PATH: '/tmp/x', SIZE: '1' } }, { commandId: aliceCommand });
  const mallory = clients['mallory'] as ImgrClient;
  await mallory.send({ type: 'image.allocate', imageId: await mallory.nextId('image'), datastoreId: ds, template: { NAME: 'mallorys', PATH: '/tmp/x', SIZE: '1' } });
  await eventually(() => sys.manager.host.image(aliceImage)?.state === 'READY', 'READY');
  await sys.settled();
});

afterAll(async () => {
  for (const c of Object.values(clients)) await c.close();
  await sys.stop();
});

const client = (name: string): ImgrClient => clients[name] as ImgrClient;
const names = async (c: ImgrClient): Promise<string[]> => (await c.images()).items.map((v) => v.name).sort();

describe('reads follow USE', () => {
  it('a view: the owner and its group see the image; another user does not, as if it did not exist', async () => {
    expect((await client('alice').image(aliceImage))?.name).toBe('alices');
    expect((await client('bob').image(aliceImage))?.name).toBe('alices');
    expect(await client('mallory').image(aliceImage)).toBeNull();
    expect(await client('mallory').image(987_654)).toBeNull();
    expect((await client('oneadmin').image(aliceImage))?.name).toBe('alices');
  });

  it('a listing: what each may USE, and its total counts only that', async () => {
    expect(await names(client('alice'))).toEqual(['alices']);
    expect(await names(client('mallory'))).toEqual(['mallorys']);
    expect((await client('mallory').images()).total).toBe(1);
    expect(await names(client('oneadmin'))).toEqual(['alices', 'mallorys']);
    // Every principal sees the datastores: any may register into one.
    expect((await client('mallory').datastores()).map((d) => d.name)).toContain('shared');
  });

  it.each(['auditor', 'dashboard'] as const)('the %s role sees every image', async (role) => {
    const nc = await sys.nats.connect(role);
    const answer = z.object({ items: z.array(z.object({ name: z.string() })) }).parse((await nc.request(querySubjects.images(role), '', { timeout: 10_000 })).json());
    expect(answer.items.map((v) => v.name).sort()).toEqual(['alices', 'mallorys']);
    const view = (await nc.request(querySubjects.view(role, 'image', aliceImage), '', { timeout: 10_000 })).json<{ name: string } | null>();
    expect(view?.name).toBe('alices');
  });

  it('a delegate reads as the user it acts for, within its grant only', async () => {
    const as = async (uid: number, gid: number): Promise<ImgrClient> => {
      const c = await ImgrClient.connect({ servers: sys.nats.url, principal: 'portal', actor: { uid, gid, name: `u${uid}` } });
      clients[`portal-${uid}-${gid}`] = c;
      return c;
    };
    // The portal acts for uids 2-999 in gids 100-199: alice (7:100) is within, mallory (9:200) is not.
    expect((await (await as(7, 100)).image(aliceImage))?.name).toBe('alices');
    expect(await names(await as(7, 100))).toEqual(['alices']);
    expect(await (await as(9, 200)).image(aliceImage)).toBeNull();
    expect(await names(await as(9, 200))).toEqual([]);
    // Claiming the oneadmin group (or uid 0) is refused to a delegate that is no administrator.
    expect(await names(await as(0, 0))).toEqual([]);
    expect(await names(await as(7, 0))).toEqual([]);
    // As itself (1:1) it owns nothing.
    expect(await names(await as(1, 1))).toEqual([]);
    // The claim travels in a header: a raw query without it reads as the portal itself.
    const raw = await sys.nats.connect('portal');
    expect((await raw.request(querySubjects.view('portal', 'image', aliceImage), '', { timeout: 10_000 })).json()).toBeNull();
  });

  it('an outcome is read again only by the principal that sent the command (and administrators)', async () => {
    expect(await client('alice').storedOutcome(aliceCommand, 5_000)).toMatchObject({ status: 'accepted', id: aliceImage, principal: 'alice' });
    expect(await client('oneadmin').storedOutcome(aliceCommand, 5_000)).toMatchObject({ status: 'accepted', id: aliceImage });
    await expect(client('mallory').storedOutcome(aliceCommand, 300)).rejects.toMatchObject({ code: 'IMGR_TIMEOUT' });
    await expect(client('bob').storedOutcome(aliceCommand, 300)).rejects.toMatchObject({ code: 'IMGR_TIMEOUT' });
  });

  it('a repeated command id is still answered with its first outcome to its sender', async () => {
    const again = await client('alice').send({ type: 'image.allocate', imageId: aliceImage, datastoreId: ds, template: { NAME: 'alices', PATH: '/tmp/x', SIZE: '1' } }, { commandId: aliceCommand });
    expect(again).toMatchObject({ status: 'accepted', id: aliceImage });
  });
});
