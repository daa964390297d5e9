/**
 * `npm start`: the whole system on one machine. Runs nats-server with
 * nats.conf as a child process (or uses the one NATS_URL names), the
 * manager, the driver host, the projections and the dashboard; creates the default
 * datastores on first start; stops cleanly on Ctrl-C and starts again on the
 * same data without loss.
 */
import { mkdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { startNatsServer, type NatsServer } from './platform/nats-server.js';
import { connectAs, credentialsDir } from './platform/nats.js';
import { Responder } from './platform/responder.js';
import { writeServerConfig } from './platform/nats-auth.js';
import { loadPrincipals, publishPrincipals } from './platform/principals-file.js';
import { createLogger, type Logger } from './platform/logger.js';
import { privateFile, secureDataDir } from './platform/data-dir.js';
import { defaultDatastoreTemplates, safeDirsCover } from './platform/default-datastores.js';
import { systemClock } from './platform/clock.js';
import { loadSettings, openNebulaOf } from './platform/settings.js';
import { Manager } from './manager.js';
import { DriverHost } from './driver-host/driver-host.js';
import { loadOrCreateKey, publishSecretsKey } from './secrets/keyring.js';
import { ProjectionService } from './projections/service.js';
import { LiveViews } from './api/views.js';
import { buildApi } from './api/api.js';
import { exposure } from './api/exposure.js';
import { ImgrClient } from './client/index.js';
import { ImgrMetrics } from './platform/metrics.js';
import { DEFAULT_METRICS_PORTS, connectionReadiness, startOpsServer, type Readiness } from './platform/ops-server.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

const EnvSchema = z.object({
  /** Use this NATS system instead of starting one. */
  NATS_URL: z.string().optional(),
  IMGR_DATA_DIR: z.string().default(resolve(ROOT, '.data')),
  IMGR_NATS_PORT: z.coerce.number().int().min(0).max(65535).default(4222),
  IMGR_HTTP_PORT: z.coerce.number().int().min(0).max(65535).default(7420),
  /** /metrics, /healthz, /readyz of the whole system (one process, one registry). */
  IMGR_METRICS_PORT: z.coerce.number().int().min(0).max(65535).default(DEFAULT_METRICS_PORTS.manager),
  IMGR_METRICS_HOST: z.string().default('127.0.0.1'),
});

async function main(): Promise<void> {
  const env = EnvSchema.parse(process.env);
  const data = resolve(env.IMGR_DATA_DIR);
  // The terminal shows the banner; the JSON log goes to a file beside the data.
  const logFile = resolve(data, 'imgr.log');
  // <data> is imgr's alone (0700, its files 0600), an earlier start's looser modes included.
  await secureDataDir(data);
  privateFile(logFile);
  const log = createLogger('imgr', process.env['IMGR_LOG_LEVEL'] ?? 'info', logFile);
  await mkdir(resolve(data, 'nats'), { recursive: true });
  // Every process of this system (and the CLI) finds its NATS password here.
  process.env['IMGR_CREDENTIALS_DIR'] ??= resolve(data, 'credentials');
  const principals = loadPrincipals(resolve(data, 'principals.json'));
  // The same configuration every role reads: <data>/imgr.json and IMGR_CONFIG.
  const settings = loadSettings(process.env, data);

  let server: NatsServer | undefined;
  let url = env.NATS_URL;
  if (url === undefined) {
    const configFile = writeServerConfig(resolve(ROOT, 'nats.conf'), principals, credentialsDir(), resolve(data, 'nats.conf'));
    server = await startNatsServer({ configFile, storeDir: resolve(data, 'nats'), port: env.IMGR_NATS_PORT === 0 ? 'random' : env.IMGR_NATS_PORT, pidFile: resolve(data, 'nats.pid') });
    url = server.url;
  }
  const metrics = new ImgrMetrics().withProcessMetrics();
  let ready = false;
  let stopping = false;
  // Read at every request: each role adds its connection's check once it runs.
  const readiness: Readiness[] = [() => ({ started: ready && !stopping })];
  const ops = await startOpsServer({ metrics, readiness, host: env.IMGR_METRICS_HOST, port: env.IMGR_METRICS_PORT });
  const manager = await Manager.start({ servers: url, config: settings.manager, log: log.child({ role: 'manager' }), metrics });
  readiness.push(connectionReadiness(manager.nc, 'manager'));
  await publishPrincipals(manager.nc, principals);
  // The driver host's secrets key is created at first start; the manager role publishes its public half
  // (the drivers role may not write imgr_meta) and pins its fingerprint beside the credentials for clients.
  const secretsKeyFile = resolve(data, 'secrets.key');
  await publishSecretsKey(manager.nc, (await loadOrCreateKey(secretsKeyFile)).publicKeyPem);
  const driverConn = await connectAs('drivers', url);
  const host = new DriverHost(
    driverConn,
    { driversDir: resolve(ROOT, 'drivers'), ...openNebulaOf(settings), concurrency: 15, graceMs: 5_000, maxStdoutBytes: 1024 * 1024, stagingDir: resolve(data, 'staging'), secretsKeyFile },
    systemClock,
    log.child({ role: 'drivers' }),
    metrics,
  );
  await host.start();
  readiness.push(connectionReadiness(driverConn, 'drivers'));
  const projectionsConn = await connectAs('manager', url, 'imgr-projections');
  const projectionsLog = log.child({ role: 'projections' });
  const projections = await ProjectionService.start(projectionsConn, await Responder.connect(url, 'imgr-projections-queries', projectionsLog), projectionsLog, metrics);
  readiness.push(connectionReadiness(projectionsConn, 'projections'));
  await mkdir(resolve(data, 'import'), { recursive: true, mode: 0o750 });
  await createDefaults(url, settings.manager.drivers.datastoreLocation, resolve(data, 'import'), log);
  const apiConn = await connectAs('dashboard', url, 'imgr-api');
  const views = await LiveViews.start(apiConn);
  const exposed = await exposure(process.env, resolve(data, 'api-token'));
  const api = buildApi({ views, security: exposed.security });
  const dashboard = await api.listen({ host: exposed.host, port: env.IMGR_HTTP_PORT });
  readiness.push(connectionReadiness(apiConn, 'api'));
  // What the server and the roles wrote meanwhile (nats.conf, nats.pid, principals.json, api-token…) is 0600 too.
  await secureDataDir(data);
  ready = true;

  const stop = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    await api.close();
    views.stop();
    await apiConn.drain();
    await host.stop();
    await driverConn.drain();
    await projections.stop();
    await manager.stop();
    await server?.stop();
    await ops.close();
    process.stdout.write('imgr stopped\n');
    process.exit(0);
  };
  process.once('SIGINT', () => void stop('SIGINT'));
  process.once('SIGTERM', () => void stop('SIGTERM'));

  process.stdout.write(
    [
      '',
      `imgr is running (data in ${data}, log in ${logFile})`,
      `  dashboard:   ${dashboard}/${exposed.tokenFile !== null ? ` (token in ${exposed.tokenFile}; open /?token=…)` : ""}`,
      `  NATS:        ${url}${server ? ' (nats-server started with nats.conf)' : ''}`,
      `  metrics:     ${ops.url}/metrics   (health: /healthz, /readyz)`,
      '  datastores:  1 "default" (fs, images), 2 "files" (fs, kernels and contexts), "dummy" (no storage)',
      `  CLI:         bin/imgr --nats ${url} image list   (bin/imgr --help)`,
      '  services:    send commands with src/client (ImgrClient) as user "service"; see README "Sending a command"',
      '  stop:        Ctrl-C',
      'imgr ready',
      '',
    ].join('\n'),
  );
}

