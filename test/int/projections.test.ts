/**
 * The read side: views and usage in NATS KV, equal to the log; queries with
 * filters and pagination; a restart resumes from the checkpoint; a projection
 * rebuilt from scratch equals the live one.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Kvm } from '@nats-io/kv';
import { jetstreamManager } from '@nats-io/jetstream';
import { TEST_PRINCIPALS, TestNats } from '../support/nats.js';
import { DriverResponder } from '../support/driver-responder.js';
import { eventually } from '../support/eventually.js';
import { readLog } from '../support/log.js';
import { viewsFromLog } from '../support/replay.js';
import { Manager } from '../../src/manager.js';
import { Projector, VIEW_BUCKETS } from '../../src/projections/projector.js';
import { ImgrClient } from '../../src/client/index.js';
import { silentLogger } from '../../src/platform/logger.js';
import { Responder } from '../../src/platform/responder.js';
import { querySubjects } from '../../src/messages/queries.js';
import { readerOf } from '../../src/intake/readers.js';
import type { ImageView } from '../../src/messages/image-record.js';

let nats: TestNats;
let manager: Manager;
let drivers: DriverResponder;
let c: ImgrClient;
let projector: Projector;
let queries: Responder;
let ds: number;
const ids: number[] = [];

beforeAll(async () => {
  nats = await TestNats.start();
  manager = await Manager.start({ servers: nats.url, log: silentLogger(), tickMs: 100 });
  drivers = await DriverResponder.start(nats.url);
  c = await ImgrClient.connect({ servers: nats.url, actor: { uid: 7, gid: 100, name: 'alice' } });
  queries = await Responder.connect(nats.url, 'test-projections-queries', silentLogger());
  projector = await Projector.start(await nats.connect('manager'), silentLogger(), { queries: { responder: queries, readerOf: (q) => readerOf(q.asker, (name) => TEST_PRINCIPALS[name]) } });
  ds = await c.nextId('datastore');
  // Datastores are the administrator's to create.
  const admin = await ImgrClient.connect({ servers: nats.url, principal: 'oneadmin', actor: { uid: 0, gid: 0, name: 'oneadmin' } });
  await admin.send({ type: 'datastore.create', datastoreId: ds, template: { NAME: 'images', DS_MAD: 'fs', TM_MAD: 'shared' } });
  await admin.close();
  for (let i = 0; i < 6; i++) {
    const id = await c.nextId('image');
    ids.push(id);
    await c.send({ type: 'image.allocate', imageId: id, datastoreId: ds, template: { NAME: `${i % 2 === 0 ? 'web' : 'db'}-${i}`, PATH: '/tmp/a', SIZE: String(10 * (i + 1)), TYPE: i < 3 ? 'OS' : 'DATABLOCK' } });
  }
  await eventually(() => ids.every((id) => manager.host.image(id)?.state === 'READY'), 'all READY');
  await c.send({ type: 'image.disable', imageId: ids[0] ?? -1 });
  await c.send({ type: 'image.delete', imageId: ids[1] ?? -1 });
  await eventually(() => manager.host.image(ids[1] ?? -1)?.state === 'REMOVED', 'removed');
});

afterAll(async () => {
  await projector.stop();
  await queries.close();
  await drivers.stop();
  await c.close();
  await manager.stop();
  await nats.dispose();
});

const caughtUp = async (p: Projector): Promise<void> => {
  const last = (await readLog(await nats.connect('manager'))).at(-1)?.seq ?? 0;
  await p.waitFor(last);
};

describe('projections', () => {
  it('keep image and datastore views in KV equal to the log, each with the sequence it reflects', async () => {
    await caughtUp(projector);
    const log = await readLog(await nats.connect('manager'));
    const expected = viewsFromLog(log);
    const kv = await new Kvm(await nats.connect('dashboard')).open(VIEW_BUCKETS.images);
    for (const id of ids) {
      const want = expected.images.get(id);
      const entry = await kv.get(String(id));
      if (want?.state === 'REMOVED') {
        expect(entry?.operation ?? 'DEL').not.toBe('PUT');
      } else {
        const stored = entry?.json<{ seq: number; view: ImageView }>();
        expect(stored?.view).toEqual(want);
        expect(stored?.seq).toBe(log.filter((e) => e.commit.aggregate === 'image' && e.commit.id === id).at(-1)?.seq);
      }
    }
    expect(projector.datastores.get(ds)?.view).toEqual(expected.datastores.get(ds));
  });

  it('summarise each datastore: images by state and the driver operations running', async () => {
    await caughtUp(projector);
    const kv = await new Kvm(await nats.connect('dashboard')).open(VIEW_BUCKETS.datastores);
    const stored = (await kv.get(String(ds)))?.json<{ summary: { imagesByState: Record<string, number>; operationsByAction: Record<string, number> } }>();
    expect(stored?.summary).toEqual({ imagesByState: { DISABLED: 1, READY: 4 }, operationsByAction: {}, reservedMb: 0, reserving: 0 });
  });

  it('count usage per owner and datastore (quota figures of §13.2)', async () => {
    await caughtUp(projector);
    // Six images of 10..60 MB, one removed (20 MB).
    expect(projector.usage.get(`user.7.${ds}`)).toEqual({ images: 5, sizeMb: 210 - 20 });
    expect(projector.usage.get(`group.100.${ds}`)).toEqual({ images: 5, sizeMb: 190 });
    const kv = await new Kvm(await nats.connect('dashboard')).open(VIEW_BUCKETS.usage);
    expect((await kv.get(`user.7.${ds}`))?.json()).toMatchObject({ images: 5, sizeMb: 190 });
  });

  it('answer queries with filters and pagination', async () => {
    const q = async (query: object) => (await c.nc.request(querySubjects.images(c.principal), JSON.stringify(query), { timeout: 5000 })).json<{ ok: boolean; total: number; items: ImageView[]; error?: string }>();
    expect((await q({})).total).toBe(5);
    expect((await q({ namePrefix: 'web' })).items.map((v) => v.name)).toEqual(['web-0', 'web-2', 'web-4']);
    expect((await q({ type: 'DATABLOCK', state: 'READY' })).items.map((v) => v.name)).toEqual(['db-3', 'web-4', 'db-5']);
    expect((await q({ state: 'DISABLED' })).items.map((v) => v.id)).toEqual([ids[0]]);
    const page = await q({ limit: 2, offset: 2 });
    expect(page).toMatchObject({ ok: true, total: 5 });
    expect(page.items.map((v) => v.id)).toEqual([ids[3], ids[4]]);
    expect((await q({ state: 'BROKEN' })).ok).toBe(false);
    // Through the client the refusal is a typed failure with a stable code.
    await expect(c.images({ limit: 5000 })).rejects.toMatchObject({ code: 'IMGR_QUERY_REFUSED' });
  });

  it('resume from the checkpoint after a restart, and a rebuild from scratch equals the live views', async () => {
    await projector.stop();
    await c.send({ type: 'image.enable', imageId: ids[0] ?? -1 });
    projector = await Projector.start(await nats.connect('manager'), silentLogger(), { queries: { responder: queries, readerOf: (q) => readerOf(q.asker, (name) => TEST_PRINCIPALS[name]) } });
    await caughtUp(projector);
    expect(projector.images.get(ids[0] ?? -1)?.view.state).toBe('READY');

    const live = [...projector.images.values()].map((x) => x.view).sort((a, b) => a.id - b.id);
    // From scratch: no views, no checkpoint, the whole log again.
    const admin = await nats.connect('manager');
    const kvm = new Kvm(admin);
    for (const b of Object.values(VIEW_BUCKETS)) await (await kvm.open(b)).destroy();
    await (await kvm.open('imgr_meta')).delete('projection.views.0');
    const rebuilt = await Projector.start(admin, silentLogger());
    await caughtUp(rebuilt);
    expect([...rebuilt.images.values()].map((x) => x.view).sort((a, b) => a.id - b.id)).toEqual(live);
    expect(rebuilt.usage).toEqual(projector.usage);
    await rebuilt.stop();
  });

  it('write each view once when they catch up, not once per commit, and checkpoint once idle', async () => {
    // The images changed by many commits each: a rebuild folds them in memory and puts every key once.
    const admin = await nats.connect('manager');
    for (let round = 0; round < 5; round++) {
      await c.send({ type: 'image.disable', imageId: ids[2] ?? -1 });
      await c.send({ type: 'image.enable', imageId: ids[2] ?? -1 });
    }
    const rebuilt = await Projector.start(admin, silentLogger(), { generation: 7 });
    await caughtUp(rebuilt);
    const jsm = await jetstreamManager(admin);
    const writes = (await jsm.streams.info(`KV_${VIEW_BUCKETS.images}_7`)).state.last_seq;
    const imageCommits = (await readLog(admin)).filter((m) => m.commit.aggregate === 'image').length;
    expect(imageCommits).toBeGreaterThan(ids.length + 10);
    // One write per image ever seen (the removed one's is a delete).
    expect(writes).toBe(ids.length);
    const cp = await (await new Kvm(admin).open('imgr_meta')).get('projection.views.7');
    await eventually(async () => Number((await (await new Kvm(admin).open('imgr_meta')).get('projection.views.7'))?.string()) === rebuilt.appliedSeq, 'checkpoint at the applied sequence');
    expect(cp).not.toBeNull();
    await rebuilt.destroy();
  });
});
