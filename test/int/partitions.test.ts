/**
 * Partitioned managers (the scale-out issue): commands are stored with the
 * partition of their aggregate, the same in both command streams; the count
 * is fixed per store; managers share the partitions through leases, never
 * decide for one aggregate both in steady state, hand a stopping manager's
 * partitions over at once and a killed one's once its leases expire, and no
 * command is answered twice or lost on the way.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { TestNats } from '../support/nats.js';
import { RoleProcess } from '../support/manager-process.js';
import { DriverResponder } from '../support/driver-responder.js';
import { eventually } from '../support/eventually.js';
import { readLog } from '../support/log.js';
import { duplicateCommits } from '../support/replay.js';
import { Manager } from '../../src/manager.js';
import { MonitorTimer } from '../../src/reactors/monitor-timer.js';
import type { DriverDispatcher } from '../../src/reactors/dispatcher.js';
import { systemClock } from '../../src/platform/clock.js';
import { ImgrClient } from '../../src/client/index.js';
import { silentLogger } from '../../src/platform/logger.js';
import { ImgrMetrics } from '../../src/platform/metrics.js';
import { BUCKETS, STREAMS, provision } from '../../src/store/provision.js';
import { leaseKey } from '../../src/intake/partition-ownership.js';
import { DEFAULT_PARTITIONS, partitionOf } from '../../src/messages/partitions.js';
import { META_KEYS } from '../../src/messages/names.js';
import type { CommandInput, Outcome } from '../../src/messages/wire.js';

const ACK_WAIT_MS = 2_000;
let nats: TestNats;
let client: ImgrClient;
let drivers: DriverResponder | undefined;

beforeAll(async () => {
  nats = await TestNats.start();
  client = await ImgrClient.connect({ servers: nats.url, actor: { uid: 0, gid: 0, name: 'oneadmin' } });
});
afterAll(async () => {
  await drivers?.stop();
  await client.close();
  await nats.dispose();
});

/** Who holds each partition now, by the leases. */
async function holders(): Promise<(string | undefined)[]> {
  const kv = await new Kvm(await nats.connect('manager')).open(BUCKETS.leases);
  return Promise.all(Array.from({ length: DEFAULT_PARTITIONS }, async (_, p) => {
    const e = await kv.get(leaseKey(p));
    return e?.operation === 'PUT' ? e.string() : undefined;
  }));
}

/** A careful service's sends: the same id again until an answer comes. */
class Senders {
  readonly sent: { commandId: string; command: CommandInput; outcome?: Outcome }[] = [];
  private running = true;
  private done: Promise<unknown> = Promise.resolve();

  start(images: number[], senders: number, tag: string): void {
    this.running = true;
    this.done = Promise.all(
      Array.from({ length: senders }, async (_, w) => {
        for (let n = 0; this.running; n++) {
          const imageId = images[(w + n * senders) % images.length] ?? 0;
          await this.surely({ type: 'image.acquire', imageId, vmId: 500 + w, mode: 'deploy' }, `${tag}-${w}-${n}-a`);
          await this.surely({ type: 'image.release', imageId, vmId: 500 + w, failed: false }, `${tag}-${w}-${n}-r`);
        }
      }),
    );
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.done;
  }

  get answered(): number {
    return this.sent.filter((s) => s.outcome !== undefined).length;
  }

  async until(more: number, what: string): Promise<void> {
    const target = this.answered + more;
    await eventually(() => this.answered >= target, what, 120_000);
  }

  private async surely(command: CommandInput, commandId: string): Promise<void> {
    const s: (typeof this.sent)[number] = { commandId, command };
    this.sent.push(s);
    while (s.outcome === undefined) {
      try {
        s.outcome = await client.send(command, { commandId, timeoutMs: 3_000 });
      } catch {
        await sleep(100);
      }
    }
  }
}

const images: number[] = [];

