/**
 * The rest of the public operations of spec §7 through NATS: persistence,
 * type, snapshots pushed by VMs and managed on the image, save-as, backups
 * with increments and retention, restore requests, capacity reservations.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestNats } from '../support/nats.js';
import { DriverResponder } from '../support/driver-responder.js';
import { eventually } from '../support/eventually.js';
import { Manager } from '../../src/manager.js';
import { ImgrClient } from '../../src/client/index.js';
import { silentLogger } from '../../src/platform/logger.js';
import { DRIVER_COMMANDS, INTERNAL_COMMANDS, type CommandInput, type Outcome } from '../../src/messages/wire.js';
import { TWO_SNAPSHOTS } from '../support/image-states.js';
import { jetstream } from '@nats-io/jetstream';
import { factsIn, readLog } from '../support/log.js';
import { provision, STREAMS } from '../../src/store/provision.js';
import { EventStore, loggedCommit } from '../../src/store/event-store.js';
import { readStream } from '../../src/store/read-stream.js';
import { AggregateHost } from '../../src/actors/host.js';
import { BUNDLED_DRIVERS, ManagerConfigSchema } from '../../src/platform/config.js';
import { systemClock } from '../../src/platform/clock.js';
import { CommandMessageSchema } from '../../src/messages/wire.js';
import { main } from '../../src/cli/imgr.js';

let nats: TestNats;
let manager: Manager;
let drivers: DriverResponder;
let c: ImgrClient;
/** Stands in for a driver host where a test sends a driver's reply itself. */
let asImgr: ImgrClient;
/** Stands in for the manager where a test sends imgr's own backup bookkeeping itself. */
let asManager: ImgrClient;
let ds: number;
let backups: number;

/** A datastore's folder: a SOURCE a driver reports is taken only there (#27). */
const folderOf = (id: number): string => manager.host.datastore(id)?.basePath ?? '';
const ok = async (cmd: CommandInput): Promise<Extract<Outcome, { status: 'accepted' }>> => {
  // Backup bookkeeping is imgr's own: a driver's reply sent as a driver host would, the rest as the manager does.
  const o = INTERNAL_COMMANDS.has(cmd.type) ? await (DRIVER_COMMANDS.has(cmd.type) ? asImgr : asManager).send(cmd, { internal: true }) : await c.send(cmd);
  if (o.status !== 'accepted') throw new Error(`${cmd.type} rejected: ${o.code} ${o.message}`);
  return o;
};
const stateOf = (id: number) => manager.host.image(id)?.state;

beforeAll(async () => {
  nats = await TestNats.start();
  // Datastores under an absolute folder, as a configured imgr's are: a restore prints absolute files in it.
  manager = await Manager.start({ servers: nats.url, log: silentLogger(), tickMs: 100, config: { drivers: { ...BUNDLED_DRIVERS, datastoreLocation: '/var/lib/imgr-test/datastores' } } });
  drivers = await DriverResponder.start(nats.url);
  c = await ImgrClient.connect({ servers: nats.url, actor: { uid: 0, gid: 0, name: 'oneadmin' } });
  asImgr = await ImgrClient.connect({ servers: nats.url, role: 'drivers', actor: { uid: 0, gid: 0, name: 'oneadmin', service: 'driver-host' } });
  asManager = await ImgrClient.connect({ servers: nats.url, role: 'manager', actor: { uid: 0, gid: 0, name: 'imgr', service: 'process-manager' } });
  ds = await c.nextId('datastore');
  await ok({ type: 'datastore.create', datastoreId: ds, template: { NAME: 'images', DS_MAD: 'fs', TM_MAD: 'shared' } });
  backups = await c.nextId('datastore');
  await ok({ type: 'datastore.create', datastoreId: backups, template: { NAME: 'backups', TYPE: 'BACKUP_DS', DS_MAD: 'rsync', RSYNC_HOST: 'localhost', KEEP_LAST: '2' } });
  await eventually(() => manager.host.datastore(ds)?.monitoredAt !== null && manager.host.datastore(backups)?.monitoredAt !== null, 'monitored');
});

