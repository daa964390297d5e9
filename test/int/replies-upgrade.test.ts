/**
 * A store of an older imgr kept the driver hosts' reports in IMGR_INT, beside
 * the manager's own commands (one de-duplication window for both). A manager
 * of this version moves their subject to IMGR_REP in place, and still decides
 * the reports IMGR_INT holds, as those that arrive in IMGR_REP.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { TestNats } from '../support/nats.js';
import { eventually } from '../support/eventually.js';
import { Manager } from '../../src/manager.js';
import { ImgrClient } from '../../src/client/index.js';
import { silentLogger } from '../../src/platform/logger.js';
import { DEFAULT_PARTITIONS } from '../../src/messages/partitions.js';
import { BUCKETS, STREAMS } from '../../src/messages/names.js';
import { subjects, type CommandMessage } from '../../src/messages/wire.js';

let nats: TestNats;
let manager: Manager | undefined;

beforeAll(async () => {
  nats = await TestNats.start();
});
afterAll(async () => {
  await manager?.stop();
  await nats.dispose();
});

const report = (datastoreId: number, commandId: string): CommandMessage =>
  ({
    envelope: { commandId, correlationId: commandId, causationId: null, actor: { uid: 0, gid: 0, name: 'imgr', service: 'driver-host' }, at: Date.now() },
    command: { type: 'datastore.monitored', datastoreId, result: 'SUCCESS', info: btoa('TOTAL_MB=10\nFREE_MB=9\nUSED_MB=1') },
    replyTo: null,
  }) as CommandMessage;

describe('driver hosts\' reports of an older store', () => {
  it('stored in IMGR_INT are decided after the upgrade, and new ones travel in IMGR_REP', async () => {
    const managerNc = await nats.connect('manager');
    const jsm = await jetstreamManager(managerNc);
    // The older layout: no IMGR_REP, and IMGR_INT taking both subjects with one transform.
    await jsm.streams.delete(STREAMS.replies);
    const int = (await jsm.streams.info(STREAMS.internal)).config;
    await jsm.streams.update(STREAMS.internal, {
      ...int,
      subjects: ['imgr.int.*.*', 'imgr.drv-reply.*.*'],
      subject_transform: { src: 'imgr.*.*.*', dest: `imgr.{{wildcard(1)}}.{{wildcard(2)}}.{{wildcard(3)}}.{{partition(${DEFAULT_PARTITIONS},2,3)}}` },
    });
    const drivers = jetstream(await nats.connect('drivers'));
    const before = await drivers.publish(subjects.driverReply('datastore', 7), JSON.stringify(report(7, 'imgr.reply-old-1')), { msgID: 'imgr.reply-old-1' });
    expect(before.stream).toBe(STREAMS.internal);

    manager = await Manager.start({ servers: nats.url, log: silentLogger(), config: { drivers: { dsMads: { dummy: {} }, tmMads: { dummy: {} }, datastoreLocation: '/tmp/imgr-replies-upgrade' } } });
    expect((await jsm.streams.info(STREAMS.internal)).config.subjects).toEqual(['imgr.int.*.*']);
    expect((await jsm.streams.info(STREAMS.replies)).config.subjects).toEqual(['imgr.drv-reply.*.*']);
    const outcomes = await new Kvm(managerNc).open(BUCKETS.outcomes);
    // Decided (refused here: datastore 7 does not exist), not left in the old stream.
    await eventually(async () => (await outcomes.get('imgr.reply-old-1'))?.operation === 'PUT' || undefined, 'the old report decided');

    const admin = await ImgrClient.connect({ servers: nats.url, actor: { uid: 0, gid: 0, name: 'oneadmin' } });
    const asDrivers = await ImgrClient.connect({ servers: nats.url, role: 'drivers', actor: { uid: 0, gid: 0, name: 'imgr' } });
    try {
      const ds = await admin.nextId('datastore');
      expect(await admin.send({ type: 'datastore.create', datastoreId: ds, template: { NAME: 'upgraded', DS_MAD: 'dummy', TM_MAD: 'dummy' } })).toMatchObject({ status: 'accepted' });
      const after = await drivers.publish(subjects.driverReply('datastore', ds), JSON.stringify(report(ds, 'imgr.reply-new-1')), { msgID: 'imgr.reply-new-1' });
      expect(after.stream).toBe(STREAMS.replies);
      await eventually(async () => (await outcomes.get('imgr.reply-new-1'))?.json<{ status: string }>().status === 'accepted' || undefined, 'the new report decided');
    } finally {
      await asDrivers.close();
      await admin.close();
    }
  });
});
