/**
 * Every commit imgr appends says how many effects it carries
 * (EFFECTS_HEADER) and the shape it is written in; a reactor that acts only on effects (the dispatcher, the
 * process manager) acknowledges a commit that carries none without reading
 * it, and still reacts to every commit that carries some.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { TestNats } from '../support/nats.js';
import { eventually } from '../support/eventually.js';
import { Manager } from '../../src/manager.js';
import { ImgrClient } from '../../src/client/index.js';
import { silentLogger } from '../../src/platform/logger.js';
import { ImgrMetrics } from '../../src/platform/metrics.js';
import { LogReactor } from '../../src/reactors/log-reactor.js';
import { COMMIT_SHAPE, parseCommit, type Commit } from '../../src/messages/wire.js';
import { COMMIT_SHAPE_HEADER, EFFECTS_HEADER } from '../../src/messages/names.js';
import { STREAMS, provision } from '../../src/store/provision.js';
import { positionKey, writePosition } from '../../src/reactors/reactor-position.js';

let nats: TestNats;
let manager: Manager;
let c: ImgrClient;
beforeAll(async () => {
  nats = await TestNats.start();
  manager = await Manager.start({ servers: nats.url, log: silentLogger(), config: { ackWaitMs: 2_000 } });
  c = await ImgrClient.connect({ servers: nats.url, actor: { uid: 0, gid: 0, name: 'oneadmin' } });
});
afterAll(async () => {
  await c.close();
  await manager.stop();
  await nats.dispose();
});

class EffectsRecorder extends LogReactor {
  readonly name = 'test-effects-only';
  protected override readonly effectsOnly = true;
  readonly seen: number[] = [];
  protected react(_commit: Commit, seq: number): Promise<void> {
    this.seen.push(seq);
    return Promise.resolve();
  }
}

describe('commits without effects', () => {
  it('carry their effect count, and an effects-only reactor acknowledges those with none unread', async () => {
    const ds = await c.nextId('datastore');
    expect(await c.send({ type: 'datastore.create', datastoreId: ds, template: { NAME: 'effects', DS_MAD: 'dummy', TM_MAD: 'dummy' } })).toMatchObject({ status: 'accepted' });
    const image = await c.nextId('image');
    expect(await c.send({ type: 'image.allocate', imageId: image, datastoreId: ds, template: { NAME: 'e', SOURCE: '/s', FORMAT: 'raw', SIZE: '1' } })).toMatchObject({ status: 'accepted' });
    for (let vm = 1; vm <= 3; vm++) {
      expect(await c.send({ type: 'image.acquire', imageId: image, vmId: vm, mode: 'deploy' })).toMatchObject({ status: 'accepted' });
      expect(await c.send({ type: 'image.release', imageId: image, vmId: vm })).toMatchObject({ status: 'accepted' });
    }

    const nc = await nats.connect('manager');
    const jsm = await jetstreamManager(nc);
    const last = (await jsm.streams.info(STREAMS.events)).state.last_seq;
    // What the log holds: each commit's header against the effects its facts carry.
    const log = await jetstream(nc).consumers.get(STREAMS.events, { deliver_policy: DeliverPolicy.All });
    const withEffects: number[] = [];
    const counts: [string | undefined, number][] = [];
    const shapes = new Set<string>();
    for (let seq = 1; seq <= last; seq++) {
      const m = await log.next({ expires: 5_000 });
      if (!m) throw new Error(`commit ${seq} not read`);
      const commit = parseCommit(m.string());
      if ('unreadable' in commit) throw new Error(commit.unreadable);
      const effects = commit.facts.reduce((n, f) => n + f.effects.length, 0);
      counts.push([m.headers?.get(EFFECTS_HEADER), effects]);
      shapes.add(m.headers?.get(COMMIT_SHAPE_HEADER) ?? 'none');
      if (effects > 0) withEffects.push(m.seq);
    }
    expect(counts.map(([header]) => header)).toEqual(counts.map(([, n]) => String(n)));
    // And the shape they are written in: this code's, so its readers skip the schema.
    expect([...shapes]).toEqual([COMMIT_SHAPE]);
    // The acquires and releases carry none: the load this saves the reactors.
    expect(withEffects.length).toBeGreaterThan(0);
    expect(withEffects.length).toBeLessThan(last - 5);

    const metrics = new ImgrMetrics();
    const p = await provision(nc);
    await writePosition(p.meta, 'test-effects-only', 0);
    const reactor = new EffectsRecorder({ nc, jsm, host: manager.host, log: silentLogger(), ackWaitMs: 2_000, metrics, leases: p.leases, meta: p.meta });
    await reactor.start();
    try {
      await eventually(async () => Number((await p.meta.get(positionKey(reactor.name)))?.string()) >= last, 'every commit done and its position stored');
      expect(reactor.seen.sort((a, b) => a - b)).toEqual(withEffects);
      // Every commit counts as handled, read or not.
      expect((await metrics.reactions.get()).values).toEqual([{ labels: { reactor: reactor.name }, value: last }]);
    } finally {
      await reactor.stop();
    }
  });
});
