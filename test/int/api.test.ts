/**
 * The HTTP API: built without listening and tested with inject; Server-Sent
 * Events over a real socket. Read-only, with the dashboard's NATS user.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'node:http';
import type { FastifyInstance } from 'fastify';
import type { TestNats } from '../support/nats.js';
import { eventually } from '../support/eventually.js';
import { startSystem, type TestSystem } from '../support/system.js';
import type { Manager } from '../../src/manager.js';
import type { ImgrClient } from '../../src/client/client.js';
import { LiveViews } from '../../src/api/views.js';
import { buildApi } from '../../src/api/api.js';

let sys: TestSystem;
let nats: TestNats;
let manager: Manager;
let c: ImgrClient;
let views: LiveViews;
let app: FastifyInstance;
let ds: number;
let image: number;

beforeAll(async () => {
  sys = await startSystem({ actor: { uid: 7, gid: 100, name: 'alice' } });
  ({ nats, manager, client: c } = sys);
  ds = await c.nextId('datastore');
  await c.send({ type: 'datastore.create', datastoreId: ds, template: { NAME: 'images', DS_MAD: 'fs', TM_MAD: 'shared' } });
  image = await c.nextId('image');
  await c.send({ type: 'image.allocate', imageId: image, datastoreId: ds, template: { NAME: 'web', PATH: '/tmp/a', SIZE: '8' } });
  await eventually(() => manager.host.image(image)?.state === 'READY', 'READY');
  await sys.settled();
  views = await LiveViews.start(await nats.connect('dashboard'));
  app = buildApi({ views });
  await eventually(() => views.images.get(image)?.state === 'READY', 'view READY');
});

afterAll(async () => {
  await app.close();
  views.stop();
  await sys.stop();
});

describe('HTTP API', () => {
  it('serves the views as JSON', async () => {
    const ds_ = await app.inject({ url: '/api/datastores' });
    expect(ds_.statusCode).toBe(200);
    expect(ds_.json<{ name: string }[]>().map((d) => d.name)).toEqual(['images']);
    expect((await app.inject({ url: `/api/datastores/${ds}` })).json()).toMatchObject({ id: ds, name: 'images', imagesByState: { READY: 1 }, pendingOperations: [] });
    const list = await app.inject({ url: '/api/images?state=ready&limit=10' });
    expect(list.json()).toMatchObject({ total: 1, items: [{ id: image, name: 'web', state: 'READY' }] });
    expect((await app.inject({ url: `/api/images/${image}` })).json()).toMatchObject({ id: image, size: 8 });
    expect((await app.inject({ url: '/api/usage' })).json()).toEqual({ [`user.7.${ds}`]: { images: 1, sizeMb: 8 }, [`group.100.${ds}`]: { images: 1, sizeMb: 8 } });
  });

  it('answers bad and unknown requests clearly', async () => {
    expect((await app.inject({ url: '/api/images/424242' })).json()).toEqual({ error: 'image 424242 not found' });
    const bad = await app.inject({ url: '/api/images?state=NAPPING' });
    expect(bad.statusCode).toBe(400);
    expect(bad.json<{ error: string }>().error).toMatch(/^state:/);
  });

  it('is read-only: no route changes anything', async () => {
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH'] as const) {
      expect((await app.inject({ method, url: `/api/images/${image}` })).statusCode).toBe(404);
    }
  });

  it('serves histories and the log verification', async () => {
    const h = await app.inject({ url: `/api/images/${image}/history` });
    expect(h.json<{ what: string }[]>().map((e) => e.what)).toEqual(['image.registered', 'image.driverSucceeded']);
    expect((await app.inject({ url: '/api/audit/verify' })).json()).toMatchObject({ ok: true });
  });

  it('serves the dashboard page', async () => {
    const r = await app.inject({ url: '/' });
    expect(r.headers['content-type']).toMatch(/text\/html/);
    expect(r.body).toContain('<title>imgr</title>');
  });

  it('streams live changes as Server-Sent Events', async () => {
    await app.listen({ host: '127.0.0.1', port: 0 });
    const addr = app.server.address();
    const port = typeof addr === 'object' && addr ? addr.port : 0;
    let text = '';
    const req = request({ host: '127.0.0.1', port, path: '/api/events' }, (res) => {
      expect(res.headers['content-type']).toBe('text/event-stream');
      res.on('data', (b: Buffer) => (text += b.toString()));
    });
    req.end();
    await eventually(() => text.includes(': connected'), 'stream open');
    await c.send({ type: 'image.disable', imageId: image });
    await eventually(() => /event: image\ndata: \{[^\n]*"state":"DISABLED"/.test(text), 'image event');
    expect(text).toMatch(/event: fact\ndata: \{[^\n]*"type":"image.disabled"/);
    req.destroy();
  });
});
