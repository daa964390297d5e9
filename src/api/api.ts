import Fastify, { type FastifyInstance } from 'fastify';
import { z } from 'zod';
import { ImageQuerySchema, queryImages } from '../projections/query.js';
import { historyOf } from '../audit/history.js';
import { verifyLog } from '../audit/verify.js';
import { listParked } from '../audit/parked.js';
import { DASHBOARD_HTML } from './dashboard.js';
import type { LiveViews } from './views.js';
import { DEFAULT_SECURITY, secure, type ApiSecurity } from './security.js';

export interface ApiDeps {
  readonly views: LiveViews;
  readonly security?: ApiSecurity;
}

const Id = z.object({ id: z.coerce.number().int().nonnegative() });
const numbers = ['datastoreId', 'uid', 'offset', 'limit'] as const;

/**
 * The read-only HTTP API: JSON views and histories, Server-Sent Events for
 * live changes, and the dashboard page. Built without listening; `main`
 * listens, tests use `inject`. Only GET routes exist: the API changes nothing.
 */
export function buildApi(deps: ApiDeps): FastifyInstance {
  const app = Fastify({ logger: false });
  const { views } = deps;
  const nc = views.connection;
  const streams = secure(app, deps.security ?? DEFAULT_SECURITY);

  app.get('/', (_req, reply) => reply.type('text/html; charset=utf-8').send(DASHBOARD_HTML));

  app.get('/api/images', (req, reply) => {
    const raw: Record<string, unknown> = { ...(req.query as Record<string, string>) };
    for (const k of numbers) if (typeof raw[k] === 'string') raw[k] = Number(raw[k]);
    if (typeof raw['state'] === 'string') raw['state'] = raw['state'].toUpperCase();
    if (typeof raw['type'] === 'string') raw['type'] = raw['type'].toUpperCase();
    const q = ImageQuerySchema.safeParse(raw);
    if (!q.success) return reply.code(400).send({ error: q.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ') });
    return queryImages(views.images.values(), q.data);
  });
  app.get('/api/images/:id', (req, reply) => {
    const p = Id.safeParse(req.params);
    const v = p.success ? views.images.get(p.data.id) : undefined;
    return v ?? reply.code(404).send({ error: `image ${(req.params as { id: string }).id} not found` });
  });
  app.get('/api/images/:id/history', async (req, reply) => {
    const p = Id.safeParse(req.params);
    return p.success ? historyOf(nc, 'image', p.data.id) : reply.code(400).send({ error: 'bad id' });
  });
  app.get('/api/datastores', () => [...views.datastores.values()].sort((a, b) => a.id - b.id));
  app.get('/api/datastores/:id', (req, reply) => {
    const p = Id.safeParse(req.params);
    const v = p.success ? views.datastores.get(p.data.id) : undefined;
    return v ?? reply.code(404).send({ error: `datastore ${(req.params as { id: string }).id} not found` });
  });
  app.get('/api/datastores/:id/history', async (req, reply) => {
    const p = Id.safeParse(req.params);
    return p.success ? historyOf(nc, 'datastore', p.data.id) : reply.code(400).send({ error: 'bad id' });
  });
  app.get('/api/usage', () => Object.fromEntries(views.usage));
  app.get('/api/audit/verify', () => verifyLog(nc));
  app.get('/api/parked', () => listParked(nc));

  app.get('/api/events', (req, reply) => {
    const release = streams.openStream(req, reply);
    if (release === null) return reply;
    // The raw stream bypasses fastify's send: carry the security headers the hook set.
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(reply.getHeaders())) if (typeof v === 'string') headers[k] = v;
    reply.raw.writeHead(200, { ...headers, 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    const send = (event: string) => (data: unknown) => reply.raw.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    const handlers = { image: send('image'), datastore: send('datastore'), fact: send('fact'), reset: send('reset') };
    for (const [e, h] of Object.entries(handlers)) views.on(e, h);
    reply.raw.write(': connected\n\n');
    const ping = setInterval(() => reply.raw.write(': ping\n\n'), 15_000);
    req.raw.on('close', () => {
      release();
      clearInterval(ping);
      for (const [e, h] of Object.entries(handlers)) views.off(e, h);
    });
    return reply;
  });
  return app;
}
