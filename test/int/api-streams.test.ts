/**
 * Event streams are capped per client address as well as in all (issue 27):
 * one client could hold every place of the API's Server-Sent Events. Real
 * sockets from two loopback addresses (127.0.0.1 and 127.0.0.2) play two
 * clients.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { eventually } from '../support/eventually.js';
import { startSystem, type TestSystem } from '../support/system.js';
import { LiveViews } from '../../src/api/views.js';
import { buildApi } from '../../src/api/api.js';
import { clientKey } from '../../src/api/security.js';
import { exposure } from '../../src/api/exposure.js';

let sys: TestSystem;
let views: LiveViews;

beforeAll(async () => {
  sys = await startSystem();
  views = await LiveViews.start(await sys.nats.connect('dashboard'));
});
afterAll(async () => {
  views.stop();
  await sys.stop();
});

const onPort = async (a: FastifyInstance): Promise<number> => {
  await a.listen({ host: '127.0.0.1', port: 0 });
  const addr = a.server.address();
  return typeof addr === 'object' && addr ? addr.port : 0;
};

const opened: (() => void)[] = [];
/** Opens /api/events from `from`; its status, the error text of a refusal, and a way to close it. */
const openStream = (port: number, from: string): Promise<{ status: number; body: Promise<string>; close: () => void }> =>
  new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/api/events', localAddress: from }, (res) => {
      const status = res.statusCode ?? 0;
      const body = new Promise<string>((done) => {
        if (status === 200) {
          res.resume();
          done('');
          return;
        }
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => done(text));
      });
      opened.push(() => req.destroy());
      resolve({ status, body, close: () => req.destroy() });
    });
    req.on('error', reject);
    req.end();
  });

describe('event streams per client', () => {
  it('one address cannot take every place: its own cap refuses it while another address still gets one', async () => {
    const app = buildApi({ views, security: { allowedHosts: ['127.0.0.1'], token: null, maxEventStreams: 10, maxEventStreamsPerClient: 3 } });
    try {
      const port = await onPort(app);
      const mine = await Promise.all([1, 2, 3].map(() => openStream(port, '127.0.0.1')));
      expect(mine.map((s) => s.status)).toEqual([200, 200, 200]);
      const fourth = await openStream(port, '127.0.0.1');
      expect(fourth.status).toBe(503);
      expect(JSON.parse(await fourth.body)).toEqual({ error: 'too many event streams from 127.0.0.1 (at most 3 per client)' });
      const other = await openStream(port, '127.0.0.2');
      expect(other.status).toBe(200);
      // A closed stream gives its client's place back.
      mine[0]?.close();
      await eventually(async () => {
        const s = await openStream(port, '127.0.0.1');
        s.close();
        return s.status === 200;
      }, 'a place of its own back');
    } finally {
      // Every stream closed, a failed case's included, so the server can close.
      for (const close of opened.splice(0)) close();
      await app.close();
    }
  });

  it('the default cap per client is below the total, so the default leaves places for others', async () => {
    const { security } = await exposure({}, '/nonexistent/token');
    expect(security.maxEventStreamsPerClient).toBe(8);
    expect(security.maxEventStreams).toBe(64);
    expect((await exposure({ IMGR_HTTP_MAX_STREAMS_PER_CLIENT: '2' }, '/nonexistent/token')).security.maxEventStreamsPerClient).toBe(2);
  });

  it('a client is its address: IPv4-mapped as IPv4, IPv6 by its /64', () => {
    expect(clientKey('127.0.0.1')).toBe('127.0.0.1');
    expect(clientKey('::ffff:10.1.2.3')).toBe('10.1.2.3');
    expect(clientKey('2001:db8:1:2:aaaa::1')).toBe('2001:db8:1:2::/64');
    expect(clientKey('2001:db8:1:2:bbbb:cccc:dddd:eeee')).toBe('2001:db8:1:2::/64');
    expect(clientKey('2001:db8:1:3::1')).toBe('2001:db8:1:3::/64');
    expect(clientKey('::1')).toBe('0:0:0:0::/64');
  });
});
