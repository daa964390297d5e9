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
import { systemClock } from './platform/clock.js';
import { createLogger, type Logger } from './platform/logger.js';
import { loadSettings, openNebulaOf, type Settings } from './platform/settings.js';

const EnvSchema = z.object({
  NATS_URL: z.string().default('nats://127.0.0.1:4222'),
  IMGR_DRIVERS_DIR: z.string().default(fileURLToPath(new URL('../drivers', import.meta.url))),
  IMGR_DRIVER_CONCURRENCY: z.coerce.number().int().positive().default(15),
  IMGR_HTTP_PORT: z.coerce.number().int().min(0).max(65535).default(7420),
  IMGR_DATA_DIR: z.string().default(fileURLToPath(new URL('../.data', import.meta.url))),
  /** The driver hosts' secrets key (created at first start, 0600); every driver host needs the same file. */
  IMGR_SECRETS_KEY_FILE: z.string().optional(),
});
type Env = z.infer<typeof EnvSchema>;

interface Running {
  stop(): Promise<void>;
}

async function startRole(role: string, env: Env, settings: Settings, log: Logger): Promise<Running> {
  switch (role) {
    case 'manager':
      return Manager.start({ servers: env.NATS_URL, config: settings.manager, log });
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
        },
        systemClock,
        log,
      );
      await host.start();
      return {
        stop: async () => {
          await host.stop();
          await nc.drain();
        },
      };
    }
    case 'projections': {
      const nc = await connectAs('manager', env.NATS_URL, 'imgr-projections');
      const projector = await ProjectionService.start(nc, log);
      return {
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
        stop: async () => {
          await app.close();
          views.stop();
          await nc.drain();
        },
      };
    }
    default:
      throw new Error(`unknown role "${role}"; known roles: manager, drivers, projections, api`);
  }
}

/** Runs one role until SIGINT or SIGTERM (`imgr serve --role …` and `main.ts <role>`). */
export async function serve(role: string): Promise<void> {
  const env = EnvSchema.parse(process.env);
  const log = createLogger(`imgr-${role}`);
  const settings = loadSettings(process.env, env.IMGR_DATA_DIR);
  const running = await startRole(role, env, settings, log);
  const stop = (signal: string): void => {
    log.info({ signal }, 'stopping');
    running.stop().then(
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
