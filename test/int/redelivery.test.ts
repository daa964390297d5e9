/**
 * A manager that committed a command but died before storing and sending its
 * outcome: the redelivered command must be answered with that commit, even
 * when a fresh decision would now refuse it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Kvm } from '@nats-io/kv';
import { TestNats } from '../support/nats.js';
import { Manager } from '../../src/manager.js';
import { ImgrClient } from '../../src/client/index.js';
import { silentLogger } from '../../src/platform/logger.js';
import { BUCKETS } from '../../src/store/provision.js';
import { CommandMessageSchema } from '../../src/messages/wire.js';

let nats: TestNats;
beforeAll(async () => {
  nats = await TestNats.start();
});
afterAll(async () => {
  await nats.dispose();
});

describe('redelivery after a crash between commit and answer', () => {
  it('answers with the existing commit instead of refusing the command', async () => {
    const a = await Manager.start({ servers: nats.url, log: silentLogger() });
    const client = await ImgrClient.connect({ servers: nats.url, actor: { uid: 0, gid: 0, name: 'oneadmin' } });
    const ds = await client.nextId('datastore');
    await client.send({ type: 'datastore.create', datastoreId: ds, template: { NAME: 'images', DS_MAD: 'fs', TM_MAD: 'shared' } });
    const id = await client.nextId('image');
    const command = { type: 'image.allocate' as const, imageId: id, datastoreId: ds, template: { NAME: 'ghost', SOURCE: '/s', FORMAT: 'raw', SIZE: '1' } };
    const first = await client.send(command, { commandId: 'ghost-1' });
    expect(first).toMatchObject({ status: 'accepted', state: 'READY' });

    // The crash: the checkpoint covers the commit, but the outcome was never stored.
    await a.host.checkpoint();
    await a.stop();
    await (await new Kvm(await nats.connect('manager')).open(BUCKETS.outcomes)).purge('ghost-1');

    const b = await Manager.start({ servers: nats.url, log: silentLogger() });
    try {
      const msg = CommandMessageSchema.parse({
        envelope: { commandId: 'ghost-1', correlationId: 'ghost-1', causationId: null, actor: { uid: 0, gid: 0, name: 'oneadmin' }, at: 1 },
        command,
        replyTo: null,
      });
      // A fresh decision refuses (IMG_ERR_EXISTS), but the aggregate's last commit is this command's:
      // the host answers with the commit; the intake adds the fingerprint and the sender to what it sends and keeps.
      const { fingerprint: _kept, principal: _sender, ...answer } = first;
      expect(await b.host.execute(msg)).toEqual(answer);
    } finally {
      await client.close();
      await b.stop();
    }
  });
});
