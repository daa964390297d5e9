import { connect, type NatsConnection } from '@nats-io/transport-node';
import { z } from 'zod';
import { assertServerVersion } from './server-version.js';

export const ROLES = ['manager', 'drivers', 'service', 'auditor', 'dashboard'] as const;
export const RoleSchema = z.enum(ROLES);
export type Role = z.infer<typeof RoleSchema>;

/** The development passwords of nats.conf; IMGR_NATS_<ROLE>_PASSWORD replaces them. */
export function credentialsFor(role: Role, env: NodeJS.ProcessEnv = process.env): { user: string; pass: string } {
  return { user: role, pass: env[`IMGR_NATS_${role.toUpperCase()}_PASSWORD`] ?? `imgr-${role}` };
}

/** The inbox prefix of a role: nats.conf lets each role subscribe to its own only. */
export const inboxPrefixFor = (role: Role): string => `_INBOX.${role}`;

/**
 * Connects as a role. The client reconnects forever: a NATS server that
 * restarts must not take the manager down (its JetStream state is on disk).
 * A server older than imgr needs is refused here, before anything is used.
 */
export async function connectAs(role: Role, servers: string, name = `imgr-${role}`): Promise<NatsConnection> {
  const nc = await connect({
    servers,
    name,
    ...credentialsFor(role),
    inboxPrefix: inboxPrefixFor(role),
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    pingInterval: 10_000,
  });
  try {
    assertServerVersion(nc.info?.version, nc.getServer());
  } catch (e) {
    await nc.close();
    throw e;
  }
  return nc;
}
