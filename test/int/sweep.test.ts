/**
 * The sweep (the faults issue, cause 8): a driver host killed after its copy
 * and before its reply leaves a file no reply will ever name. After each
 * monitor of an fs datastore the driver host reports the files in its folder;
 * the datastore's machine records those that no image names and that are
 * older than any creation may run, and the real fs driver removes them.
 */
import { existsSync, mkdtempSync, rmSync, utimesSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestNats } from '../support/nats.js';
import { eventually } from '../support/eventually.js';
import { readLog } from '../support/log.js';
import { DRIVERS_DIR } from '../support/driver-request.js';
import { Manager } from '../../src/manager.js';
import { ImgrClient } from '../../src/client/client.js';
import { DriverHost } from '../../src/driver-host/driver-host.js';
import { connectAs } from '../../src/platform/nats.js';
import { silentLogger } from '../../src/platform/logger.js';
import { systemClock } from '../../src/platform/clock.js';
import { BUNDLED_DRIVERS } from '../../src/platform/config.js';

let nats: TestNats;
let manager: Manager;
let host: DriverHost;
let c: ImgrClient;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'imgr-sweep-'));
  mkdirSync(join(dir, 'import'));
  writeFileSync(join(dir, 'import', 'disk.raw'), Buffer.alloc(64 * 1024, 1));
  nats = await TestNats.start();
  manager = await Manager.start({
    servers: nats.url,
    log: silentLogger(),
    tickMs: 100,
    config: { orphanGraceMs: 600_000, monitorIntervalMs: 1_000, drivers: { ...BUNDLED_DRIVERS, datastoreLocation: join(dir, 'ds') } },
  });
  host = new DriverHost(await connectAs('drivers', nats.url), { driversDir: DRIVERS_DIR, concurrency: 2, graceMs: 200, maxStdoutBytes: 65536, secretsKeyFile: join(dir, 'secrets.key') }, systemClock, silentLogger());
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

describe('a file no image names', () => {
  it('is removed once older than any creation may run; files images name and young files stay', async () => {
    const ds = await c.nextId('datastore');
    await c.send({ type: 'datastore.create', datastoreId: ds, template: { NAME: 'swept', DS_MAD: 'fs', TM_MAD: 'shared', SAFE_DIRS: join(dir, 'import') } });
    const id = await c.nextId('image');
    await c.send({ type: 'image.allocate', imageId: id, datastoreId: ds, template: { NAME: 'owned', PATH: join(dir, 'import', 'disk.raw'), SIZE: '1' } });
    await eventually(() => manager.host.image(id)?.state === 'READY', 'READY');
    const owned = manager.host.image(id)?.source ?? '';
    const base = join(dir, 'ds', String(ds));
    const orphan = join(base, 'left-by-a-dead-host');
    const young = join(base, 'being-written');
    writeFileSync(orphan, 'x');
    writeFileSync(young, 'y');
    const hourAgo = new Date(Date.now() - 3_600_000);
    utimesSync(orphan, hourAgo, hourAgo);
    utimesSync(owned, hourAgo, hourAgo);

    await eventually(() => !existsSync(orphan), 'the orphan removed', 30_000);
    expect(existsSync(owned)).toBe(true);
    expect(existsSync(young)).toBe(true);
    const log = await readLog(await nats.connect('manager'), `imgr.evt.datastore.${ds}`);
    const recorded = log.flatMap((l) => (l.commit.aggregate === 'datastore' ? l.commit.facts : [])).filter((f) => f.type === 'datastore.swept' && f.effects.length > 0);
    expect(recorded[0]?.effects).toEqual([{ kind: 'datastore.orphanSource', datastoreId: ds, imageId: -1, source: orphan }]);
  });
});