/**
 * On first start: the built-in datastores of spec §12.2 (ids 1 and 2) and a
 * dummy one (platform/default-datastores.ts). They copy local files only
 * from the data directory's `import` folder; restores and URL imports reach
 * their drivers by an allowance for the one copy. A datastore an earlier
 * start created may still allow the datastores' folder: said at every start.
 */
async function createDefaults(url: string, datastores: string, imports: string, log: Logger): Promise<void> {
  const c = await ImgrClient.connect({ servers: url, principal: 'oneadmin', actor: { uid: 0, gid: 0, name: 'oneadmin', service: 'start' } });
  try {
    const existing = await c.datastore(1);
    if (existing !== null) {
      for (const d of [existing, await c.datastore(2)]) {
        if (d !== null && safeDirsCover(d.template['SAFE_DIRS'], datastores)) {
          const warning = `datastore ${d.id} (${d.name}) lets its driver copy from ${datastores} (SAFE_DIRS "${d.template['SAFE_DIRS'] ?? ''}"): any user may register another's image file by its SOURCE. Create datastores that import from ${imports} only, and move the images.`;
          log.warn({ datastoreId: d.id }, warning);
          process.stderr.write(`imgr: warning: ${warning}\n`);
        }
      }
      return;
    }
    // IMGR_URL_ALLOWED_NETWORKS at first start: the networks their URL imports may reach besides public ones.
    const defaults = defaultDatastoreTemplates(imports, process.env['IMGR_URL_ALLOWED_NETWORKS']);
    const templates = [
      { id: 1, template: defaults.default },
      { id: 2, template: defaults.files },
      { id: await c.nextId('datastore'), template: defaults.dummy },
    ];
    for (const { id, template } of templates) {
      const o = await c.send({ type: 'datastore.create', datastoreId: id, template }, { commandId: `bootstrap-datastore-${template.NAME}` });
      if (o.status === 'rejected' && o.code !== 'DS_ERR_EXISTS' && o.code !== 'DS_ERR_NAME_TAKEN') throw new Error(`cannot create datastore ${template.NAME}: ${o.message}`);
    }
  } finally {
    await c.close();
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`imgr: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
