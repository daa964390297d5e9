import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { DASHBOARD_HTML } from './dashboard.js';

export interface ApiSecurity {
  /**
   * Host header names the API answers to (without port). Everything else is
   * refused, so a web page cannot reach it through DNS rebinding.
   */
  readonly allowedHosts: readonly string[];
  /** When set, every request needs it: `Authorization: Bearer <token>` or the cookie `/?token=` sets. */
  readonly token: string | null;
  /** Server-Sent Event streams open at once; more are refused with 503. */
  readonly maxEventStreams: number;
  /**
   * Of those, how many one client address may hold (an IPv6 client counts by
   * its /64, which one host usually has whole), so one client cannot take
   * every place; DEFAULT_STREAMS_PER_CLIENT when absent. Behind a reverse
   * proxy every client has the proxy's address: raise it there.
   */
  readonly maxEventStreamsPerClient?: number;
}

export const DEFAULT_STREAMS_PER_CLIENT = 8;

export const LOOPBACK_HOSTS = ['localhost', '127.0.0.1', '[::1]', '::1'] as const;
export const DEFAULT_SECURITY: ApiSecurity = { allowedHosts: LOOPBACK_HOSTS, token: null, maxEventStreams: 64 };
const COOKIE = 'imgr_token';

/** The dashboard's one inline script, allowed by its hash and nothing else. */
function inlineScriptHash(html: string): string {
  const m = /<script>([\s\S]*?)<\/script>/.exec(html);
  return createHash('sha256').update(m?.[1] ?? '').digest('base64');
}

const CSP = [
  "default-src 'none'",
  `script-src 'sha256-${inlineScriptHash(DASHBOARD_HTML)}'`,
  "style-src 'unsafe-inline'",
  "connect-src 'self'",
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const HEADERS: Record<string, string> = {
  'content-security-policy': CSP,
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
};

/** The host name of a Host header: "127.0.0.1:7420" → "127.0.0.1", "[::1]:80" → "[::1]". */
export function hostName(header: string | undefined): string {
  const h = (header ?? '').trim().toLowerCase();
  if (h.startsWith('[')) return h.slice(0, h.indexOf(']') + 1);
  return h.split(':')[0] ?? '';
}

function sameToken(given: string, token: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

function presented(req: FastifyRequest): string | undefined {
  const auth = req.headers.authorization;
  if (auth?.startsWith('Bearer ')) return auth.slice(7).trim();
  const cookie = req.headers.cookie?.split(';').map((c) => c.trim()).find((c) => c.startsWith(`${COOKIE}=`));
  if (cookie !== undefined) return decodeURIComponent(cookie.slice(COOKIE.length + 1));
  const q = (req.query as Record<string, unknown> | undefined)?.['token'];
  return typeof q === 'string' && req.url.split('?')[0] === '/' ? q : undefined;
}

/**
 * Who a stream counts against: the peer's address (never a header a client
 * writes), an IPv4-mapped one as IPv4, an IPv6 one by its /64.
 */
export function clientKey(address: string | undefined): string {
  const a = (address ?? '').toLowerCase();
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (mapped?.[1] !== undefined) return mapped[1];
  if (!a.includes(':')) return a;
  const [head = '', tail] = a.split('::');
  const h = head === '' ? [] : head.split(':');
  const t = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = [...h, ...new Array<string>(Math.max(0, 8 - h.length - t.length)).fill('0'), ...t];
  return `${groups.slice(0, 4).map((g) => parseInt(g, 16).toString(16)).join(':')}::/64`;
}

/**
 * Security headers on every answer, the Host allow-list and the token check
 * before any route runs, and the count of open event streams, in all and per
 * client address. `openStream` answers 503 itself when there is no place and
 * returns null; else the function that gives the place back.
 */
export function secure(app: FastifyInstance, s: ApiSecurity): { openStream(req: FastifyRequest, reply: FastifyReply): (() => void) | null } {
  const allowed = new Set(s.allowedHosts.map((h) => h.toLowerCase()));
  app.addHook('onRequest', async (req, reply) => {
    for (const [k, v] of Object.entries(HEADERS)) reply.header(k, v);
    if (!allowed.has(hostName(req.headers.host))) return reply.code(403).send({ error: 'Host not allowed' });
    if (s.token !== null) {
      const given = presented(req);
      if (given === undefined || !sameToken(given, s.token)) return reply.code(401).header('www-authenticate', 'Bearer').send({ error: 'a valid token is required' });
      // The dashboard opened with ?token= keeps it in a cookie its own requests (and EventSource) send.
      if (req.url.split('?')[0] === '/') reply.header('set-cookie', `${COOKIE}=${encodeURIComponent(s.token)}; HttpOnly; SameSite=Strict; Path=/`);
    }
    return undefined;
  });
  let open = 0;
  const perClient = new Map<string, number>();
  const maxPerClient = s.maxEventStreamsPerClient ?? DEFAULT_STREAMS_PER_CLIENT;
  return {
    openStream: (req, reply) => {
      const key = clientKey(req.socket.remoteAddress);
      const mine = perClient.get(key) ?? 0;
      if (mine >= maxPerClient) {
        void reply.code(503).send({ error: `too many event streams from ${key} (at most ${maxPerClient} per client)` });
        return null;
      }
      if (open >= s.maxEventStreams) {
        void reply.code(503).send({ error: `too many event streams (at most ${s.maxEventStreams})` });
        return null;
      }
      open += 1;
      perClient.set(key, mine + 1);
      let given = false;
      return () => {
        if (given) return;
        given = true;
        open -= 1;
        const left = (perClient.get(key) ?? 1) - 1;
        if (left <= 0) perClient.delete(key);
        else perClient.set(key, left);
      };
    },
  };
}
