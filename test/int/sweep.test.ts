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
import { jetstream } from '@nats-io/jetstream';
import { TestNats } from '../support/nats.js';
import { eventually } from '../support/eventually.js';
import { readLog } from '../support/log.js';
import { DRIVERS_DIR } from '../support/driver-request.js';
import { Manager } from '../../src/manager.js';
import { ImgrClient } from '../../src/client/index.js';
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

/** An fs datastore with one READY image copied into it; the image's file. */
async function datastoreWithImage(name: string): Promise<{ ds: number; owned: string }> {
  const ds = await c.nextId('datastore');
  await c.send({ type: 'datastore.create', datastoreId: ds, template: { NAME: name, DS_MAD: 'fs', TM_MAD: 'shared', SAFE_DIRS: join(dir, 'import') } });
  const id = await c.nextId('image');
  await c.send({ type: 'image.allocate', imageId: id, datastoreId: ds, template: { NAME: `${name}-owned`, PATH: join(dir, 'import', 'disk.raw'), SIZE: '1' } });
  await eventually(() => manager.host.image(id)?.state === 'READY', 'READY');
  return { ds, owned: manager.host.image(id)?.source ?? '' };
}

describe('a file no image names', () => {
  it('is removed once older than any creation may run; files images name and young files stay', async () => {
    const { ds, owned } = await datastoreWithImage('swept');
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

describe('a forged sweep', () => {
  it('from a service is refused as internal and removes nothing: a copy under way cannot be passed off as an old orphan', async () => {
    const { ds } = await datastoreWithImage('forged');
    // A creation still copying: its file is young and no image names it yet.
    const inFlight = join(dir, 'ds', String(ds), 'copy-under-way');
    writeFileSync(inFlight, 'z');
    const nc = await nats.connect('service');
    const inbox = `_INBOX.service.sweep.${Math.random().toString(36).slice(2)}`;
    const sub = nc.subscribe(inbox, { max: 1, timeout: 20_000 });
    const envelope = { commandId: 'forged-sweep', correlationId: 'forged-sweep', causationId: null, actor: { uid: 0, gid: 0, name: 'oneadmin' }, at: 1 };
    const command = { type: 'datastore.swept', datastoreId: ds, files: [{ path: inFlight, ageSec: 1_000_000 }] };
    await jetstream(nc).publish(`imgr.cmd.service.datastore.${ds}`, JSON.stringify({ envelope, command, replyTo: inbox }));
    let answer: unknown;
    for await (const m of sub) answer = m.json();
    expect(answer).toMatchObject({ status: 'rejected', code: 'CMD_ERR_INTERNAL' });
    const log = await readLog(await nats.connect('manager'), `imgr.evt.datastore.${ds}`);
    expect(log.map((l) => l.commit.commandId)).not.toContain('forged-sweep');
    await new Promise((r) => setTimeout(r, 1_000));
    expect(existsSync(inFlight)).toBe(true);
  });
});
