/**
 * Orphaned sources (the faults issue, cause 8): a creation whose success
 * arrives after its image gave up on it (timed out, deleted) leaves a file
 * nobody owns. The image's machine records it (`datastore.orphanSource`) and
 * the dispatcher turns that into an RM of exactly that file.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestNats } from '../support/nats.js';
import { DriverResponder } from '../support/driver-responder.js';
import { eventually } from '../support/eventually.js';
import { readLog } from '../support/log.js';
import { Manager } from '../../src/manager.js';
import { ImgrClient } from '../../src/client/index.js';
import { Publisher } from '../../src/reactors/publish.js';
import { silentLogger } from '../../src/platform/logger.js';

let nats: TestNats;
let manager: Manager;
let drivers: DriverResponder;
let c: ImgrClient;

beforeAll(async () => {
  nats = await TestNats.start();
  manager = await Manager.start({ servers: nats.url, log: silentLogger() });
  drivers = await DriverResponder.start(nats.url);
  c = await ImgrClient.connect({ servers: nats.url, actor: { uid: 0, gid: 0, name: 'oneadmin' } });
});
afterAll(async () => {
  await c.close();
  await drivers.stop();
  await manager.stop();
  await nats.dispose();
});

describe('a late creation success', () => {
  it('for a removed image: the file it names is removed through the driver, and the log says why', async () => {
    const ds = await c.nextId('datastore');
    await c.send({ type: 'datastore.create', datastoreId: ds, template: { NAME: 'reclaim', DS_MAD: 'dummy', TM_MAD: 'dummy' } });
    const id = await c.nextId('image');
    await c.send({ type: 'image.allocate', imageId: id, datastoreId: ds, template: { NAME: 'late', PATH: '/srv/late.img', SIZE: '1' } }, { commandId: 'late-cp' });
    await eventually(() => manager.host.image(id)?.state === 'READY', 'READY');
    await c.send({ type: 'image.delete', imageId: id });
    await eventually(() => manager.host.image(id)?.state === 'REMOVED', 'REMOVED');

    // A second run of the first copy (its host died before the reply, the script went on) reports another file.
    const orphan = `/var/lib/one/datastores/${ds}/late-second-copy`;
    const host = await nats.connect('drivers');
    await new Publisher(host, 'driver-host').command({ type: 'driver.reply', imageId: id, requestId: 'late-cp', action: 'CP', result: 'SUCCESS', info: `${orphan} raw` }, 'late-reply-2', null, Date.now());

    const rm = await eventually(() => drivers.seen.find((r) => r.action === 'RM' && r.image?.source === orphan), 'an RM of the orphan');
    expect(rm).toMatchObject({ imageId: id, datastoreId: ds });
    const log = await readLog(await nats.connect('manager'), `imgr.evt.image.${id}`);
    const recorded = log.flatMap((l) => (l.commit.aggregate === 'image' ? l.commit.facts : [])).filter((f) => f.effects.some((e) => e.kind === 'datastore.orphanSource'));
    expect(recorded).toMatchObject([{ type: 'image.replyIgnored', effects: [{ kind: 'datastore.orphanSource', source: orphan }] }]);
  });
});
