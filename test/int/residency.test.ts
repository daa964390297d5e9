/**
 * Per-partition residency (the scale-out issue): a manager keeps resident
 * only the images of the partitions it holds; the others' images it knows by
 * what its indexes need. Its checkpoints must then never claim another
 * partition's images (their commits moved no snapshot here), a partition it
 * gains has its images loaded, and reads of any image are answered by any
 * manager.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Kvm } from '@nats-io/kv';
import { TestNats } from '../support/nats.js';
import { accepted, bootedHost } from '../support/host.js';
import { eventually } from '../support/eventually.js';
import { Manager } from '../../src/manager.js';
import { ImgrClient } from '../../src/client/index.js';
import { silentLogger } from '../../src/platform/logger.js';
import { partitionCheckpointKey } from '../../src/actors/checkpoints.js';
import { BUCKETS } from '../../src/store/provision.js';
import { DEFAULT_PARTITIONS } from '../../src/messages/partitions.js';

let nats: TestNats;
let c: ImgrClient;

beforeAll(async () => {
  nats = await TestNats.start();
  c = await ImgrClient.connect({ servers: nats.url, actor: { uid: 0, gid: 0, name: 'oneadmin' } });
});
afterAll(async () => {
  await c.close();
  await nats.dispose();
});

/** No checkpoint but the ones a test asks for; images idle for a moment are given up quickly. */
const CONFIG = { snapshotIntervalMs: 3_600_000, idleImageMs: 200, ackWaitMs: 2_000 };

/** Images READY at once (a SOURCE needs no driver), `n` of them in a new datastore. */
async function images(n: number, tag: string): Promise<number[]> {
  const ds = await c.nextId('datastore');
  await accepted(c.send({ type: 'datastore.create', datastoreId: ds, template: { NAME: tag, DS_MAD: 'dummy', TM_MAD: 'dummy' } }));
  const ids: number[] = [];
  for (let i = 0; i < n; i++) {
    const id = await c.nextId('image');
    await accepted(c.send({ type: 'image.allocate', imageId: id, datastoreId: ds, template: { NAME: `${tag}-${i}`, SOURCE: `/s/${tag}-${i}`, FORMAT: 'raw', SIZE: '1' } }));
    ids.push(id);
  }
  return ids;
}

/** Two managers sharing the partitions evenly, given to `run`; both stopped after it (B may be stopped by `run` through `stopB`). */
async function withTwoManagers(run: (a: Manager, b: Manager, stopB: () => Promise<void>) => Promise<void>): Promise<void> {
  const a = await Manager.start({ servers: nats.url, log: silentLogger(), config: CONFIG });
  const b = await Manager.start({ servers: nats.url, log: silentLogger(), config: CONFIG });
  const b$ = { stopped: false };
  const stopB = async (): Promise<void> => {
    b$.stopped = true;
    await b.stop();
  };
  try {
    await eventually(() => a.ownership.partitions.length === DEFAULT_PARTITIONS / 2 && b.ownership.partitions.length === DEFAULT_PARTITIONS / 2, 'an even share each');
    await run(a, b, stopB);
  } finally {
    if (!b$.stopped) await b.stop();
    await a.stop();
  }
}

describe('a manager keeps its partitions\' images', () => {
  it("writes no checkpoint of a partition whose images changed elsewhere; a boot from the checkpoints has every commit", async () => {
    await withTwoManagers(async (a, b, stopB) => {
      const ids = await images(24, 'cp');
      const ofB = ids.filter((id) => b.holds('image', id));
      expect(ofB.length).toBeGreaterThan(0);
      // B's images change; only A checkpoints (B writes nothing until it stops).
      let last = 0;
      for (const id of ofB) last = await accepted(c.send({ type: 'image.disable', imageId: id }));
      await a.host.waitFor(last);
      expect(ofB.every((id) => !a.host.isResident(id))).toBe(true);
      expect(await a.host.checkpoint()).toBeGreaterThanOrEqual(last);
      const snapshots = await new Kvm(await nats.connect('manager')).open(BUCKETS.snapshots);
      const written = async (p: number): Promise<number> => Number((await snapshots.get(partitionCheckpointKey(p)))?.string() ?? 0);
      for (const p of b.ownership.partitions) expect(await written(p)).toBeLessThan(last);
      for (const p of a.ownership.partitions) expect(await written(p)).toBeGreaterThanOrEqual(last);
      // A manager booting from the bucket has every image as the log has it: B's disabled, A's READY.
      const fresh = await bootedHost(nats);
      expect(ids.map((id) => fresh.image(id)?.state)).toEqual(ids.map((id) => (b.holds('image', id) ? 'DISABLED' : 'READY')));
      await fresh.stop();
      // B, stopping, checkpoints its partitions before it gives them up.
      const ofBPartitions = b.ownership.partitions;
      await stopB();
      for (const p of ofBPartitions) expect(await written(p)).toBeGreaterThanOrEqual(last);
    });
  });

  it('loads the images of a partition it takes over, decides on them and answers reads of any image', async () => {
    await withTwoManagers(async (a, b, stopB) => {
      const ids = await images(24, 'move');
      const ofB = ids.filter((id) => b.holds('image', id));
      for (const id of ofB) await accepted(c.send({ type: 'image.acquire', imageId: id, vmId: 7, mode: 'deploy' }));
      await eventually(() => ofB.every((id) => !a.host.isResident(id)), "B's images given up by A");
      // Any manager answers a read of any image (the query goes to either).
      for (let round = 0; round < 3; round++) expect((await Promise.all(ofB.map((id) => c.image(id)))).map((v) => v?.state)).toEqual(ofB.map(() => 'USED'));
      await stopB();
      await eventually(() => a.ownership.partitions.length === DEFAULT_PARTITIONS, 'A holding every partition');
      await eventually(() => ofB.every((id) => a.host.isResident(id)), "B's images loaded by A");
      expect(ofB.map((id) => a.host.image(id)?.vms)).toEqual(ofB.map(() => [7]));
      for (const id of ofB) await accepted(c.send({ type: 'image.release', imageId: id, vmId: 7, failed: false }));
      expect(ofB.map((id) => a.host.image(id)?.state)).toEqual(ofB.map(() => 'READY'));
      expect(a.host.sizes.imagesForeign).toBe(0);
    });
  });

  it("a held partition's images still foreign (their load failed) are loaded by the next compaction round", async () => {
    const m = await Manager.start({ servers: nats.url, log: silentLogger(), config: CONFIG });
    const ids = await images(12, 'retry');
    await m.stop();
    const host = await bootedHost(nats);
    try {
      // As a manager holding only partition 0 keeps them; then every partition is its, but nothing loaded them.
      host.hold((p) => p === 0);
      expect(host.sizes.imagesForeign).toBeGreaterThan(0);
      host.hold(() => true);
      expect(host.sizes.imagesForeign).toBeGreaterThan(0);
      host.compact();
      await eventually(() => host.sizes.imagesForeign === 0, 'every image loaded again');
      expect(ids.map((id) => host.image(id)?.state)).toEqual(ids.map(() => 'READY'));
    } finally {
      await host.stop();
    }
  });
});