/** Sixteen READY images in a dummy datastore, made once for whichever test runs first. */
async function ensureImages(): Promise<void> {
  if (images.length > 0) return;
  drivers = await DriverResponder.start(nats.url);
  const ds = await client.nextId('datastore');
  expect(await client.send({ type: 'datastore.create', datastoreId: ds, template: { NAME: 'parts', DS_MAD: 'dummy', TM_MAD: 'dummy' } })).toMatchObject({ status: 'accepted' });
  for (let i = 0; i < 16; i++) {
    const id = await client.nextId('image');
    expect(await client.send({ type: 'image.allocate', imageId: id, datastoreId: ds, template: { NAME: `p${i}`, PATH: '/srv/p.img', SIZE: '1' } })).toMatchObject({ status: 'accepted' });
    images.push(id);
  }
  await eventually(async () => ((await Promise.all(images.map((id) => client.image(id)))).every((v) => v?.state === 'READY') ? true : undefined), 'images READY');
}

describe('partitioned managers', () => {
  it('stores every command with its aggregate\'s partition, the same in every command stream', async () => {
    const service = jetstream(await nats.connect('service'));
    const manager = jetstream(await nats.connect('manager'));
    const drivers = jetstream(await nats.connect('drivers'));
    const jsm = await jetstreamManager(await nats.connect('manager'));
    const stored = async (published: Promise<{ seq: number }>, stream: string): Promise<string> => (await jsm.streams.getMessage(stream, { seq: (await published).seq }))?.subject ?? '';
    const seen = new Set<string>();
    for (const kind of ['image', 'datastore'] as const) {
      for (let id = 0; id < 24; id++) {
        const pub = await stored(service.publish(`imgr.cmd.service.${kind}.${id}`, 'probe'), STREAMS.commands);
        const int = await stored(manager.publish(`imgr.int.${kind}.${id}`, 'probe'), STREAMS.internal);
        const reply = await stored(drivers.publish(`imgr.drv-reply.${kind}.${id}`, 'probe'), STREAMS.replies);
        const partition = pub.split('.').at(-1) ?? '';
        expect(pub).toBe(`imgr.cmd.service.${kind}.${id}.${partition}`);
        expect(int).toBe(`imgr.int.${kind}.${id}.${partition}`);
        // The driver hosts' reports (in a stream of their own) have the partitions of the manager's own commands.
        expect(reply).toBe(`imgr.drv-reply.${kind}.${id}.${partition}`);
        // What managers compute for their timers is what the server decided.
        expect(partitionOf(kind, id, DEFAULT_PARTITIONS)).toBe(Number(partition));
        seen.add(partition);
      }
    }
    expect([...seen].map(Number).sort((a, b) => a - b)).toEqual(Array.from({ length: DEFAULT_PARTITIONS }, (_, i) => i));
    // A sender cannot pick a partition: a subject with one more token is taken by no stream.
    await expect(service.publish('imgr.cmd.service.image.7.3', 'probe')).rejects.toThrow();
  });

  it('records the partition count at the first start and refuses another one later', async () => {
    const nc = await nats.connect('manager');
    const meta = await new Kvm(nc).open(BUCKETS.meta);
    expect((await meta.get(META_KEYS.partitions))?.string()).toBe(String(DEFAULT_PARTITIONS));
    await expect(provision(nc, { partitions: DEFAULT_PARTITIONS + 1 })).rejects.toMatchObject({ code: 'IMGR_PARTITIONS_FIXED' });
    await expect(Manager.start({ servers: nats.url, log: silentLogger(), config: { partitions: 3 } })).rejects.toThrow(`the NATS store has ${DEFAULT_PARTITIONS} command partitions`);
    expect((await provision(nc)).partitions).toBe(DEFAULT_PARTITIONS);
  });

  it('two managers share the partitions and, in steady state, never decide for the same aggregate', async () => {
    const metrics = [new ImgrMetrics(), new ImgrMetrics()] as const;
    const config = { ackWaitMs: ACK_WAIT_MS, idleImageMs: 300 };
    const a = await Manager.start({ servers: nats.url, log: silentLogger(), config, metrics: metrics[0] });
    const b = await Manager.start({ servers: nats.url, log: silentLogger(), config, metrics: metrics[1] });
    try {
      await eventually(() => a.ownership.partitions.length === DEFAULT_PARTITIONS / 2 && b.ownership.partitions.length === DEFAULT_PARTITIONS / 2, 'an even share each');
      expect([...a.ownership.partitions, ...b.ownership.partitions].sort((x, y) => x - y)).toEqual(Array.from({ length: DEFAULT_PARTITIONS }, (_, i) => i));
      expect(await holders()).toEqual(Array.from({ length: DEFAULT_PARTITIONS }, (_, p) => (a.ownership.partitions.includes(p) ? a.ownership.managerId : b.ownership.managerId)));

      await ensureImages();
      // Each image is resident in the manager that holds its partition; the other keeps what its indexes need
      // (it loads one for a moment to read it, and gives it up once idle).
      const holder = (id: number): Manager => (a.holds('image', id) ? a : b);
      const other = (id: number): Manager => (a.holds('image', id) ? b : a);
      await eventually(() => images.every((id) => holder(id).host.image(id)?.state === 'READY' && !other(id).host.isResident(id)), 'images READY where they are held, given up elsewhere');
      expect(images.filter((id) => a.holds('image', id)).length).toBeGreaterThan(0);
      expect(images.filter((id) => b.holds('image', id)).length).toBeGreaterThan(0);
      const ds = holder(images[0] ?? 0).host.image(images[0] ?? 0)?.datastore.id ?? -1;
      expect([a.host.imagesIn(ds), b.host.imagesIn(ds)]).toEqual([images.length, images.length]);
      // Reads are answered by either manager, whichever partition the image is in.
      for (let round = 0; round < 4; round++) expect((await Promise.all(images.map((id) => client.image(id)))).map((v) => v?.state)).toEqual(images.map(() => 'READY'));

      const total = async (m: ImgrMetrics, name: string): Promise<number> => ((await m.registry.getSingleMetric(name)?.get())?.values ?? []).reduce((n, v) => n + v.value, 0);
      const conflicts = async (): Promise<number> => (await total(metrics[0], 'imgr_append_conflicts_total')) + (await total(metrics[1], 'imgr_append_conflicts_total'));
      // Registrations reserve in the datastore their images share, whichever partitions the images are in: the datastore's commits may conflict (and are decided again); images' own commands never.
      const before = await conflicts();
      const decided = [await total(metrics[0], 'imgr_commands_total'), await total(metrics[1], 'imgr_commands_total')];
      const load = new Senders();
      load.start(images, 8, 'steady');
      await load.until(400, 'the steady load');
      await load.stop();
      process.stdout.write(`partitions: ${before} append conflicts during the registrations (shared datastore), ${(await conflicts()) - before} during ${load.sent.length} acquire/release\n`);
      expect(load.sent.filter((s) => s.outcome?.status !== 'accepted').map((s) => s.outcome)).toEqual([]);
      // Both decided part of the load, and no append of one was refused because the other wrote the aggregate first.
      expect(await total(metrics[0], 'imgr_commands_total')).toBeGreaterThan(decided[0] ?? 0);
      expect(await total(metrics[1], 'imgr_commands_total')).toBeGreaterThan(decided[1] ?? 0);
      expect((await conflicts()) - before).toBe(0);

      // The timers act only for what each manager holds: every datastore is probed by exactly one of them.
      for (let i = 0; i < 11; i++) {
        const id = await client.nextId('datastore');
        expect(await client.send({ type: 'datastore.create', datastoreId: id, template: { NAME: `timers-${id}`, DS_MAD: 'dummy', TM_MAD: 'dummy' } })).toMatchObject({ status: 'accepted' });
      }
      await eventually(() => [...a.host.allDatastores()].filter((d) => d.agg.state === 'READY').length === 12, 'the datastores READY');
      const probed: Record<'a' | 'b', number[]> = { a: [], b: [] };
      const timer = (m: Manager, into: number[]): MonitorTimer =>
        new MonitorTimer(m.host, { monitor: (id: number) => Promise.resolve(void into.push(id)) } as unknown as DriverDispatcher, 60_000, systemClock, (kind, id) => m.holds(kind, id));
      await timer(a, probed.a).tick();
      await timer(b, probed.b).tick();
      const datastores = [...a.host.allDatastores()].filter((d) => d.agg.state === 'READY').map((d) => d.agg.record.id);
      expect([...probed.a, ...probed.b].sort((x, y) => x - y)).toEqual(datastores.sort((x, y) => x - y));
      expect(probed.a.filter((id) => probed.b.includes(id))).toEqual([]);
      expect(probed.a.length > 0 && probed.b.length > 0).toBe(true);

      // A stopping manager frees its leases: the other holds every partition at its next round, long before they would expire.
      await a.stop();
      await eventually(() => b.ownership.partitions.length === DEFAULT_PARTITIONS, 'the other manager holding every partition');
    } finally {
      await a.stop().catch(() => undefined);
      await b.stop();
    }
  }, 120_000);

  it('a killed manager\'s partitions go to another once their leases expire; no command is answered twice or lost', async () => {
    const config = JSON.stringify({ ackWaitMs: ACK_WAIT_MS });
    const managers = [await RoleProcess.start('manager', nats.url, { IMGR_CONFIG: config }), await RoleProcess.start('manager', nats.url, { IMGR_CONFIG: config })];
    try {
      const byPid = (pid: number) => (h: string | undefined): boolean => h?.includes(`-${pid}-`) === true;
      await eventually(async () => {
        const h = await holders();
        return h.filter(byPid(managers[0]?.pid ?? 0)).length === DEFAULT_PARTITIONS / 2 && h.filter(byPid(managers[1]?.pid ?? 0)).length === DEFAULT_PARTITIONS / 2 ? true : undefined;
      }, 'the two managers sharing the partitions');

      await ensureImages();
      const load = new Senders();
      load.start(images, 8, 'failover');
      await load.until(200, 'load before the kill');
      const [victim, survivor] = [managers[0], managers[1]];
      if (!victim || !survivor) throw new Error('two managers');
      const killedAt = Date.now();
      await victim.kill();
      await eventually(async () => ((await holders()).every(byPid(survivor.pid)) ? true : undefined), 'the survivor holding every partition', 60_000);
      const tookOver = Date.now() - killedAt;
      await load.until(200, 'load after the take-over');
      await load.stop();
      process.stdout.write(`partitions: taken over ${tookOver} ms after the kill (lease ${ACK_WAIT_MS} ms); ${load.sent.length} commands\n`);

      expect(load.sent.filter((s) => s.outcome === undefined)).toEqual([]);
      expect(load.sent.filter((s) => s.outcome?.status !== 'accepted').map((s) => s.outcome)).toEqual([]);
      const log = await readLog(await nats.connect('manager'));
      expect(duplicateCommits(log)).toEqual([]);
      const committed = new Map(log.map((l) => [l.commit.commandId, l.seq]));
      expect(load.sent.filter((s) => s.outcome?.status === 'accepted' && committed.get(s.commandId) !== s.outcome.seq).map((s) => s.commandId)).toEqual([]);
      expect(survivor.exitCode).toBeNull();
      // The survivor loaded the victim's partitions' images: it knows none of them only as foreign any more.
      const known = async (tier: string): Promise<number | undefined> => {
        const text = await (await fetch(`${survivor.opsUrl}/metrics`)).text();
        const value = new RegExp(`^imgr_images_known\\{tier="${tier}"\\} (\\d+)$`, 'm').exec(text)?.[1];
        return value === undefined ? undefined : Number(value);
      };
      await eventually(async () => ((await known('foreign')) === 0 ? true : undefined), 'the survivor keeping every image resident');
      expect(await known('resident')).toBeGreaterThanOrEqual(images.length);
    } finally {
      await Promise.allSettled(managers.map((m) => m.stop()));
    }
  }, 180_000);
});
