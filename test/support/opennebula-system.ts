import { join } from 'node:path';
import { TestNats } from './nats.js';
import { DRIVERS_DIR } from './driver-request.js';
import { Manager } from '../../src/manager.js';
import { DriverHost } from '../../src/driver-host/driver-host.js';
import { ImgrClient } from '../../src/client/index.js';
import { connectAs } from '../../src/platform/nats.js';
import { silentLogger } from '../../src/platform/logger.js';
import { systemClock } from '../../src/platform/clock.js';
import { BUNDLED_DRIVERS } from '../../src/platform/config.js';

/**
 * A real nats-server, a manager and a driver host that runs the bundled
 * drivers and OpenNebula's own `fs` (as DS_MAD `one-fs`, from the tree at
 * `location`), with datastores under `dir`, and the administrator's client.
 */
export async function startWithOpenNebulaFs(dir: string, location: string): Promise<{ nats: TestNats; manager: Manager; host: DriverHost; client: ImgrClient }> {
  const nats = await TestNats.start();
  const manager = await Manager.start({
    servers: nats.url,
    log: silentLogger(),
    tickMs: 100,
    config: { drivers: { dsMads: { ...BUNDLED_DRIVERS.dsMads, 'one-fs': {} }, tmMads: BUNDLED_DRIVERS.tmMads, datastoreLocation: join(dir, 'datastores') } },
  });
  const host = new DriverHost(
    await connectAs('drivers', nats.url),
    { driversDir: DRIVERS_DIR, opennebula: { location, drivers: { 'one-fs': 'fs' } }, concurrency: 4, graceMs: 200, maxStdoutBytes: 65536, secretsKeyFile: join(dir, 'secrets.key') },
    systemClock,
    silentLogger(),
  );
  await host.start();
  const client = await ImgrClient.connect({ servers: nats.url, actor: { uid: 0, gid: 0, name: 'oneadmin' } });
  return { nats, manager, host, client };
}
