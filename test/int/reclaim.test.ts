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
import { subjects } from '../../src/messages/wire.js';
import { silentLogger } from '../../src/platform/logger.js';
import { DEFAULT_DRIVER_TIMEOUTS } from '../../src/messages/driver.js';

let nats: TestNats;
let manager: Manager;
let drivers: DriverResponder;
let c: ImgrClient;

beforeAll(async () => {
  nats = await TestNats.start();
  // A copy times out in 1 s: its image gives up on it (ERROR), and the request is abandoned.
  manager = await Manager.start({ servers: nats.url, log: silentLogger(), tickMs: 100, config: { timeouts: { ...DEFAULT_DRIVER_TIMEOUTS, CP: 1 } } });
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
  it('for an image that gave up on its copy: the file it names is removed through the driver, and the log says why', async () => {
    const ds = await c.nextId('datastore');
    await c.send({ type: 'datastore.create', datastoreId: ds, template: { NAME: 'reclaim', DS_MAD: 'fs', TM_MAD: 'shared' } });
    // Its copy never answers in time: the image gives up on it.
    drivers.set('CP', 'silent');
    const id = await c.nextId('image');
    let requestId = '';
    try {
      await c.send({ type: 'image.allocate', imageId: id, datastoreId: ds, template: { NAME: 'late', PATH: '/srv/late.img', SIZE: '1' } });
      requestId = await eventually(() => (manager.host.image(id)?.pending?.action === 'CP' ? manager.host.image(id)?.pending?.requestId : undefined), 'the copy under way');
      await eventually(() => manager.host.image(id)?.state === 'ERROR', 'the copy timed out');
    } finally {
      drivers.set('CP', 'succeed');
    }

    // The copy's script went on and reports its file after all: nobody owns it.
    const orphan = `${manager.config.drivers.datastoreLocation}/${ds}/late-copy`;
    const host = await nats.connect('drivers');
    await new Publisher(host, 'driver-host', subjects.driverReply).command({ type: 'driver.reply', imageId: id, requestId, action: 'CP', result: 'SUCCESS', info: `${orphan} raw` }, `reply-${requestId}`, null, Date.now());

    const rm = await eventually(() => drivers.seen.find((r) => r.action === 'RM' && r.image?.source === orphan), 'an RM of the orphan');
    expect(rm).toMatchObject({ imageId: id, datastoreId: ds });
    const log = await readLog(await nats.connect('manager'), `imgr.evt.image.${id}`);
    const recorded = log.flatMap((l) => (l.commit.aggregate === 'image' ? l.commit.facts : [])).filter((f) => f.effects.some((e) => e.kind === 'datastore.orphanSource'));
    expect(recorded).toMatchObject([{ type: 'image.replyIgnored', effects: [{ kind: 'datastore.orphanSource', source: orphan }] }]);
  });
});
