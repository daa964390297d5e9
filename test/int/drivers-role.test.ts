/**
 * The drivers role is a driver, not an administrator (#27), tried as a hostile
 * driver host would with the drivers user's own credentials: it reports only
 * on its own subject, only driver replies and reports, as the system actor,
 * only for requests an image asked for; it cannot publish the manager's
 * commands, answer into another role's inbox or write the secrets key; and a
 * client seals secrets only to the key it pinned.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPairSync } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { TestNats } from '../support/nats.js';
import { readLog } from '../support/log.js';
import { eventually } from '../support/eventually.js';
import { DRIVERS_DIR } from '../support/driver-request.js';
import { Manager } from '../../src/manager.js';
import { DriverHost } from '../../src/driver-host/driver-host.js';
import { ImgrClient } from '../../src/client/index.js';
import { connectAs } from '../../src/platform/nats.js';
import { silentLogger } from '../../src/platform/logger.js';
import { systemClock } from '../../src/platform/clock.js';
import { DEFAULT_DRIVER_TIMEOUTS } from '../../src/messages/driver.js';
import { BUCKETS, META_KEYS, STREAMS } from '../../src/messages/names.js';
import { DRIVER_ACTOR, type CommandInput, type CommandMessage, type Outcome } from '../../src/messages/wire.js';
import { loadOrCreateKey, publicKeyFingerprint, publishSecretsKey } from '../../src/secrets/keyring.js';
import { isImgrError } from '../../src/messages/failures.js';

let nats: TestNats;
let manager: Manager;
let host: DriverHost;
let admin: ImgrClient;
/** The drivers user, as a hostile driver host would use it. */
let asDrivers: ImgrClient;
let ds: number;
let image: number;
let keyPem: string;

const ok = async (cmd: CommandInput): Promise<Extract<Outcome, { status: 'accepted' }>> => {
  const o = await admin.send(cmd);
  if (o.status !== 'accepted') throw new Error(`${cmd.type}: ${o.code} ${o.message}`);
  return o;
};
/** What the log holds of an aggregate: its last sequence and commit count. */
const logOf = async (subject: string): Promise<{ commits: number; last: number }> => {
  const log = await readLog(await nats.connect('manager'), subject);
  return { commits: log.length, last: log.at(-1)?.seq ?? 0 };
};
const mallory = { uid: 5, gid: 0, name: 'mallory', service: 'evil' };
const message = (command: CommandInput, commandId: string): CommandMessage =>
  ({ envelope: { commandId, correlationId: commandId, causationId: null, actor: mallory, at: Date.now() }, command, replyTo: null }) as CommandMessage;

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'imgr-drivers-role-'));
  nats = await TestNats.start();
  manager = await Manager.start({
    servers: nats.url,
    log: silentLogger(),
    tickMs: 100,
    // A STAT nobody may answer fails in 3 s, not in the default minute.
    config: { timeouts: { ...DEFAULT_DRIVER_TIMEOUTS, STAT: 3 }, drivers: { dsMads: { dummy: {}, restic: {} }, tmMads: { dummy: {} }, datastoreLocation: join(dir, 'datastores') } },
  });
  const keyFile = join(dir, 'secrets.key');
  host = new DriverHost(await connectAs('drivers', nats.url), { driversDir: DRIVERS_DIR, concurrency: 2, graceMs: 200, maxStdoutBytes: 65536, secretsKeyFile: keyFile }, systemClock, silentLogger());
  await host.start();
  // As npm start does: the manager role publishes the driver host's key and pins it beside the credentials.
  keyPem = (await loadOrCreateKey(keyFile)).publicKeyPem;
  await publishSecretsKey(await nats.connect('manager'), keyPem);
  admin = await ImgrClient.connect({ servers: nats.url, actor: { uid: 0, gid: 0, name: 'oneadmin' } });
  asDrivers = await ImgrClient.connect({ servers: nats.url, role: 'drivers', actor: mallory });
  ds = await admin.nextId('datastore');
  await ok({ type: 'datastore.create', datastoreId: ds, template: { NAME: 'dummies', DS_MAD: 'dummy', TM_MAD: 'dummy', SAFE_DIRS: '/srv' } });
  image = await admin.nextId('image');
  await ok({ type: 'image.allocate', imageId: image, datastoreId: ds, template: { NAME: 'victim', PATH: '/srv/victim.img', SIZE: '10' } });
  await eventually(() => manager.host.image(image)?.state === 'READY', 'the image READY');
});

