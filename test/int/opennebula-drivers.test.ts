/**
 * OpenNebula's own `dummy` and `fs` datastore drivers (../shared/opennebula,
 * unchanged) through the real manager and driver host: the driver host runs
 * `var/remotes/datastore/<folder>/<action>` of a self-contained OpenNebula
 * tree, and every local action does its real work on disk.
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestNats } from '../support/nats.js';
import { serveBytes } from '../support/http-file.js';
import { eventually } from '../support/eventually.js';
import { DRIVERS_DIR } from '../support/driver-request.js';
import { openNebulaTree } from '../support/opennebula.js';
import { Manager } from '../../src/manager.js';
import { DriverHost } from '../../src/driver-host/driver-host.js';
import { ImgrClient } from '../../src/client/index.js';
import { connectAs } from '../../src/platform/nats.js';
import { silentLogger } from '../../src/platform/logger.js';
import { systemClock } from '../../src/platform/clock.js';
import { BUNDLED_DRIVERS } from '../../src/platform/config.js';
import type { CommandInput, Outcome } from '../../src/messages/wire.js';

let nats: TestNats;
let manager: Manager;
let host: DriverHost;
let c: ImgrClient;
let tree: ReturnType<typeof openNebulaTree>;
let dir: string;
let server: Awaited<ReturnType<typeof serveBytes>>;
let url: string;
let fs1: number;
let fs2: number;
let qcow: number;
let dummy: number;
const content = randomBytes(3 * 1024 * 1024 + 11);
const md5 = createHash('md5').update(content).digest('hex');

const ok = async (cmd: CommandInput): Promise<Extract<Outcome, { status: 'accepted' }>> => {
  const o = await c.send(cmd);
  if (o.status !== 'accepted') throw new Error(`${cmd.type}: ${o.code} ${o.message}`);
  return o;
};
const view = (id: number) => manager.host.image(id);
const settled = (id: number) => eventually(() => (view(id)?.state === 'READY' || view(id)?.state === 'ERROR') && view(id), `image ${id} settled`);
const formatOf = (file: string): string => (JSON.parse(execFileSync('qemu-img', ['info', '--output=json', file], { encoding: 'utf8' })) as { format: string }).format;

beforeAll(async () => {
  tree = openNebulaTree();
  dir = mkdtempSync(join(tmpdir(), 'imgr-one-run-'));
  mkdirSync(join(dir, 'src'));
  writeFileSync(join(dir, 'src', 'disk.raw'), content);
  server = await serveBytes(content);
  url = server.url;
  nats = await TestNats.start();
  manager = await Manager.start({
    servers: nats.url,
    log: silentLogger(),
    tickMs: 100,
    config: {
      drivers: {
        dsMads: { ...BUNDLED_DRIVERS.dsMads, 'one-fs': {}, 'one-dummy': {} },
        tmMads: BUNDLED_DRIVERS.tmMads,
        datastoreLocation: join(dir, 'datastores'),
      },
    },
  });
  host = new DriverHost(
    await connectAs('drivers', nats.url),
    { driversDir: DRIVERS_DIR, opennebula: { location: tree.location, drivers: { 'one-fs': 'fs', 'one-dummy': 'dummy' } }, concurrency: 4, graceMs: 200, maxStdoutBytes: 65536, secretsKeyFile: join(dir, 'secrets.key') },
    systemClock,
    silentLogger(),
  );
  await host.start();
  c = await ImgrClient.connect({ servers: nats.url, actor: { uid: 0, gid: 0, name: 'oneadmin' } });
  const create = async (template: Record<string, string>): Promise<number> => {
    const id = await c.nextId('datastore');
    await ok({ type: 'datastore.create', datastoreId: id, template: { RESTRICTED_DIRS: '/', SAFE_DIRS: join(dir, 'src'), ...template } });
    return id;
  };
  // Its URL import reaches this test's server on loopback, which imgr refuses unless a datastore allows it.
  fs1 = await create({ NAME: 'one-fs-a', DS_MAD: 'one-fs', TM_MAD: 'shared', IMGR_URL_ALLOWED_NETWORKS: '127.0.0.1/32' });
  fs2 = await create({ NAME: 'one-fs-b', DS_MAD: 'one-fs', TM_MAD: 'shared' });
  qcow = await create({ NAME: 'one-fs-qcow2', DS_MAD: 'one-fs', TM_MAD: 'qcow2' });
  dummy = await create({ NAME: 'one-dummy', DS_MAD: 'one-dummy', TM_MAD: 'dummy' });
  await eventually(() => [fs1, fs2, qcow, dummy].every((d) => manager.host.datastore(d)?.monitoredAt !== null), 'every datastore monitored');
});

afterAll(async () => {
  await host.stop();
  await c.close();
  await manager.stop();
  await nats.dispose();
  server.close();
  tree.dispose();
  rmSync(dir, { recursive: true, force: true });
});

async function register(ds: number, template: Record<string, string>): Promise<number> {
  const id = await c.nextId('image');
  await ok({ type: 'image.allocate', imageId: id, datastoreId: ds, template: { NAME: `one-${id}`, ...template } });
  await settled(id);
  return id;
}

describe("OpenNebula's fs driver, unchanged", () => {
  it('monitor: the real df of BASE_PATH', () => {
    const d = manager.host.datastore(fs1);
    expect(d?.monitorError).toBeNull();
    expect(d?.totalMb).toBeGreaterThan(0);
    expect(d?.freeMb).toBeGreaterThan(0);
  });

  it('registers from a file path and from an http:// URL: the bytes are in the datastore', async () => {
    for (const path of [join(dir, 'src', 'disk.raw'), url]) {
      const id = await register(fs1, { PATH: path, SIZE: '4' });
      const v = view(id);
      expect(v).toMatchObject({ state: 'READY', format: 'raw', error: null });
      expect(v?.source.startsWith(join(dir, 'datastores', String(fs1)))).toBe(true);
      expect(readFileSync(v?.source ?? '').equals(content)).toBe(true);
    }
  });

  it('STAT: without SIZE the size comes from OpenNebula\'s stat, rounded up to MiB', async () => {
    const id = await register(fs1, { PATH: join(dir, 'src', 'disk.raw') });
    expect(view(id)).toMatchObject({ state: 'READY', size: 4 });
  });

  it('STAT of what is not there: refused with the driver\'s reason', async () => {
    const missing = join(dir, 'src', 'gone.raw');
    const o = await c.send({ type: 'image.allocate', imageId: await c.nextId('image'), datastoreId: fs1, template: { NAME: 'gone', PATH: missing } });
    expect(o).toMatchObject({ status: 'rejected', code: 'IMG_ERR_STAT_FAILED' });
    expect(o.status === 'rejected' && o.message).toBe(`Cannot determine image SIZE: cannot access '${missing}' (No such file or directory)`);
  });

  it('MD5: the right checksum copies, a wrong one fails with the driver\'s reason', async () => {
    const right = await register(fs1, { PATH: join(dir, 'src', 'disk.raw'), SIZE: '4', MD5: md5 });
    expect(view(right)?.state).toBe('READY');
    const wrong = await register(fs1, { PATH: join(dir, 'src', 'disk.raw'), SIZE: '4', MD5: '0'.repeat(32) });
    expect(view(wrong)?.state).toBe('ERROR');
    expect(view(wrong)?.error).toMatch(/Error copying image in the datastore: Error copying .*disk\.raw/);
    expect(view(wrong)?.source).toBe('');
  });

  it('a path under the restricted directories is refused by the driver', async () => {
    const id = await register(fs1, { PATH: '/etc/hostname', SIZE: '1' });
    expect(view(id)?.state).toBe('ERROR');
    expect(view(id)?.error).toMatch(/Not allowed to copy image from \/etc\/hostname/);
  });

  it('empty DATABLOCKs: raw, qcow2 and ext4 are made by qemu-img and mkfs', async () => {
    const raw = await register(fs1, { TYPE: 'DATABLOCK', SIZE: '8', FORMAT: 'raw' });
    const q = await register(fs1, { TYPE: 'DATABLOCK', SIZE: '8', FORMAT: 'qcow2' });
    const ext4 = await register(fs1, { TYPE: 'DATABLOCK', SIZE: '16', FORMAT: 'raw', FS: 'ext4' });
    for (const id of [raw, q, ext4]) expect(view(id)).toMatchObject({ state: 'READY', error: null });
    expect(formatOf(view(raw)?.source ?? '')).toBe('raw');
    expect(formatOf(view(q)?.source ?? '')).toBe('qcow2');
    // ext4: extents among the features dumpe2fs reads from the superblock.
    expect(execFileSync('dumpe2fs', ['-h', view(ext4)?.source ?? ''], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })).toMatch(/Filesystem features:.*\bextent\b/);
  });

  it('clones within the datastore and into another one; each copy holds the bytes, and the origin is released', async () => {
    const origin = await register(fs1, { PATH: join(dir, 'src', 'disk.raw'), SIZE: '4' });
    for (const target of [fs1, fs2]) {
      const copy = await c.nextId('image');
      await ok({ type: 'image.clone', imageId: copy, originId: origin, name: `copy-${copy}`, datastoreId: target });
      await settled(copy);
      const v = view(copy);
      expect(v).toMatchObject({ state: 'READY', error: null });
      expect(v?.source.startsWith(join(dir, 'datastores', String(target)))).toBe(true);
      expect(readFileSync(v?.source ?? '').equals(content)).toBe(true);
    }
    await eventually(() => view(origin)?.state === 'READY' && view(origin)?.clones.length === 0, 'origin released');
  });

  it('delete removes the file', async () => {
    const id = await register(fs1, { PATH: join(dir, 'src', 'disk.raw'), SIZE: '4' });
    const source = view(id)?.source ?? '';
    expect(existsSync(source)).toBe(true);
    await ok({ type: 'image.delete', imageId: id });
    await eventually(() => view(id)?.state === 'REMOVED', 'removed');
    expect(existsSync(source)).toBe(false);
  });

  it('snapshots kept as <SOURCE>.snap/<id>: delete removes one, revert copies one over the image, flatten makes one the image', async () => {
    const id = await register(fs1, { PATH: join(dir, 'src', 'disk.raw'), SIZE: '4', PERSISTENT: 'YES' });
    const src = view(id)?.source ?? '';
    // A VM left three snapshots of its disk the way OpenNebula's transfer drivers keep them.
    mkdirSync(`${src}.snap`);
    for (const n of [0, 1, 2]) writeFileSync(`${src}.snap/${n}`, `snapshot ${n}`);
    await ok({ type: 'image.acquire', imageId: id, vmId: 1, mode: 'deploy' });
    const snap = (n: number) => ({ id: n, name: `s${n}`, date: n, parent: -1, children: [], active: false, size: 1 });
    await ok({ type: 'image.setSnapshots', imageId: id, snapshots: { mode: 'DENY', currentBase: -1, nextSnapshot: 3, list: [snap(0), snap(1), snap(2)] } });
    await ok({ type: 'image.release', imageId: id, vmId: 1 });

    await ok({ type: 'image.snapshotDelete', imageId: id, snapshotId: 2 });
    await eventually(() => view(id)?.state === 'READY', 'deleted');
    expect(existsSync(`${src}.snap/2`)).toBe(false);
    expect(view(id)?.snapshots.list.map((s) => s.id)).toEqual([0, 1]);

    await ok({ type: 'image.snapshotRevert', imageId: id, snapshotId: 0 });
    await eventually(() => view(id)?.state === 'READY', 'reverted');
    expect(readFileSync(src, 'utf8')).toBe('snapshot 0');

    await ok({ type: 'image.snapshotFlatten', imageId: id, snapshotId: 1 });
    await eventually(() => view(id)?.state === 'READY', 'flattened');
    expect(readFileSync(src, 'utf8')).toBe('snapshot 1');
    expect(existsSync(`${src}.snap`)).toBe(false);
    expect(view(id)?.snapshots.list).toEqual([]);
  });

  it('qcow2 snapshots (TM_MAD qcow2): revert makes the active snapshot an overlay of the target, flatten converts the target into the image', async () => {
    const id = await register(qcow, { PATH: join(dir, 'src', 'disk.raw'), SIZE: '4', PERSISTENT: 'YES' });
    const src = view(id)?.source ?? '';
    // The layout OpenNebula's qcow2 transfer driver leaves: numbered qcow2 files, the highest one active.
    mkdirSync(`${src}.snap`);
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', `${src}.snap/0`, '8M']);
    execFileSync('qemu-io', ['-c', 'write -P 0x11 0 4k', `${src}.snap/0`]);
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', 'backing_fmt=qcow2', '-b', `${src}.snap/0`, `${src}.snap/1`]);
    execFileSync('qemu-io', ['-c', 'write -P 0x22 0 4k', `${src}.snap/1`]);
    const byte = (file: string) => execFileSync('qemu-io', ['-c', 'read -v 0 1', file], { encoding: 'utf8' }).split(/\s+/)[1];
    expect(byte(`${src}.snap/1`)).toBe('22');
    await ok({ type: 'image.acquire', imageId: id, vmId: 2, mode: 'deploy' });
    const snap = (n: number, active: boolean) => ({ id: n, name: `q${n}`, date: n, parent: n - 1, children: [], active, size: 8 });
    await ok({ type: 'image.setSnapshots', imageId: id, snapshots: { mode: 'DENY', currentBase: -1, nextSnapshot: 2, list: [snap(0, false), snap(1, true)] } });
    await ok({ type: 'image.release', imageId: id, vmId: 2 });

    await ok({ type: 'image.snapshotRevert', imageId: id, snapshotId: 0 });
    await eventually(() => view(id)?.state === 'READY', 'reverted');
    expect(view(id)?.error).toBeNull();
    expect(byte(`${src}.snap/1`)).toBe('11');

    await ok({ type: 'image.snapshotFlatten', imageId: id, snapshotId: 0 });
    await eventually(() => view(id)?.state === 'READY', 'flattened');
    expect(view(id)?.error).toBeNull();
    expect(formatOf(src)).toBe('qcow2');
    expect(byte(src)).toBe('11');
    expect(existsSync(`${src}.snap`)).toBe(false);
  });

  it('a qcow2 datastore converts what it copies to its DRIVER', async () => {
    const id = await register(qcow, { PATH: join(dir, 'src', 'disk.raw'), SIZE: '4' });
    expect(view(id)).toMatchObject({ state: 'READY', format: 'qcow2' });
    expect(formatOf(view(id)?.source ?? '')).toBe('qcow2');
  });
});

describe("OpenNebula's dummy driver, unchanged", () => {
  it('monitor, stat, cp, mkfs, clone and rm answer as the reference does', async () => {
    expect(manager.host.datastore(dummy)).toMatchObject({ totalMb: 20480, freeMb: 20480, usedMb: 9720 });
    // Within the datastore's SAFE_DIRS: the driver host judges every local PATH by the path policy, whatever the driver.
    const statted = await register(dummy, { PATH: join(dir, 'src', 'anything') });
    expect(view(statted)).toMatchObject({ state: 'READY', size: 1024, source: 'dummy_path', format: 'dummy_format' });
    const blank = await register(dummy, { TYPE: 'DATABLOCK', SIZE: '1' });
    expect(view(blank)).toMatchObject({ state: 'READY', source: 'dummy_path' });
    const copy = await c.nextId('image');
    await ok({ type: 'image.clone', imageId: copy, originId: statted, name: `dummy-copy-${copy}`, datastoreId: dummy });
    expect(await settled(copy)).toMatchObject({ state: 'READY', source: 'dummy_path' });
    await ok({ type: 'image.delete', imageId: copy });
    await eventually(() => view(copy)?.state === 'REMOVED', 'removed');
  });
});
