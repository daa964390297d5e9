/**
 * Start order (the faults issue, cause 8): the api may start before the
 * projections have created their buckets; it waits for them instead of
 * exiting, and serves the views once they are there.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestNats } from '../support/nats.js';
import { eventually } from '../support/eventually.js';
import { LiveViews } from '../../src/api/views.js';
import { ProjectionService } from '../../src/projections/service.js';
import { Manager } from '../../src/manager.js';
import { ImgrClient } from '../../src/client/index.js';
import { silentLogger } from '../../src/platform/logger.js';
import { Responder } from '../../src/platform/responder.js';

let nats: TestNats;
beforeAll(async () => {
  nats = await TestNats.start();
});
afterAll(async () => {
  await nats.dispose();
});

describe('the api before the projections', () => {
  it('waits for the view buckets, then follows them', async () => {
    const waitedFor: string[] = [];
    const starting = LiveViews.start(await nats.connect('dashboard'), (bucket) => waitedFor.push(bucket));
    await eventually(() => waitedFor.length > 0, 'the api says what it waits for');
    expect(waitedFor[0]).toMatch(/^imgr_images/);
    const manager = await Manager.start({ servers: nats.url, log: silentLogger() });
    const projections = await ProjectionService.start(await nats.connect('manager'), await Responder.connect(nats.url, 'test-projections-queries', silentLogger()), silentLogger());
    const views = await starting;
    const c = await ImgrClient.connect({ servers: nats.url, actor: { uid: 0, gid: 0, name: 'oneadmin' } });
    try {
      const ds = await c.nextId('datastore');
      await c.send({ type: 'datastore.create', datastoreId: ds, template: { NAME: 'late', DS_MAD: 'dummy', TM_MAD: 'dummy' } });
      await eventually(() => views.datastores.get(ds)?.name === 'late', 'the api sees the datastore');
    } finally {
      views.stop();
      await c.close();
      await projections.stop();
      await manager.stop();
    }
  });
});