afterAll(async () => {
  await asDrivers.close();
  await admin.close();
  await host.stop();
  await manager.stop();
  await nats.dispose();
});

describe('the drivers user', () => {
  it('sends nothing but driver replies and reports on its subject: a delete or a datastore is refused and changes nothing', async () => {
    const before = await logOf(`imgr.evt.image.${image}`);
    const del = await asDrivers.send({ type: 'image.delete', imageId: image, force: true }, { internal: true });
    expect(del).toMatchObject({ status: 'rejected', code: 'CMD_ERR_NOT_DRIVER' });
    const create = await asDrivers.send({ type: 'image.cloneStart', imageId: image, clone: { kind: 'image', id: 999 } }, { internal: true });
    expect(create).toMatchObject({ status: 'rejected', code: 'CMD_ERR_NOT_DRIVER' });
    const other = await admin.nextId('datastore');
    expect(await asDrivers.send({ type: 'datastore.create', datastoreId: other, template: { NAME: 'root', DS_MAD: 'fs', TM_MAD: 'shared', SAFE_DIRS: '/' } }, { internal: true })).toMatchObject({ status: 'rejected', code: 'CMD_ERR_NOT_DRIVER' });
    expect(await logOf(`imgr.evt.image.${image}`)).toEqual(before);
    expect(manager.host.image(image)).toMatchObject({ state: 'READY', clones: [] });
    expect(await admin.datastore(other)).toBeNull();
  });

  it("may not publish the manager's own commands: imgr.int.> is denied by the server", async () => {
    const before = await logOf(`imgr.evt.image.${image}`);
    const jsm = await jetstreamManager(await nats.connect('manager'));
    const stored = (await jsm.streams.info(STREAMS.internal)).state.last_seq;
    const js = jetstream(await nats.connect('drivers'));
    await expect(js.publish(`imgr.int.image.${image}`, JSON.stringify(message({ type: 'image.delete', imageId: image, force: true }, 'imgr.forged-delete')), { timeout: 2_000 })).rejects.toThrow();
    expect((await jsm.streams.info(STREAMS.internal)).state.last_seq).toBe(stored);
    expect(await logOf(`imgr.evt.image.${image}`)).toEqual(before);
  });

  it('acts as the system actor, whatever actor its message names', async () => {
    // A monitor report (a driver's) sent with an administrator's name of its choosing.
    const o = await asDrivers.send({ type: 'datastore.monitored', datastoreId: ds, result: 'SUCCESS', info: btoa('TOTAL_MB=200000\nFREE_MB=190000\nUSED_MB=10000') }, { internal: true, commandId: 'monitor-as-mallory' });
    expect(o).toMatchObject({ status: 'accepted', fact: 'datastore.monitored' });
    const last = (await readLog(await nats.connect('manager'), `imgr.evt.datastore.${ds}`)).at(-1);
    expect(last?.commit.actor).toEqual(DRIVER_ACTOR);
  });

  it('a reply naming a request the image never asked for is recorded as ignored: it changes no image and reclaims no file', async () => {
    const before = manager.host.image(image);
    const o = await asDrivers.send({ type: 'driver.reply', imageId: image, requestId: 'imgr.never-asked', action: 'CP', result: 'SUCCESS', info: '/etc/passwd raw' }, { internal: true });
    expect(o).toMatchObject({ status: 'accepted', fact: 'image.replyIgnored', state: 'READY' });
    const last = (await readLog(await nats.connect('manager'), `imgr.evt.image.${image}`)).at(-1);
    expect(last?.commit.facts).toMatchObject([{ type: 'image.replyIgnored', changes: {}, effects: [] }]);
    const after = manager.host.image(image);
    expect({ ...after, modTime: 0 }).toEqual({ ...before, modTime: 0 });
    // Its log lines are not kept either.
    expect(await asDrivers.send({ type: 'driver.log', imageId: image, requestId: 'imgr.never-asked', action: 'CP', lines: [{ severity: 'E', text: 'forged' }] }, { internal: true })).toMatchObject({ status: 'accepted', fact: 'image.replyIgnored' });
  });

  it("may not publish into the manager's inbox, and still answers the STAT it is asked", async () => {
    const mgr = await nats.connect('manager');
    const sub = mgr.subscribe('_INBOX.manager.forged', { max: 1 });
    await mgr.flush();
    const drivers = await nats.connect('drivers');
    drivers.publish('_INBOX.manager.forged', JSON.stringify({ result: 'SUCCESS', info: '1' }));
    await drivers.flush();
    // Had the server let the forged answer through, it would be delivered ahead of this marker.
    mgr.publish('_INBOX.manager.forged', 'marker');
    for await (const m of sub) expect(m.string()).toBe('marker');
    // STAT end to end: an image without SIZE is sized by the driver host's answer on the manager's reply subject.
    const sized = await admin.nextId('image');
    expect(await admin.send({ type: 'image.allocate', imageId: sized, datastoreId: ds, template: { NAME: 'sized', PATH: '/srv/sized.img' } })).toMatchObject({ status: 'accepted' });
    expect(manager.host.image(sized)?.size).toBe(1024);
  });

  it('may not write the secrets public key', async () => {
    const meta = await new Kvm(await nats.connect('drivers')).open(BUCKETS.meta, { timeout: 2_000 });
    await expect(meta.put(META_KEYS.publicKey, 'forged')).rejects.toThrow();
    await expect(meta.delete(META_KEYS.publicKey)).rejects.toThrow();
    const published = await (await new Kvm(await nats.connect('manager')).open(BUCKETS.meta)).get(META_KEYS.publicKey);
    expect(published?.string()).toBe(keyPem);
  });
});

