import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ImgrMetrics } from './metrics.js';
import type { NatsConnection } from '@nats-io/transport-node';

/** What a role answers /readyz with: each check by name, true when it holds. */
export type Readiness = () => Record<string, boolean>;

export interface OpsServer {
  /** http://host:port */
  readonly url: string;
  close(): Promise<void>;
}

/**
 * The operator's endpoints of a process: `/metrics` (Prometheus text format),
 * `/healthz` (the process serves: restart it when this fails) and `/readyz`
 * (every check of every role in it holds: send it work, or count it in). On
 * loopback unless told otherwise; they show no image, datastore or secret.
 */
export async function startOpsServer(o: { metrics: ImgrMetrics; readiness: readonly Readiness[]; host: string; port: number }): Promise<OpsServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/metrics') {
      o.metrics.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': o.metrics.registry.contentType }).end(text),
        (e: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${e instanceof Error ? e.message : String(e)}\n`),
      );
      return;
    }
    if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ status: 'ok' }));
      return;
    }
    if (path === '/readyz') {
      const checks = Object.assign({}, ...o.readiness.map((r) => r())) as Record<string, boolean>;
      const ready = Object.values(checks).every(Boolean);
      res.writeHead(ready ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify({ ready, checks }));
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: /metrics, /healthz, /readyz\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { address, port } = server.address() as AddressInfo;
  return {
    url: `http://${address.includes(':') ? `[${address}]` : address}:${port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** Where a role serves its operator endpoints unless IMGR_METRICS_PORT says otherwise (`npm start`, all roles in one process, uses the manager's). */
export const DEFAULT_METRICS_PORTS = { manager: 7421, drivers: 7422, projections: 7423, api: 7424 } as const;

/** A readiness check that holds while the connection is up: false from a disconnect until the reconnect, and once closed. */
export function connectionReadiness(nc: NatsConnection, name: string): Readiness {
  let connected = true;
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect') connected = false;
      else if (s.type === 'reconnect') connected = true;
    }
  })();
  return () => ({ [`nats connection (${name})`]: connected && !nc.isClosed() });
}
