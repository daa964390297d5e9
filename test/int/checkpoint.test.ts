/**
 * Checkpoints shared by several managers (the faults issue, cause 3): a
 * manager that lags writes its snapshots and checkpoint after one that is
 * ahead. A manager booting from the bucket must still see every commit: no
 * older snapshot may replace a newer one and the checkpoint never moves back.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestNats } from '../support/nats.js';
import { accepted, bootedHost } from '../support/host.js';
import { Manager } from '../../src/manager.js';
import { ImgrClient } from '../../src/client/index.js';
import { silentLogger } from '../../src/platform/logger.js';

let nats: TestNats;
let a: Manager;
let c: ImgrClient;

beforeAll(async () => {
  nats = await TestNats.start();
  a = await Manager.start({ servers: nats.url, log: silentLogger(), config: { snapshotIntervalMs: 3_600_000 } });
  c = await ImgrClient.connect({ servers: nats.url, actor: { uid: 0, gid: 0, name: 'oneadmin' } });
});
afterAll(async () => {
  await c.close();
  await a.stop();
  await nats.dispose();
});

describe('two writers, one snapshot bucket', () => {
  it("a lagging manager's checkpoint neither hides nor undoes commits it had not seen", async () => {
    const ds = await c.nextId('datastore');
    await accepted(c.send({ type: 'datastore.create', datastoreId: ds, template: { NAME: 'cp', DS_MAD: 'dummy', TM_MAD: 'dummy' } }));
    const x = await c.nextId('image');
    const s1 = await accepted(c.send({ type: 'image.allocate', imageId: x, datastoreId: ds, template: { NAME: 'x', SOURCE: '/s/x', FORMAT: 'raw', SIZE: '1' } }));
    // The lagging manager sees x READY, then stops following the log.
    const lagging = await bootedHost(nats);
    await lagging.waitFor(s1);
    await lagging.stop();
    // The one ahead disables x and checkpoints.
    const s2 = await accepted(c.send({ type: 'image.disable', imageId: x }));
    await a.host.waitFor(s2);
    await a.host.checkpoint();
    // The lagging one checkpoints what it has (x READY at s1), the one ahead checkpoints again after another commit.
    await lagging.checkpoint();
    const z = await c.nextId('image');
    const s3 = await accepted(c.send({ type: 'image.allocate', imageId: z, datastoreId: ds, template: { NAME: 'z', SOURCE: '/s/z', FORMAT: 'raw', SIZE: '1' } }));
    await a.host.waitFor(s3);
    expect(await a.host.checkpoint()).toBeGreaterThanOrEqual(s3);
    // A manager booting from the bucket has x as the log has it.
    const fresh = await bootedHost(nats);
    expect(fresh.image(x)?.state).toBe('DISABLED');
    expect(fresh.image(z)?.state).toBe('READY');
    await fresh.stop();
  });
});
