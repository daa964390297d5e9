/**
 * A store of an older imgr: its intake durables on IMGR_INT took only
 * imgr.int. subjects. A manager of this version brings them in place to its
 * partition of both of imgr's subjects, so the driver hosts' reports (on
 * imgr.drv-reply.) are decided too, and nothing waiting is lost.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AckPolicy, DeliverPolicy, jetstreamManager } from '@nats-io/jetstream';
import { TestNats } from '../support/nats.js';
import { Manager } from '../../src/manager.js';
import { ImgrClient } from '../../src/client/index.js';
import { silentLogger } from '../../src/platform/logger.js';
import { DEFAULT_PARTITIONS, partitionFilter } from '../../src/messages/partitions.js';
import { intakeDurable } from '../../src/intake/intake.js';
import { STREAMS } from '../../src/messages/names.js';

let nats: TestNats;
let manager: Manager | undefined;

beforeAll(async () => {
  nats = await TestNats.start();
});
afterAll(async () => {
  await manager?.stop();
  await nats.dispose();
});

describe('intake durables of an older imgr', () => {
  it("take their partition of the driver hosts' subject too once a manager starts", async () => {
    const jsm = await jetstreamManager(await nats.connect('manager'));
    for (let p = 0; p < DEFAULT_PARTITIONS; p++) {
      await jsm.consumers.add(STREAMS.internal, { durable_name: intakeDurable('internal', p), ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All, filter_subject: `imgr.int.*.*.${p}` });
    }
    manager = await Manager.start({ servers: nats.url, log: silentLogger(), config: { drivers: { dsMads: { dummy: {} }, tmMads: { dummy: {} }, datastoreLocation: '/tmp/imgr-intake-upgrade' } } });
    for (let p = 0; p < DEFAULT_PARTITIONS; p++) {
      expect((await jsm.consumers.info(STREAMS.internal, intakeDurable('internal', p))).config.filter_subject).toBe(partitionFilter('internal', p));
    }
    const admin = await ImgrClient.connect({ servers: nats.url, actor: { uid: 0, gid: 0, name: 'oneadmin' } });
    const drivers = await ImgrClient.connect({ servers: nats.url, role: 'drivers', actor: { uid: 0, gid: 0, name: 'imgr' } });
    try {
      const ds = await admin.nextId('datastore');
      expect(await admin.send({ type: 'datastore.create', datastoreId: ds, template: { NAME: 'upgraded', DS_MAD: 'dummy', TM_MAD: 'dummy' } })).toMatchObject({ status: 'accepted' });
      const report = await drivers.send({ type: 'datastore.monitored', datastoreId: ds, result: 'SUCCESS', info: btoa('TOTAL_MB=10\nFREE_MB=9\nUSED_MB=1') }, { internal: true });
      expect(report).toMatchObject({ status: 'accepted', fact: 'datastore.monitored' });
    } finally {
      await drivers.close();
      await admin.close();
    }
  });
});
