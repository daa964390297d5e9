/**
 * The real driver host over NATS with the fs driver: images registered from a
 * file and a URL, cloned, reverted to a snapshot and deleted do real work on
 * disk; a hanging driver ends in ERROR while the host keeps serving; a host
 * restart loses nothing.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, mkdirSync, writeFileSync, chmodSync } from 'node:fs';
import { jetstream } from '@nats-io/jetstream';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestNats } from '../support/nats.js';
import { serveBytes } from '../support/http-file.js';
import { eventually } from '../support/eventually.js';
import { factsIn, readLog } from '../support/log.js';
import { DRIVERS_DIR } from '../support/driver-request.js';
import { Manager } from '../../src/manager.js';
import { DriverHost } from '../../src/driver-host/driver-host.js';
import { ImgrClient } from '../../src/client/index.js';
import { connectAs, inboxPrefixFor } from '../../src/platform/nats.js';
import { exportNdjson, historyOf } from '../../src/audit/history.js';
import { REDACTED } from '../../src/secrets/sealed.js';
import { loadOrCreateKey, publishSecretsKey } from '../../src/secrets/keyring.js';
import { main } from '../../src/cli/imgr.js';
import { STREAMS } from '../../src/store/provision.js';
import { silentLogger } from '../../src/platform/logger.js';
import { systemClock } from '../../src/platform/clock.js';
import { DEFAULT_DRIVER_TIMEOUTS } from '../../src/messages/driver.js';
import type { CommandInput, Outcome } from '../../src/messages/wire.js';

let nats: TestNats;
let manager: Manager;
let host: DriverHost;
let c: ImgrClient;
let dir: string;
let drivers: string;
let server: Awaited<ReturnType<typeof serveBytes>>;
let url: string;
let ds: number;
const content = randomBytes(2 * 1024 * 1024 + 5);

const startHost = async (): Promise<DriverHost> => {
  const h = new DriverHost(
    await connectAs('drivers', nats.url),
    { driversDir: drivers, concurrency: 4, graceMs: 200, maxStdoutBytes: 65536, secretsKeyFile: join(dir, 'secrets.key') },
    systemClock,
    silentLogger(),
  );
  await h.start();
  return h;
};
const ok = async (cmd: CommandInput): Promise<Extract<Outcome, { status: 'accepted' }>> => {
  const o = await c.send(cmd);
  if (o.status !== 'accepted') throw new Error(`${cmd.type}: ${o.code} ${o.message}`);
  return o;
};
const view = (id: number) => manager.host.image(id);

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'imgr-dh-'));
  writeFileSync(join(dir, 'disk.raw'), content);
  // The host's drivers: the real fs driver, and one that hangs.
  drivers = join(dir, 'drivers');
  mkdirSync(join(drivers, 'hang'), { recursive: true });
  symlinkSync(join(DRIVERS_DIR, 'fs'), join(drivers, 'fs'));
  symlinkSync(join(DRIVERS_DIR, 'lib'), join(drivers, 'lib'));
  symlinkSync(join(DRIVERS_DIR, 'rsync'), join(drivers, 'rsync'));
  symlinkSync(join(DRIVERS_DIR, 'restic'), join(drivers, 'restic'));
  writeFileSync(join(drivers, 'hang', 'mkfs'), '#!/usr/bin/env bash\ncat >/dev/null\nsleep 600\n');
  chmodSync(join(drivers, 'hang', 'mkfs'), 0o755);
  // A STAT that explains itself only in log lines, ending them with \r as text from ssh does.
  mkdirSync(join(drivers, 'noisy'));
  writeFileSync(join(drivers, 'noisy', 'stat'), '#!/usr/bin/env bash\ncat >/dev/null\nprintf "ERROR: stat: bridge host refused the key\\r\\nINFO: stat: tried 2 hosts\\r\\n" >&2\necho "Cannot stat the image" >&2\nexit 1\n');
  chmodSync(join(drivers, 'noisy', 'stat'), 0o755);
  server = await serveBytes(content);
  url = server.url;

  nats = await TestNats.start();
  manager = await Manager.start({
    servers: nats.url,
    log: silentLogger(),
    tickMs: 100,
    config: {
      watchdogIntervalMs: 100,
      timeouts: { ...DEFAULT_DRIVER_TIMEOUTS, MKFS: 2, CP: 4 },
      drivers: { dsMads: { fs: {}, hang: {}, noisy: {}, rsync: {}, restic: {} }, tmMads: { shared: {} }, datastoreLocation: join(dir, 'datastores') },
    },
  });
  host = await startHost();
  // The host created its key; the manager role publishes it and pins it for the clients (as npm start does).
  await publishSecretsKey(await nats.connect('manager'), (await loadOrCreateKey(join(dir, 'secrets.key'))).publicKeyPem);
  c = await ImgrClient.connect({ servers: nats.url, actor: { uid: 0, gid: 0, name: 'oneadmin' } });
  ds = await c.nextId('datastore');
  // Its URL imports reach this test's server on loopback, which imgr refuses unless a datastore allows it.
  await ok({ type: 'datastore.create', datastoreId: ds, template: { NAME: 'files', DS_MAD: 'fs', TM_MAD: 'shared', SAFE_DIRS: dir, IMGR_URL_ALLOWED_NETWORKS: '127.0.0.1/32' } });
  await eventually(() => manager.host.datastore(ds)?.monitoredAt !== null, 'monitored by the fs driver');
});

afterAll(async () => {
  await host.stop();
  await c.close();
  await manager.stop();
  await nats.dispose();
  server.close();
  rmSync(dir, { recursive: true, force: true });
});

async function register(path: string, extra: Record<string, string> = {}): Promise<number> {
  const id = await c.nextId('image');
  await ok({ type: 'image.allocate', imageId: id, datastoreId: ds, template: { NAME: `img-${id}`, PATH: path, SIZE: '3', ...extra } });
  await eventually(() => view(id)?.state === 'READY' || view(id)?.state === 'ERROR', 'copy finished');
  expect(view(id)?.error ?? null).toBeNull();
  return id;
}

describe('fs datastore through the driver host', () => {
  it('the monitor ran the real df', () => {
    expect(manager.host.datastore(ds)?.totalMb).toBeGreaterThan(0);
    expect(manager.host.datastore(ds)?.basePath).toBe(join(dir, 'datastores', String(ds)));
  });

  it('registers from a local file and an http URL: the bytes are in the datastore', async () => {
    for (const path of [join(dir, 'disk.raw'), url]) {
      const id = await register(path);
      const v = view(id);
      expect(v?.format).toBe('raw');
      expect(v?.source.startsWith(join(dir, 'datastores', String(ds)))).toBe(true);
      expect(readFileSync(v?.source ?? '').equals(content)).toBe(true);
    }
  });

  it('records the download and the driver\'s log lines on the image', async () => {
    const id = await register(url);
    const log = await readLog(await nats.connect('manager'), `imgr.evt.image.${id}`);
    const logged = factsIn(log).find((f) => f.type === 'image.driverLogged');
    // imgr downloads a URL (the driver copies the staged file), and says so in the image's log.
    expect(logged?.detail['lines']).toBe(`I imgr: downloaded ${url} (${content.length} bytes)`);
  });

  it('clones and deletes with real files', async () => {
    const origin = await register(join(dir, 'disk.raw'));
    const target = await c.nextId('image');
    await ok({ type: 'image.clone', imageId: target, originId: origin, name: 'copy', datastoreId: ds });
    await eventually(() => view(target)?.state === 'READY', 'clone READY');
    const copy = view(target)?.source ?? '';
    expect(copy).not.toBe(view(origin)?.source);
    expect(readFileSync(copy).equals(content)).toBe(true);
    await ok({ type: 'image.delete', imageId: target });
    await eventually(() => view(target)?.state === 'REMOVED', 'removed');
    expect(existsSync(copy)).toBe(false);
  });

  it('reverts a qcow2 image to a snapshot on disk', async () => {
    const q = join(dir, 'snap.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', q, '8M']);
    const id = await register(q, { PERSISTENT: 'YES' });
    const src = view(id)?.source ?? '';
    execFileSync('qemu-io', ['-c', 'write -P 0x11 0 4k', src]);
    execFileSync('qemu-img', ['snapshot', '-c', '0', src]);
    execFileSync('qemu-io', ['-c', 'write -P 0x22 0 4k', src]);
    await ok({ type: 'image.acquire', imageId: id, vmId: 1, mode: 'deploy' });
    await ok({
      type: 'image.setSnapshots',
      imageId: id,
      snapshots: { mode: 'DENY', currentBase: -1, nextSnapshot: 1, list: [{ id: 0, name: 's0', date: 1, parent: -1, children: [], active: false, size: 8 }] },
    });
    await ok({ type: 'image.release', imageId: id, vmId: 1 });
    await ok({ type: 'image.snapshotRevert', imageId: id, snapshotId: 0 });
    await eventually(() => view(id)?.state === 'READY', 'reverted');
    expect(execFileSync('qemu-io', ['-c', 'read -v 0 1', src], { encoding: 'utf8' }).split(/\s+/)[1]).toBe('11');
  });

  it('W12: without SIZE the size comes from the driver\'s STAT, and a failed STAT refuses with its reason', async () => {
    const id = await c.nextId('image');
    await ok({ type: 'image.allocate', imageId: id, datastoreId: ds, template: { NAME: `stat-${id}`, PATH: url } });
    await eventually(() => view(id)?.state === 'READY', 'READY');
    expect(view(id)?.size).toBe(3);
    const missing = join(dir, 'no-such.raw');
    expect(await c.send({ type: 'image.allocate', imageId: await c.nextId('image'), datastoreId: ds, template: { NAME: 'nostat', PATH: missing } })).toMatchObject({
      status: 'rejected',
      code: 'IMG_ERR_STAT_FAILED',
      message: `Cannot determine image SIZE: cannot access '${missing}' (No such file or directory)`,
    });
  });

  it('STAT\'s log lines (trimmed of \\r) are kept with the refusal: its cause is visible', async () => {
    const noisy = await c.nextId('datastore');
    await ok({ type: 'datastore.create', datastoreId: noisy, template: { NAME: 'noisy', DS_MAD: 'noisy', TM_MAD: 'shared', SAFE_DIRS: dir } });
    const o = await c.send({ type: 'image.allocate', imageId: await c.nextId('image'), datastoreId: noisy, template: { NAME: 'noisy-stat', PATH: join(dir, 'disk.raw') } });
    expect(o).toMatchObject({
      status: 'rejected',
      code: 'IMG_ERR_STAT_FAILED',
      message: 'Cannot determine image SIZE: Cannot stat the image (driver log: E stat: bridge host refused the key | I stat: tried 2 hosts)',
    });
  });

  it('a copy that fails ends in ERROR with the driver\'s reason', async () => {
    const id = await c.nextId('image');
    await ok({ type: 'image.allocate', imageId: id, datastoreId: ds, template: { NAME: `bad-${id}`, PATH: join(dir, 'missing.raw'), SIZE: '1' } });
    await eventually(() => view(id)?.state === 'ERROR', 'ERROR');
    expect(view(id)?.error).toMatch(new RegExp(`Error copying image in the datastore: Cannot access ${join(dir, 'missing.raw')}: no such readable file$`));
  });
});

describe('a hanging driver and host restarts', () => {
  it('a driver that hangs is killed at the deadline, the image fails, and the host keeps serving', async () => {
    const hung = await c.nextId('datastore');
    await ok({ type: 'datastore.create', datastoreId: hung, template: { NAME: 'hung', DS_MAD: 'hang', TM_MAD: 'shared' } });
    const id = await c.nextId('image');
    await ok({ type: 'image.allocate', imageId: id, datastoreId: hung, template: { NAME: 'never', SIZE: '1' } });
    await eventually(() => view(id)?.state === 'ERROR', 'ERROR');
    expect(view(id)?.error).toMatch(/Driver action MKFS timed out after 2 s|Timeout executing/);
    await register(join(dir, 'disk.raw'));
  });

  it('requests queued while no host runs are served after a restart', async () => {
    await host.stop();
    const id = await c.nextId('image');
    await ok({ type: 'image.allocate', imageId: id, datastoreId: ds, template: { NAME: `late-${id}`, PATH: join(dir, 'disk.raw'), SIZE: '3' } });
    expect(view(id)?.state).toBe('LOCKED');
    host = await startHost();
    await eventually(() => view(id)?.state === 'READY', 'served after restart');
  });

  it('a request whose deadline passed while no host ran is answered as a timeout', async () => {
    await host.stop();
    const id = await c.nextId('image');
    await ok({ type: 'image.allocate', imageId: id, datastoreId: ds, template: { NAME: `expired-${id}`, PATH: join(dir, 'disk.raw'), SIZE: '3' } });
    await eventually(() => view(id)?.state === 'ERROR', 'timed out by the watchdog');
    host = await startHost();
    const log = await eventually(async () => {
      const l = await readLog(await nats.connect('manager'), `imgr.evt.image.${id}`);
      return l.some((e) => e.commit.facts.some((f) => f.type === 'image.replyIgnored')) ? l : undefined;
    }, 'the late answer recorded');
    const late = factsIn(log).find((f) => f.type === 'image.replyIgnored');
    expect(late?.detail).toMatchObject({ kind: 'CP FAILURE' });
    expect(view(id)?.state).toBe('ERROR');
  });
});

/** A restic password no byte imgr stores or serves may contain. */
const SECRET = 'tr0ub4dor-and-3-horses-SECRET';

