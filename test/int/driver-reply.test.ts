/**
 * A driver's work is reported once it is done (the faults issue, cause 8):
 * when nats-server is away as the script ends, the driver host publishes the
 * reply once the server is back, instead of running the script again; a
 * second run could come after the deadline and leave the first run's file
 * to nobody.
 */
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, existsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestNats } from '../support/nats.js';
import { eventually } from '../support/eventually.js';
import { Manager } from '../../src/manager.js';
import { ImgrClient } from '../../src/client/index.js';
import { DriverHost } from '../../src/driver-host/driver-host.js';
import { connectAs } from '../../src/platform/nats.js';
import { silentLogger } from '../../src/platform/logger.js';
import { systemClock } from '../../src/platform/clock.js';

let nats: TestNats;
let manager: Manager;
let host: DriverHost;
let c: ImgrClient;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'imgr-reply-'));
  const drivers = join(dir, 'drivers');
  mkdirSync(join(drivers, 'slow'), { recursive: true });
  // Counts its runs, then takes long enough for the test to stop the server under it.
  writeFileSync(join(drivers, 'slow', 'cp'), `#!/usr/bin/env bash\ncat >/dev/null\necho run >> ${join(dir, 'runs')}\nsleep 3\necho "$IMGR_DS_BASE_PATH/$1 raw"\n`);
  writeFileSync(join(drivers, 'slow', 'monitor'), '#!/usr/bin/env bash\ncat >/dev/null\nprintf "USED_MB=1\\nTOTAL_MB=100\\nFREE_MB=99\\n"\n');
  chmodSync(join(drivers, 'slow', 'cp'), 0o755);
  chmodSync(join(drivers, 'slow', 'monitor'), 0o755);
  nats = await TestNats.start();
  manager = await Manager.start({ servers: nats.url, log: silentLogger(), config: { drivers: { dsMads: { slow: {} }, tmMads: { shared: {} }, datastoreLocation: join(dir, 'ds') } } });
  host = new DriverHost(await connectAs('drivers', nats.url), { driversDir: drivers, concurrency: 2, graceMs: 200, maxStdoutBytes: 65536, secretsKeyFile: join(dir, 'secrets.key') }, systemClock, silentLogger());
  await host.start();
  c = await ImgrClient.connect({ servers: nats.url, actor: { uid: 0, gid: 0, name: 'oneadmin' } });
});

afterAll(async () => {
  await host.stop();
  await c.close();
  await manager.stop();
  await nats.dispose();
  rmSync(dir, { recursive: true, force: true });
});

describe('a reply due while nats-server is down', () => {
  it('is published once the server is back, and the script runs once', async () => {
    const ds = await c.nextId('datastore');
    await c.send({ type: 'datastore.create', datastoreId: ds, template: { NAME: 'slow', DS_MAD: 'slow', TM_MAD: 'shared', SAFE_DIRS: '/srv' } });
    const id = await c.nextId('image');
    expect(await c.send({ type: 'image.allocate', imageId: id, datastoreId: ds, template: { NAME: 'slow-copy', PATH: '/srv/slow.img', SIZE: '1' } })).toMatchObject({ state: 'LOCKED' });
    await eventually(() => existsSync(join(dir, 'runs')), 'the copy started');
    // Down from before the script ends until after it ended.
    await nats.restart({ kill: true, downMs: 4_000 });
    await eventually(() => manager.host.image(id)?.state === 'READY', 'READY once the reply got through', 60_000);
    // A file of the datastore's own folder (a SOURCE elsewhere is refused).
    expect(manager.host.image(id)?.source).toBe(`${join(dir, 'ds', String(ds))}/${id}`);
    expect(readFileSync(join(dir, 'runs'), 'utf8').trim().split('\n')).toEqual(['run']);
  }, 90_000);
});
