/**
 * Composition root: `imgr-serve <role>` runs one role against the NATS system
 * named by NATS_URL. Roles: manager (more come with the driver host,
 * projections and API).
 */
import { z } from 'zod';
import { Manager } from './manager.js';
import { createLogger } from './platform/logger.js';
import { ManagerConfigSchema } from './platform/config.js';

const EnvSchema = z.object({
  NATS_URL: z.string().default('nats://127.0.0.1:4222'),
  /** Manager configuration as JSON (see platform/config.ts); defaults when absent. */
  IMGR_CONFIG: z.string().default('{}'),
});

async function main(argv: readonly string[]): Promise<void> {
  const role = argv[0] ?? 'manager';
  const env = EnvSchema.parse(process.env);
  const log = createLogger(`imgr-${role}`);
  if (role !== 'manager') throw new Error(`unknown role "${role}"; known roles: manager`);
  let config: unknown;
  try {
    config = JSON.parse(env.IMGR_CONFIG);
  } catch (e) {
    throw new Error(`IMGR_CONFIG is not JSON: ${String(e)}`);
  }
  const manager = await Manager.start({ servers: env.NATS_URL, config: ManagerConfigSchema.parse(config), log });
  const stop = (signal: string): void => {
    log.info({ signal }, 'stopping');
    manager.stop().then(
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

main(process.argv.slice(2)).catch((e: unknown) => {
  process.stderr.write(`imgr: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