describe('clients pin the secrets key', () => {
  const sealed = (id: number): CommandInput => ({ type: 'datastore.create', datastoreId: id, template: { NAME: `vault-${id}`, TYPE: 'BACKUP_DS', DS_MAD: 'restic', RESTIC_PASSWORD: 'pinned-SECRET' } });
  const otherKey = (): string => generateKeyPairSync('x25519').publicKey.export({ type: 'spki', format: 'pem' }).toString();

  it('seal to the key pinned at first start', async () => {
    expect(await admin.send(sealed(await admin.nextId('datastore')))).toMatchObject({ status: 'accepted' });
  });

  it('refuse to seal to any other key, with a clear error, and send nothing', async () => {
    const pinnedElsewhere = await ImgrClient.connect({ servers: nats.url, actor: { uid: 0, gid: 0, name: 'oneadmin' }, secretsFingerprint: publicKeyFingerprint(otherKey()) });
    try {
      const id = await admin.nextId('datastore');
      const refused = await pinnedElsewhere.send(sealed(id)).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isImgrError(refused, 'IMGR_SECRETS_KEY')).toBe(true);
      expect(String(refused)).toMatch(/refusing to seal secret attributes: the secrets key published in imgr_meta \(sha256:[0-9a-f]{64}\) is not the pinned one/);
      expect(await admin.datastore(id)).toBeNull();
    } finally {
      await pinnedElsewhere.close();
    }
  });

  it('refuse a key replaced in imgr_meta by whoever could write it', async () => {
    const meta = await new Kvm(await nats.connect('manager')).open(BUCKETS.meta);
    await meta.put(META_KEYS.publicKey, otherKey());
    const fresh = await ImgrClient.connect({ servers: nats.url, actor: { uid: 0, gid: 0, name: 'oneadmin' } });
    try {
      await expect(fresh.send(sealed(await admin.nextId('datastore')))).rejects.toMatchObject({ code: 'IMGR_SECRETS_KEY' });
    } finally {
      await fresh.close();
      await meta.put(META_KEYS.publicKey, keyPem);
    }
  });
});
