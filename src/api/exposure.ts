import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { z } from 'zod';
import { DEFAULT_SECURITY, DEFAULT_STREAMS_PER_CLIENT, LOOPBACK_HOSTS, type ApiSecurity } from './security.js';

const EnvSchema = z.object({
  /** Address the dashboard and API listen on; loopback unless an operator says otherwise. */
  IMGR_HTTP_HOST: z.string().default('127.0.0.1'),
  /** Further Host header names to answer (comma-separated), e.g. the name a reverse proxy uses. */
  IMGR_HTTP_ALLOWED_HOSTS: z.string().default(''),
  /** The bearer token; when absent and the API listens beyond loopback, one is generated into the token file. */
  IMGR_API_TOKEN: z.string().min(16).optional(),
  IMGR_HTTP_MAX_STREAMS: z.coerce.number().int().positive().default(DEFAULT_SECURITY.maxEventStreams),
  /** Of those, how many one client address may hold (behind a reverse proxy, every client is the proxy). */
  IMGR_HTTP_MAX_STREAMS_PER_CLIENT: z.coerce.number().int().positive().default(DEFAULT_STREAMS_PER_CLIENT),
});

export interface Exposure {
  readonly host: string;
  readonly security: ApiSecurity;
  /** Where a generated token is kept (0600), when one is needed. */
  readonly tokenFile: string | null;
}

const isLoopback = (host: string): boolean => (LOOPBACK_HOSTS as readonly string[]).includes(host) || host.startsWith('127.');

/**
 * How the API is exposed. On loopback it needs no token (the Host check
 * still applies); bound anywhere else it requires one, generated at first
 * start and kept in `tokenFile` unless IMGR_API_TOKEN gives it.
 */
export async function exposure(env: NodeJS.ProcessEnv, tokenFile: string): Promise<Exposure> {
  const e = EnvSchema.parse(env);
  const extra = e.IMGR_HTTP_ALLOWED_HOSTS.split(',').map((h) => h.trim().toLowerCase()).filter((h) => h !== '');
  const bound = e.IMGR_HTTP_HOST === '0.0.0.0' || e.IMGR_HTTP_HOST === '::' ? [] : [e.IMGR_HTTP_HOST.toLowerCase()];
  const allowedHosts = [...new Set([...LOOPBACK_HOSTS, ...bound, ...extra])];
  if (isLoopback(e.IMGR_HTTP_HOST)) return { host: e.IMGR_HTTP_HOST, security: { allowedHosts, token: e.IMGR_API_TOKEN ?? null, maxEventStreams: e.IMGR_HTTP_MAX_STREAMS, maxEventStreamsPerClient: e.IMGR_HTTP_MAX_STREAMS_PER_CLIENT }, tokenFile: null };
  const token = e.IMGR_API_TOKEN ?? (await generatedToken(tokenFile));
  return { host: e.IMGR_HTTP_HOST, security: { allowedHosts, token, maxEventStreams: e.IMGR_HTTP_MAX_STREAMS, maxEventStreamsPerClient: e.IMGR_HTTP_MAX_STREAMS_PER_CLIENT }, tokenFile: e.IMGR_API_TOKEN === undefined ? tokenFile : null };
}

async function generatedToken(file: string): Promise<string> {
  try {
    const t = (await readFile(file, 'utf8')).trim();
    if (t.length >= 16) return t;
  } catch {
    // first start
  }
  const token = randomBytes(32).toString('base64url');
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, `${token}\n`, { mode: 0o600 });
  return token;
}
