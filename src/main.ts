/**
 * Composition root: `main.ts <role>` runs one role against the NATS system
 * named by NATS_URL. Roles: manager, drivers, projections, api.
 */
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { Manager } from './manager.js';
import { DriverHost } from './driver-host/driver-host.js';
import { ProjectionService } from './projections/service.js';
import { LiveViews } from './api/views.js';
import { buildApi } from './api/api.js';
import { exposure } from './api/exposure.js';
import { connectAs } from './platform/nats.js';
import { Responder } from './platform/responder.js';
import { systemClock } from './platform/clock.js';
import { createLogger, type Logger } from './platform/logger.js';
import { loadSettings, openNebulaOf, type Settings } from './platform/settings.js';
import { ImgrMetrics } from './platform/metrics.js';
import { DEFAULT_METRICS_PORTS, connectionReadiness, startOpsServer, type Readiness } from './platform/ops-server.js';

const EnvSchema = z.object({
  NATS_URL: z.string().default('nats://127.0.0.1:4222'),
  IMGR_DRIVERS_DIR: z.string().default(fileURLToPath(new URL('../drivers', import.meta.url))),
  IMGR_DRIVER_CONCURRENCY: z.coerce.number().int().positive().default(15),
  IMGR_HTTP_PORT: z.coerce.number().int().min(0).max(65535).default(7420),
  IMGR_DATA_DIR: z.string().default(fileURLToPath(new URL('../.data', import.meta.url))),
  /** The driver hosts' secrets key (created at first start, 0600); every driver host needs the same file. */
  IMGR_SECRETS_KEY_FILE: z.string().optional(),
  /** /metrics, /healthz, /readyz; the role's port of DEFAULT_METRICS_PORTS when absent, 0 for any free one. */
  IMGR_METRICS_PORT: z.coerce.number().int().min(0).max(65535).optional(),
  IMGR_METRICS_HOST: z.string().default('127.0.0.1'),
});
type Env = z.infer<typeof EnvSchema>;

interface Running {
  readonly readiness: Readiness;
  stop(): Promise<void>;
}

type RoleName = keyof typeof DEFAULT_METRICS_PORTS;
const isRole = (r: string): r is RoleName => Object.hasOwn(DEFAULT_METRICS_PORTS, r);

async function startRole(role: RoleName, env: Env, settings: Settings, log: Logger, metrics: ImgrMetrics): Promise<Running> {
  switch (role) {
    case 'manager': {
      const manager = await Manager.start({ servers: env.NATS_URL, config: settings.manager, log, metrics });
      return { readiness: connectionReadiness(manager.nc, 'manager'), stop: () => manager.stop() };
    }
    case 'drivers': {
      const nc = await connectAs('drivers', env.NATS_URL);
      const host = new DriverHost(
        nc,
        {
          driversDir: env.IMGR_DRIVERS_DIR,
          ...openNebulaOf(settings),
          concurrency: env.IMGR_DRIVER_CONCURRENCY,
          graceMs: 5_000,
          maxStdoutBytes: 1024 * 1024,
          secretsKeyFile: env.IMGR_SECRETS_KEY_FILE ?? resolve(env.IMGR_DATA_DIR, 'secrets.key'),
          // URL imports wait here (0700) for the datastore's cp.
          stagingDir: resolve(env.IMGR_DATA_DIR, 'staging'),
        },
        systemClock,
        log,
        metrics,
      );
      await host.start();
      return {
        readiness: connectionReadiness(nc, 'drivers'),
        stop: async () => {
          await host.stop();
          await nc.drain();
        },
      };
    }
    case 'projections': {
      const nc = await connectAs('manager', env.NATS_URL, 'imgr-projections');
      const projector = await ProjectionService.start(nc, await Responder.connect(env.NATS_URL, 'imgr-projections-queries', log), log, metrics);
      return {
        readiness: connectionReadiness(nc, 'projections'),
        stop: async () => {
          await projector.stop();
          await nc.drain();
        },
      };
    }
    case 'api': {
      const nc = await connectAs('dashboard', env.NATS_URL, 'imgr-api');
      const views = await LiveViews.start(nc, (bucket) => log.warn({ bucket }, 'waiting for the projections to create their buckets'));
      const exposed = await exposure(process.env, resolve(env.IMGR_DATA_DIR, 'api-token'));
      const app = buildApi({ views, security: exposed.security });
      const address = await app.listen({ host: exposed.host, port: env.IMGR_HTTP_PORT });
      process.stdout.write(`imgr dashboard: ${address}/${exposed.tokenFile !== null ? ` (token in ${exposed.tokenFile})` : ''}\n`);
      return {
        readiness: connectionReadiness(nc, 'api'),
        stop: async () => {
          await app.close();
          views.stop();
          await nc.drain();
        },
      };
    }
  }
}

/** Runs one role until SIGINT or SIGTERM (`imgr serve --role …` and `main.ts <role>`). */
export async function serve(role: string): Promise<void> {
  const env = EnvSchema.parse(process.env);
  const log = createLogger(`imgr-${role}`);
  const settings = loadSettings(process.env, env.IMGR_DATA_DIR);
  if (!isRole(role)) throw new Error(`unknown role "${role}"; known roles: ${Object.keys(DEFAULT_METRICS_PORTS).join(', ')}`);
  const metrics = new ImgrMetrics().withProcessMetrics();
  // Up before the role: a boot over a long log takes a while, and /healthz answers meanwhile (/readyz says not yet).
  let running: Running | undefined = undefined;
  let stopping = false;
  const ops = await startOpsServer({
    metrics,
    readiness: [() => ({ started: running !== undefined && !stopping }), () => running?.readiness() ?? {}],
    host: env.IMGR_METRICS_HOST,
    port: env.IMGR_METRICS_PORT ?? DEFAULT_METRICS_PORTS[role],
  });
  process.stdout.write(`imgr ${role} metrics: ${ops.url}/metrics\n`);
  const started = await startRole(role, env, settings, log, metrics);
  running = started;
  const stop = (signal: string): void => {
    log.info({ signal }, 'stopping');
    // Not ready from here on: whoever balances or counts the roles leaves this one out while it stops.
    stopping = true;
    started
      .stop()
      .then(() => ops.close())
      .then(
        () => process.exit(0),
        (e: unknown) => {
          log.error({ err: e }, 'stop failed');
          process.exit(1);
        },
      );
  };
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.stdout.write(`imgr ${role} ready\n`);
}

if (import.meta.url === `file://${process.argv[1] ?? ''}`) {
  serve(process.argv[2] ?? 'manager').catch((e: unknown) => {
    process.stderr.write(`imgr: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  });
}
