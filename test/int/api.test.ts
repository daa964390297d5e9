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
import type { ImgrClient } from '../../src/client/index.js';
import { LiveViews } from '../../src/api/views.js';
import { buildApi } from '../../src/api/api.js';
import { exposure } from '../../src/api/exposure.js';
import { loadOrCreateKey, publishSecretsKey } from '../../src/secrets/keyring.js';
import { REDACTED, unseal } from '../../src/secrets/sealed.js';
import { readLog } from '../support/log.js';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

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
  await sys.admin.send({ type: 'datastore.create', datastoreId: ds, template: { NAME: 'images', DS_MAD: 'fs', TM_MAD: 'shared' } });
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
    expect((await app.inject({ url: `/api/datastores/${ds}` })).json()).toMatchObject({ id: ds, name: 'images', imagesByState: { READY: 1 }, operationsByAction: {}, reservedMb: 0 });
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

describe('the HTTP API as a web page or a stranger meets it', () => {
  const onPort = async (a: FastifyInstance): Promise<number> => {
    await a.listen({ host: '127.0.0.1', port: 0 });
    const addr = a.server.address();
    return typeof addr === 'object' && addr ? addr.port : 0;
  };
  const openStream = (port: number): Promise<{ status: number; close: () => void }> =>
    new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/api/events' }, (res) => {
        resolve({ status: res.statusCode ?? 0, close: () => req.destroy() });
        res.resume();
      });
      req.on('error', reject);
      req.end();
    });

  it('sends security headers with every answer, the page and the events included', async () => {
    for (const url of ['/', '/api/datastores', '/api/nope']) {
      const r = await app.inject({ url });
      expect(r.headers['content-security-policy'], url).toMatch(/default-src 'none'.*script-src 'sha256-[A-Za-z0-9+/=]+'.*frame-ancestors 'none'/);
      expect(r.headers).toMatchObject({ 'x-content-type-options': 'nosniff', 'x-frame-options': 'DENY', 'referrer-policy': 'no-referrer' });
    }
  });

  it('answers only to its own host names: a rebinding page is refused', async () => {
    expect((await app.inject({ url: '/api/images', headers: { host: 'attacker.example:7420' } })).statusCode).toBe(403);
    expect((await app.inject({ url: '/', headers: { host: 'rebind.attacker.example' } })).json()).toEqual({ error: 'Host not allowed' });
    expect((await app.inject({ url: '/api/images', headers: { host: '127.0.0.1:7420' } })).statusCode).toBe(200);
    expect((await app.inject({ url: '/api/images', headers: { host: 'localhost' } })).statusCode).toBe(200);
  });

  it('with a token, nothing answers without it; the page sets it as a cookie its requests send', async () => {
    const token = 'a-test-token-of-enough-length';
    const guarded = buildApi({ views, security: { allowedHosts: ['localhost', 'imgr.example'], token, maxEventStreams: 4 } });
    try {
      expect((await guarded.inject({ url: '/api/images', headers: { host: 'imgr.example' } })).statusCode).toBe(401);
      expect((await guarded.inject({ url: '/api/images', headers: { host: 'imgr.example', authorization: 'Bearer wrong-token-of-enough-len' } })).statusCode).toBe(401);
      expect((await guarded.inject({ url: '/api/images?token=' + token, headers: { host: 'imgr.example' } })).statusCode).toBe(401);
      expect((await guarded.inject({ url: '/api/images', headers: { host: 'imgr.example', authorization: `Bearer ${token}` } })).statusCode).toBe(200);
      const page = await guarded.inject({ url: `/?token=${token}`, headers: { host: 'imgr.example' } });
      expect(page.statusCode).toBe(200);
      const cookie = String(page.headers['set-cookie']).split(';')[0] ?? '';
      expect(String(page.headers['set-cookie'])).toMatch(/HttpOnly; SameSite=Strict/);
      expect((await guarded.inject({ url: '/api/datastores', headers: { host: 'imgr.example', cookie } })).statusCode).toBe(200);
    } finally {
      await guarded.close();
    }
  });

  it('caps the open event streams and frees a place when one closes', async () => {
    const capped = buildApi({ views, security: { allowedHosts: ['127.0.0.1'], token: null, maxEventStreams: 2 } });
    try {
      const port = await onPort(capped);
      const a = await openStream(port);
      const b = await openStream(port);
      expect([a.status, b.status]).toEqual([200, 200]);
      expect((await openStream(port)).status).toBe(503);
      a.close();
      await eventually(async () => {
        const s = await openStream(port);
        s.close();
        return s.status === 200;
      }, 'a place to free up');
      b.close();
    } finally {
      await capped.close();
    }
  });

  it('listens on loopback without a token; bound elsewhere it needs one, generated once into a 0600 file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'imgr-token-'));
    try {
      const file = join(dir, 'api-token');
      expect(await exposure({}, file)).toMatchObject({ host: '127.0.0.1', tokenFile: null, security: { token: null } });
      const wide = await exposure({ IMGR_HTTP_HOST: '0.0.0.0', IMGR_HTTP_ALLOWED_HOSTS: 'imgr.example' }, file);
      expect(wide.security.token).toMatch(/^[A-Za-z0-9_-]{40,}$/);
      expect(wide.security.allowedHosts).toContain('imgr.example');
      expect(statSync(file).mode & 0o777).toBe(0o600);
      expect((await exposure({ IMGR_HTTP_HOST: '0.0.0.0' }, file)).security.token).toBe(wide.security.token);
      expect((await exposure({ IMGR_HTTP_HOST: '10.1.2.3', IMGR_API_TOKEN: 'given-token-0123456789' }, file)).security).toMatchObject({ token: 'given-token-0123456789' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('shows secret attributes redacted: views, events and histories hold no plain text (W23)', async () => {
    const key = await loadOrCreateKey(join(mkdtempSync(join(tmpdir(), 'imgr-key-')), 'secrets.key'));
    // Published by the manager role, and pinned beside the credentials for the clients (as npm start does).
    await publishSecretsKey(await nats.connect('manager'), key.publicKeyPem);
    const id = await c.nextId('datastore');
    expect(await sys.admin.send({ type: 'datastore.create', datastoreId: id, template: { NAME: 'vault', TYPE: 'BACKUP_DS', DS_MAD: 'restic', RESTIC_PASSWORD: 'api-visible-SECRET' } })).toMatchObject({ status: 'accepted' });
    await eventually(() => views.datastores.get(id) !== undefined, 'the datastore view');
    const view = await app.inject({ url: `/api/datastores/${id}` });
    expect(view.json<{ template: Record<string, string> }>().template['RESTIC_PASSWORD']).toBe(REDACTED);
    for (const url of [`/api/datastores/${id}`, '/api/datastores', `/api/datastores/${id}/history`]) expect((await app.inject({ url })).body, url).not.toContain('api-visible-SECRET');
    // Sealed in the log, opened only with the driver hosts' key.
    const sealed = (await readLog(await nats.connect('manager'), `imgr.evt.datastore.${id}`))[0]?.commit.facts[0]?.changes['template'] as Record<string, string>;
    expect(unseal(key.privateKey, sealed['RESTIC_PASSWORD'] ?? '')).toBe('api-visible-SECRET');
  });
});