afterAll(async () => {
  await drivers.stop();
  await c.close();
  await asImgr.close();
  await asManager.close();
  await manager.stop();
  await nats.dispose();
});

async function ready(template: Record<string, string> = {}): Promise<number> {
  const id = await c.nextId('image');
  await ok({ type: 'image.allocate', imageId: id, datastoreId: ds, template: { NAME: `img-${id}`, PATH: '/tmp/a', SIZE: '10', ...template } });
  await eventually(() => stateOf(id) === 'READY', 'READY');
  return id;
}

describe('§7 operations through NATS', () => {
  it('persistent, chtype, disable and enable', async () => {
    const id = await ready();
    expect((await ok({ type: 'image.setPersistent', imageId: id, persistent: true })).state).toBe('READY');
    expect(manager.host.image(id)?.persistent).toBe(true);
    await ok({ type: 'image.chtype', imageId: id, imageType: 'DATABLOCK' });
    expect(manager.host.image(id)?.type).toBe('DATABLOCK');
    expect((await ok({ type: 'image.disable', imageId: id })).state).toBe('DISABLED');
    expect((await ok({ type: 'image.enable', imageId: id })).state).toBe('READY');
  });

  it('snapshots pushed by a VM, then deleted, reverted and flattened on the image by the driver', async () => {
    const id = await ready({ PERSISTENT: 'YES' });
    await ok({ type: 'image.acquire', imageId: id, vmId: 3, mode: 'deploy' });
    await ok({ type: 'image.setSnapshots', imageId: id, snapshots: TWO_SNAPSHOTS });
    await ok({ type: 'image.release', imageId: id, vmId: 3 });
    expect((await ok({ type: 'image.snapshotDelete', imageId: id, snapshotId: 0 })).state).toBe('LOCKED');
    await eventually(() => stateOf(id) === 'READY', 'snapshot deleted');
    expect(manager.host.image(id)?.snapshots.list.map((s) => s.id)).toEqual([1]);
    await ok({ type: 'image.snapshotFlatten', imageId: id, snapshotId: 1 });
    await eventually(() => stateOf(id) === 'READY' && manager.host.image(id)?.snapshots.list.length === 0, 'flattened');
    expect(manager.host.image(id)?.size).toBe(4);
  });

  it('save-as: MKFS reserves the source, the VM copies, completion makes it READY', async () => {
    const origin = await ready();
    const id = await c.nextId('image');
    await ok({ type: 'image.allocateSaveAs', imageId: id, name: 'saved', vmId: 8, diskId: 0, originImageId: origin, imageType: 'OS', sizeMb: 10, diskFormat: 'qcow2' });
    await eventually(() => manager.host.image(id)?.saveAs?.transferring === true, 'transfer started');
    expect((await ok({ type: 'image.saveAsDone', imageId: id, success: true })).state).toBe('READY');
    expect(manager.host.image(id)).toMatchObject({ format: 'qcow2', saveAs: null });
  });

  it('backup images: increments beyond KEEP_LAST are flattened by the process manager', async () => {
    const id = await c.nextId('image');
    await ok({
      type: 'image.allocateBackup',
      imageId: id,
      datastoreId: backups,
      vmId: 9,
      source: 'bk0',
      sizeMb: 10,
      format: 'raw',
      diskIds: [0],
      incremental: true,
      owner: { uid: 0, gid: 0, uname: 'oneadmin', gname: 'oneadmin' },
    });
    await ok({ type: 'image.addIncrement', imageId: id, source: 'bk1', sizeMb: 2 });
    expect(drivers.seen.some((r) => r.action === 'INCREMENT_FLATTEN' && r.imageId === id)).toBe(false);
    await ok({ type: 'image.addIncrement', imageId: id, source: 'bk2', sizeMb: 3 });
    await eventually(() => drivers.seen.find((r) => r.action === 'INCREMENT_FLATTEN' && r.imageId === id), 'flatten requested');
    expect(drivers.seen.find((r) => r.action === 'INCREMENT_FLATTEN' && r.imageId === id)?.extra).toEqual({ KEEP_LAST: '2' });
    await eventually(() => stateOf(id) === 'READY', 'flatten done');
  });

  it('restore: a RESTORE request goes to the backup datastore driver with the destination', async () => {
    const id = await c.nextId('image');
    await ok({ type: 'image.allocateBackup', imageId: id, datastoreId: backups, vmId: 9, source: 'bk', sizeMb: 1, format: 'raw', diskIds: [0], owner: { uid: 0, gid: 0, uname: 'oneadmin', gname: '' } });
    const o = await ok({ type: 'image.restore', imageId: id, datastoreId: ds, options: { name: 'back' } });
    expect(o.fact).toBe('image.restoreRequested');
    const req = await eventually(() => drivers.seen.find((r) => r.action === 'RESTORE' && r.imageId === id), 'restore request');
    expect(req).toMatchObject({ datastoreId: backups, extra: { DESTINATION_DS_ID: String(ds), NAME: 'back' } });
    expect(req.image).toMatchObject({ id, type: 'BACKUP' });
  });

  it('restore: the reply registers the restored disks under ids fixed in its fact; a redelivered or repeated reply creates nothing more', async () => {
    const id = await c.nextId('image');
    await ok({ type: 'image.allocateBackup', imageId: id, datastoreId: backups, vmId: 9, source: 'bk', sizeMb: 1, format: 'raw', diskIds: [0, 1], owner: { uid: 0, gid: 0, uname: 'oneadmin', gname: '' } });
    await ok({ type: 'image.restore', imageId: id, datastoreId: ds, options: { name: `twice-${id}` } });
    const req = await eventually(() => drivers.seen.find((r) => r.action === 'RESTORE' && r.imageId === id), 'restore request');
    const reply: CommandInput = { type: 'driver.reply', imageId: id, requestId: req.requestId, action: 'RESTORE', result: 'SUCCESS', info: `${req.datastore.basePath}/.restore/${req.requestId}/r0:3 ${req.datastore.basePath}/.restore/${req.requestId}/r1:2` };
    const first = await asImgr.send(reply, { internal: true, commandId: `reply-${req.requestId}` });
    expect(first).toMatchObject({ status: 'accepted', fact: 'image.restored' });
    // A second reply for the same request (another host, a late retry) matches no job any more.
    expect(await asImgr.send(reply, { internal: true, commandId: `reply-again-${req.requestId}` })).toMatchObject({ status: 'accepted', fact: 'image.replyIgnored' });
    const restored = () => [...manager.host.allImages()].map((r) => r.agg.record).filter((r) => r.name.startsWith(`twice-${id}-disk-`));
    await eventually(() => restored().length === 2 && restored().every((r) => manager.host.image(r.id)?.state === 'READY'), 'both disks READY');
    const log = factsIn(await readLog(await nats.connect('manager'), `imgr.evt.image.${id}`));
    const ids = String(log.find((f) => f.type === 'image.restored')?.detail['images']).split(' ').map(Number);
    expect(restored().map((r) => r.id).sort((a, b) => a - b)).toEqual(ids);
    expect(restored().map((r) => r.size).sort()).toEqual([2, 3]);
  });

  it('capacity (W38): one image.allocate checks the room and holds it until its copy ends; a refusal holds nothing', async () => {
    const allocate = (id: number, sizeMb: number) =>
      c.send({ type: 'image.allocate', imageId: id, datastoreId: ds, template: { NAME: `sized-${id}`, PATH: '/tmp/big', SIZE: String(sizeMb) } });
    drivers.set('CP', 'silent');
    const big = await c.nextId('image');
    const other = await c.nextId('image');
    const reservations = () => manager.host.reservationsIn(ds).filter((r) => r.imageId === big || r.imageId === other);
    try {
      // The monitor says 900 MB free.
      expect(await allocate(big, 901)).toMatchObject({ status: 'rejected', code: 'DS_ERR_NO_SPACE', message: 'Not enough space in datastore' });
      expect(reservations()).toEqual([]);
      expect(await allocate(big, 800)).toMatchObject({ status: 'accepted', state: 'LOCKED' });
      expect(reservations()).toEqual([{ imageId: big, sizeMb: 800 }]);
      expect(manager.host.image(big)?.reservedMb).toBe(800);
      // Only 100 MB are left while the first copy runs.
      expect(await allocate(other, 200)).toMatchObject({ status: 'rejected', code: 'DS_ERR_NO_SPACE' });
      // An administrator may skip the check (and still reserves what it takes); a user may not.
      const user = await ImgrClient.connect({ servers: nats.url, actor: { uid: 7, gid: 100, name: 'alice' } });
      const skipped = await user.send({ type: 'image.allocate', imageId: other, datastoreId: ds, template: { NAME: 'skip', PATH: '/tmp/big', SIZE: '200' }, skipCapacityCheck: true });
      expect(skipped).toMatchObject({ status: 'rejected', code: 'AUTH_ERR_SKIP_CAPACITY' });
      await user.close();
    } finally {
      drivers.set('CP', 'succeed');
    }
    const cp = drivers.seen.find((r) => r.action === 'CP' && r.imageId === big);
    await ok({ type: 'driver.reply', imageId: big, requestId: cp?.requestId ?? '', action: 'CP', result: 'SUCCESS', info: `${folderOf(ds)}/big raw` });
    await eventually(() => reservations().length === 0, 'the reservation given back when the copy ended');
    expect(manager.host.image(big)).toMatchObject({ state: 'READY', reservedMb: 0 });
    await ok({ type: 'image.allocate', imageId: other, datastoreId: ds, template: { NAME: `sized-${other}`, PATH: '/tmp/big', SIZE: '200' } });
  });

  it('capacity across managers: a refusal for room rests on every image\'s commits, so a host whose tail lags reads on before it refuses', async () => {
    // Copies of earlier tests hold nothing any more (and their requests were answered before the driver goes silent).
    await eventually(() => manager.host.reservationsIn(ds).length === 0, 'earlier reservations given back');
    drivers.set('CP', 'silent');
    const [big, other] = [await c.nextId('image'), await c.nextId('image')];
    const nc = await nats.connect('manager');
    const p = await provision(nc);
    const store = new EventStore(nc, p.jsm);
    // A second host, fed the log by hand: it follows exactly as far as this test lets it.
    const lagging = new AggregateHost(store, p.snapshots, ManagerConfigSchema.parse({}), systemClock, silentLogger(), p.partitions);
    let fed = 0;
    const feed = async (): Promise<void> => {
      for (const m of await readStream(nc, STREAMS.events, {})) {
        if (m.seq <= fed) continue;
        lagging.fold(loggedCommit(m.seq, m.subject, m.data, m.headers));
        fed = m.seq;
      }
    };
    try {
      await ok({ type: 'image.allocate', imageId: big, datastoreId: ds, template: { NAME: `held-${big}`, PATH: '/tmp/big', SIZE: '800' } });
      await feed();
      expect(lagging.reservationsIn(ds)).toContainEqual({ imageId: big, sizeMb: 800 });
      // The copy ends on the first manager: the image leaves LOCKED and holds nothing; the lagging host has not read it.
      const cp = drivers.seen.find((r) => r.action === 'CP' && r.imageId === big);
      await ok({ type: 'driver.reply', imageId: big, requestId: cp?.requestId ?? '', action: 'CP', result: 'SUCCESS', info: `${folderOf(ds)}/held raw` });
      await eventually(() => manager.host.image(big)?.state === 'READY', 'READY');
      const command = CommandMessageSchema.parse({
        envelope: { commandId: `lag-${other}`, correlationId: `lag-${other}`, causationId: null, actor: { uid: 0, gid: 0, name: 'oneadmin' }, at: Date.now() },
        command: { type: 'image.allocate', imageId: other, datastoreId: ds, template: { NAME: `after-${other}`, PATH: '/tmp/big', SIZE: '500' } },
      });
      const decided = lagging.execute(command);
      let settled = false;
      void decided.finally(() => (settled = true));
      await new Promise((r) => setTimeout(r, 500));
      // Not refused on the stale count: it waits for the tail to reach where the log stood.
      expect(settled).toBe(false);
      await feed();
      expect(await decided).toMatchObject({ status: 'accepted', state: 'LOCKED' });
      // Its copy ends too (answered here while the driver is silent), so that it holds no space in the tests after this one.
      const otherCp = await eventually(() => drivers.seen.find((r) => r.action === 'CP' && r.imageId === other), 'the copy of the second image requested');
      await ok({ type: 'driver.reply', imageId: other, requestId: otherCp.requestId, action: 'CP', result: 'SUCCESS', info: `${folderOf(ds)}/after raw` });
      await eventually(() => manager.host.reservationsIn(ds).length === 0, 'every reservation given back');
    } finally {
      drivers.set('CP', 'succeed');
      await nc.close();
    }
  });

  it('creations into one datastore sent together are committed as groups, each decided on the space and names those before it took', async () => {
    const group = await c.nextId('datastore');
    await ok({ type: 'datastore.create', datastoreId: group, template: { NAME: `group-${group}`, DS_MAD: 'fs', TM_MAD: 'shared' } });
    await eventually(() => manager.host.datastore(group)?.monitoredAt !== null, 'monitored');
    drivers.set('CP', 'silent');
    try {
      const ids = await Promise.all(Array.from({ length: 12 }, () => c.nextId('image')));
      // 900 MB free: nine copies of 100 MB fit; two of them ask for one name.
      const outcomes = await Promise.all(
        ids.map((id, i) => c.send({ type: 'image.allocate', imageId: id, datastoreId: group, template: { NAME: i < 2 ? `twin-${group}` : `g-${id}`, PATH: '/tmp/big', SIZE: '100' } })),
      );
      expect(outcomes.filter((o) => o.status === 'accepted')).toHaveLength(9);
      expect(outcomes.flatMap((o) => (o.status === 'rejected' ? [o.code] : [])).sort()).toEqual(['DS_ERR_NO_SPACE', 'DS_ERR_NO_SPACE', 'IMG_ERR_NAME_TAKEN']);
      expect(manager.host.reservationsIn(group).map((r) => r.sizeMb)).toEqual(Array.from({ length: 9 }, () => 100));
      const log = await readLog(await nats.connect('manager'));
      // Each accepted creation has its image commit and its grant, chained on the datastore (audit verify checks the chain).
      const grants = log.filter((e) => e.commit.aggregate === 'datastore' && e.commit.id === group && e.commit.facts.some((f) => f.type === 'datastore.spaceReserved')).map((e) => e.seq);
      expect(grants).toHaveLength(9);
      // At least one batch held several creations: grants two apart, the next creation's image between them.
      expect(grants.some((seq, i) => i > 0 && seq - (grants[i - 1] ?? 0) === 2)).toBe(true);
      let out = '';
      expect(await main(['--nats', nats.url, 'audit', 'verify'], (s) => (out += s), () => undefined, false)).toBe(0);
    } finally {
      drivers.set('CP', 'succeed');
    }
  });

  it('capacity: a failed copy gives its reservation back too', async () => {
    drivers.set('CP', 'fail');
    try {
      const id = await c.nextId('image');
      await ok({ type: 'image.allocate', imageId: id, datastoreId: ds, template: { NAME: `failing-${id}`, PATH: '/tmp/big', SIZE: '500' } });
      await eventually(() => stateOf(id) === 'ERROR', 'ERROR');
      await eventually(() => manager.host.reservationsIn(ds).every((r) => r.imageId !== id), 'reservation released');
    } finally {
      drivers.set('CP', 'succeed');
    }
  });

  it('capacity over raw NATS: one image.allocate beyond the room is refused, sized by SIZE or by the STAT the manager runs', async () => {
    const tight = await c.nextId('datastore');
    // The monitor says FREE 900, USED 100: LIMIT_MB=5 leaves no room at all.
    await ok({ type: 'datastore.create', datastoreId: tight, template: { NAME: `tight-${tight}`, DS_MAD: 'fs', TM_MAD: 'shared', LIMIT_MB: '5' } });
    await eventually(() => manager.host.datastore(tight)?.monitoredAt !== null, 'monitored');
    const stats = await nats.connect('drivers');
    stats.subscribe('imgr.stat', {
      queue: 'imgr-drivers',
      callback: (_e, m) => {
        m.respond(JSON.stringify({ result: 'SUCCESS', info: '7' }));
      },
    });
    const nc = await nats.connect('service');
    const send = async (imageId: number, template: Record<string, string>) => {
      const inbox = `_INBOX.service.raw-${imageId}`;
      const sub = nc.subscribe(inbox, { max: 1, timeout: 20_000 });
      const envelope = { commandId: `raw-${imageId}`, correlationId: `raw-${imageId}`, causationId: null, actor: { uid: 7, gid: 100, name: 'alice' }, at: 1 };
      const body = { envelope, command: { type: 'image.allocate', imageId, datastoreId: tight, template }, replyTo: inbox };
      await jetstream(nc).publish(`imgr.cmd.service.image.${imageId}`, JSON.stringify(body), { msgID: envelope.commandId });
      for await (const m of sub) return m.json<Outcome>();
      throw new Error('no outcome');
    };
    const sized = await c.nextId('image');
    expect(await send(sized, { NAME: 'raw-sized', PATH: '/tmp/big', SIZE: '30000' })).toMatchObject({ status: 'rejected', code: 'DS_ERR_NO_SPACE', message: 'Not enough space in datastore' });
    const statted = await c.nextId('image');
    expect(await send(statted, { NAME: 'raw-statted', PATH: '/tmp/big' })).toMatchObject({ status: 'rejected', code: 'DS_ERR_NO_SPACE' });
    expect(manager.host.image(sized)).toBeUndefined();
    expect(manager.host.image(statted)).toBeUndefined();
    expect(manager.host.reservationsIn(tight)).toEqual([]);
    await stats.close();
  });

  it('the steps of whole operations are not a service\'s to send: cloneStart, cloneFinish, reserve and settle are internal', async () => {
    for (const cmd of [
      { type: 'image.cloneStart', imageId: 1, clone: { kind: 'image', id: 2 } },
      { type: 'image.cloneFinish', imageId: 1, clone: { kind: 'image', id: 2 } },
      { type: 'datastore.reserve', datastoreId: ds, imageId: 1, sizeMb: 1 },
      { type: 'datastore.settle', datastoreId: ds, imageId: 1 },
    ] as const) {
      expect(await c.send(cmd)).toMatchObject({ status: 'rejected', code: 'CMD_ERR_INTERNAL' });
    }
  });

  it('a datastore holding images cannot be deleted', async () => {
    await ready();
    expect(await c.send({ type: 'datastore.delete', datastoreId: ds })).toMatchObject({ status: 'rejected', code: 'DS_ERR_NOT_EMPTY', message: `Datastore ${ds} is not empty.` });
  });
});
