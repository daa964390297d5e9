import { connect, type NatsConnection } from '@nats-io/transport-node';
import { z } from 'zod';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { assertServerVersion } from './server-version.js';
import { passwordOf } from './nats-auth.js';

export const ROLES = ['manager', 'drivers', 'service', 'auditor', 'dashboard', 'responder'] as const;
export const RoleSchema = z.enum(ROLES);
export type Role = z.infer<typeof RoleSchema>;

/** Where each NATS user's password is kept (0600 files): IMGR_CREDENTIALS_DIR, else .data/credentials. */
export const credentialsDir = (env: NodeJS.ProcessEnv = process.env): string =>
  env['IMGR_CREDENTIALS_DIR'] ?? (env['IMGR_DATA_DIR'] !== undefined ? join(env['IMGR_DATA_DIR'], 'credentials') : DEFAULT_CREDENTIALS_DIR);
const DEFAULT_CREDENTIALS_DIR = fileURLToPath(new URL('../../.data/credentials', import.meta.url));

/** A role's or principal's NATS login: IMGR_NATS_<USER>_PASSWORD, else its credentials file. */
export function credentialsFor(user: string, env: NodeJS.ProcessEnv = process.env): { user: string; pass: string } {
  return { user, pass: passwordOf(user, credentialsDir(env), env) };
}

/** The inbox prefix of a role or principal: each may subscribe to its own only. */
export const inboxPrefixFor = (user: string): string => `_INBOX.${user}`;

/** NATS_URL may name several servers of one cluster, separated by commas (as the nats CLI takes them). */
export const serverList = (servers: string): string[] =>
  servers
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');

/**
 * Connects as a role. The client reconnects forever: a NATS server that
 * restarts must not take the manager down (its JetStream state is on disk).
 * A server older than imgr needs is refused here, before anything is used.
 */
export async function connectAs(role: string, servers: string, name = `imgr-${role}`): Promise<NatsConnection> {
  const nc = await connect({
    servers: serverList(servers),
    name,
    ...credentialsFor(role),
    inboxPrefix: inboxPrefixFor(role),
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    pingInterval: 10_000,
    // The client otherwise builds an Error (a stack trace) ahead of every request and subscription timeout
    // in case it fails: measured at about 6 % of the manager's CPU under load, for traces nobody reads.
    noAsyncTraces: true,
  });
  try {
    assertServerVersion(nc.info?.version, nc.getServer());
  } catch (e) {
    await nc.close();
    throw e;
  }
  return nc;
}