/** Every file under a folder that contains `needle`. */
function filesContaining(root: string, needle: string): string[] {
  const hits: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && readFileSync(p).includes(needle)) hits.push(p);
    }
  };
  walk(root);
  return hits;
}

/**
 * W23: the restic backups above ran with the password, yet nothing imgr keeps
 * or answers holds it: not the JetStream store (every stream and bucket, the
 * command stream included), not the views, exports, histories or the CLI.
 */
async function noSecretAnywhere(backups: number): Promise<void> {
  expect(filesContaining(nats.storeDir, SECRET)).toEqual([]);
  const reader = await nats.connect('auditor');
  const views = [JSON.stringify(await c.datastore(backups)), JSON.stringify(await historyOf(reader, 'datastore', backups))];
  for (const v of views) expect(v).not.toContain(SECRET);
  expect((await c.datastore(backups))?.template['RESTIC_PASSWORD']).toBe(REDACTED);
  let exported = '';
  for await (const line of exportNdjson(reader)) exported += line;
  expect(exported).toContain(`"RESTIC_PASSWORD":"${REDACTED}"`);
  expect(exported).not.toContain(SECRET);
  // In the log itself the value is sealed: present, opaque.
  const raw = (await readLog(await nats.connect('manager'), `imgr.evt.datastore.${backups}`)).map((x) => JSON.stringify(x.commit)).join('\n');
  expect(raw).toMatch(/"RESTIC_PASSWORD":"imgr-secret:v1:/);
  let shown = '';
  expect(await main(['--nats', nats.url, 'datastore', 'show', String(backups), '--json'], (s) => (shown += s), () => undefined, false)).toBe(0);
  expect(shown).not.toContain(SECRET);
  // A service that sends the password in plain text is refused, and the refusal does not keep it.
  const raw2 = await connectAs('service', nats.url);
  const inbox = `${inboxPrefixFor('service')}.plain`;
  const sub = raw2.subscribe(inbox, { max: 1 });
  const id = await c.nextId('datastore');
  const command = { type: 'datastore.create', datastoreId: id, template: { NAME: 'plain', TYPE: 'BACKUP_DS', DS_MAD: 'restic', RESTIC_PASSWORD: SECRET } };
  await jetstream(raw2).publish(`imgr.cmd.service.datastore.${id}`, JSON.stringify({ envelope: { commandId: 'plain-secret', correlationId: 'plain-secret', causationId: null, actor: { uid: 0, gid: 0, name: 'oneadmin' }, at: 1 }, command, replyTo: inbox }));
  for await (const m of sub) expect(m.json()).toMatchObject({ status: 'rejected', code: 'CMD_ERR_SECRET_PLAINTEXT', message: "Secret attributes must be sealed to imgr's key, not sent in plain text: RESTIC_PASSWORD" });
  await raw2.close();
  const refusals = join(nats.storeDir, 'jetstream', '$G', 'streams', STREAMS.rejected);
  await eventually(() => filesContaining(refusals, 'plain-secret').length > 0, 'the refusal recorded');
  // The refused message itself waits in the command stream's files until they are compacted; the records imgr keeps hold no secret.
  const kept = filesContaining(nats.storeDir, SECRET).filter((f) => !f.includes(`/streams/${STREAMS.commands}/`));
  expect(kept).toEqual([]);
}

describe('backups through NATS', () => {
  for (const [mad, template] of [
    ['rsync', { RSYNC_HOST: 'localhost' }],
    ['restic', { RESTIC_PASSWORD: SECRET }],
  ] as const) {
    it(`${mad}: back up, keep the last 2 increments, restore into the image datastore`, async () => {
      const backups = await c.nextId('datastore');
      await ok({ type: 'datastore.create', datastoreId: backups, template: { NAME: `backups-${mad}`, TYPE: 'BACKUP_DS', DS_MAD: mad, KEEP_LAST: '2', ...template } });
      const diskFile = join(dir, `${mad}.raw`);
      writeFileSync(diskFile, randomBytes(1024 * 1024));
      const src = await register(diskFile);
      const backup = await c.nextId('image');
      let last = Buffer.alloc(0);
      for (let i = 0; i < 3; i++) {
        last = randomBytes(1024 * 1024);
        writeFileSync(view(src)?.source ?? '', last);
        await ok({ type: 'image.backup', imageId: src, backupDatastoreId: backups, backupImageId: backup, vmId: 4, incremental: true, chain: i > 0 });
        // Increment ids only grow (retention drops the oldest), so the last one tells which backup landed.
        await eventually(() => view(backup)?.increments.at(-1)?.id === i, `backup ${i}`);
      }
      await eventually(() => view(backup)?.state === 'READY' && view(backup)?.increments.length === 2, 'flattened to KEEP_LAST');
      expect(view(backup)).toMatchObject({ type: 'BACKUP', vms: [4] });
      expect(view(backup)?.increments[0]?.type).toBe('FULL');

      // Into a datastore that copies local files only from a folder of its own: the restore's staging folder is
      // allowed for the restored disk's one CP, not by its SAFE_DIRS.
      const strict = await c.nextId('datastore');
      await ok({ type: 'datastore.create', datastoreId: strict, template: { NAME: `strict-${mad}`, DS_MAD: 'fs', TM_MAD: 'shared', RESTRICTED_DIRS: '/', SAFE_DIRS: join(dir, 'import-only') } });
      await ok({ type: 'image.restore', imageId: backup, datastoreId: strict, options: { name: `back-${mad}` } });
      const restored = await eventually(
        () => [...manager.host.allImages()].map((r) => r.agg).find((a) => a.record.name === `back-${mad}-disk-0` && a.state !== 'LOCKED'),
        'restored image copied',
      );
      expect(restored.state, restored.record.error ?? '').toBe('READY');
      expect(restored.record.datastore.id).toBe(strict);
      expect(readFileSync(restored.record.source).equals(last)).toBe(true);
      const log = await readLog(await nats.connect('manager'), `imgr.evt.image.${backup}`);
      // The backup image's machine decided what the reply meant: one restored disk, into the image it names.
      expect(factsIn(log).find((f) => f.type === 'image.restored')?.detail['images']).toBe(String(restored.record.id));
      if (mad === 'restic') await noSecretAnywhere(backups);
    });
  }
});
