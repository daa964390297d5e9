/**
 * Blue/green rebuild of the projections, driven by the CLI: a new generation
 * of views is projected from the whole log, checked against the live one, and
 * readers (the API's live views) switch to it without a restart.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Kvm } from '@nats-io/kv';
import type { TestNats } from '../support/nats.js';
import { eventually } from '../support/eventually.js';
import { startSystem, type TestSystem } from '../support/system.js';
import type { Manager } from '../../src/manager.js';
import type { ImgrClient } from '../../src/client/index.js';
import { LiveViews } from '../../src/api/views.js';
import { main } from '../../src/cli/imgr.js';

let sys: TestSystem;
let nats: TestNats;
let manager: Manager;
let c: ImgrClient;
let views: LiveViews;
const ids: number[] = [];

beforeAll(async () => {
  sys = await startSystem({ actor: { uid: 7, gid: 100, name: 'alice' } });
  ({ nats, manager, client: c } = sys);
  const ds = await c.nextId('datastore');
  await sys.admin.send({ type: 'datastore.create', datastoreId: ds, template: { NAME: 'images', DS_MAD: 'fs', TM_MAD: 'shared' } });
  for (let i = 0; i < 5; i++) {
    const id = await c.nextId('image');
    ids.push(id);
    await c.send({ type: 'image.allocate', imageId: id, datastoreId: ds, template: { NAME: `img-${i}`, PATH: '/tmp/a', SIZE: '4' } });
  }
  await eventually(() => ids.every((id) => manager.host.image(id)?.state === 'READY'), 'READY');
  views = await LiveViews.start(await nats.connect('dashboard'));
  await eventually(() => ids.every((id) => views.images.get(id)?.state === 'READY'), 'views READY');
});

afterAll(async () => {
  views.stop();
  await sys.stop();
});

describe('projections rebuild', () => {
  it('rebuilds into a new generation, checks it, and switches the readers', async () => {
    const before = [...views.images.values()].sort((a, b) => a.id - b.id);
    let out = '';
    const code = await main(['--nats', nats.url, 'projections', 'rebuild', '--json'], (s) => (out += s), () => undefined, false);
    expect(code).toBe(0);
    const r = JSON.parse(out) as { ok: boolean; generation: number; images: number; compared: number };
    expect(r).toMatchObject({ ok: true, generation: 1, images: 5 });
    expect(r.compared).toBeGreaterThanOrEqual(5);

    const meta = await new Kvm(await nats.connect('manager')).open('imgr_meta');
    expect((await meta.get('views.generation'))?.string()).toBe('1');
    await eventually(() => views.generation === 1 && views.images.size === 5, 'readers switched');
    expect([...views.images.values()].sort((a, b) => a.id - b.id)).toEqual(before);

    // The new generation stays live; the old buckets are gone.
    await c.send({ type: 'image.disable', imageId: ids[0] ?? -1 });
    await eventually(() => views.images.get(ids[0] ?? -1)?.state === 'DISABLED', 'live after the switch');
    await expect(new Kvm(await nats.connect('manager')).open('imgr_images').then((kv) => kv.status())).rejects.toThrow();
    expect((await c.images({ state: 'DISABLED' })).items.map((v) => v.id)).toEqual([ids[0]]);
  });

  it('a second rebuild moves on to the next generation', async () => {
    let out = '';
    expect(await main(['--nats', nats.url, 'projections', 'rebuild'], (s) => (out += s), () => undefined, false)).toBe(0);
    expect(out).toMatch(/^views rebuilt into generation 2 up to commit \d+: 5 images, 1 datastores; \d+ views equal to the live ones; readers switched\n$/);
    await eventually(() => views.generation === 2, 'generation 2');
  });
});
