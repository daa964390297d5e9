/**
 * Whole operations survive a manager killed at every step: before and after
 * each commit, each driver dispatch and each follow-up of a clone, a sized
 * registration and a restore. A failpoint (src/platform/failpoint.ts) makes
 * the manager SIGKILL itself at the named step; a fresh manager takes over.
 * The end state is either complete or fully compensated: nothing held, no
 * reservation left, no commit twice, every chain intact.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestNats } from '../support/nats.js';
import { DriverResponder } from '../support/driver-responder.js';
import { ManagerProcess, type RoleProcess } from '../support/manager-process.js';
import { eventually } from '../support/eventually.js';
import { readLog } from '../support/log.js';
import { duplicateCommits, viewsFromLog } from '../support/replay.js';
import { verifyLog } from '../../src/audit/verify.js';
import { ImgrClient } from '../../src/client/index.js';
import { DRIVER_COMMANDS, type CommandInput, type Outcome } from '../../src/messages/wire.js';

const CONFIG = { ackWaitMs: 2_000, snapshotIntervalMs: 200 };
const SLOW = { timeoutMs: 60_000 };
let nats: TestNats;
let drivers: DriverResponder;
let client: ImgrClient;
let asDriverHost: ImgrClient;
let asManager: ImgrClient;
let manager: RoleProcess;
let ds: number;
let backups: number;

beforeAll(async () => {
  nats = await TestNats.start();
  manager = await ManagerProcess.start(nats.url, CONFIG);
  drivers = await DriverResponder.start(nats.url);
  client = await ImgrClient.connect({ servers: nats.url, actor: { uid: 0, gid: 0, name: 'oneadmin' } });
  asDriverHost = await ImgrClient.connect({ servers: nats.url, role: 'drivers', actor: { uid: 0, gid: 0, name: 'oneadmin', service: 'driver-host' } });
  asManager = await ImgrClient.connect({ servers: nats.url, role: 'manager', actor: { uid: 0, gid: 0, name: 'imgr', service: 'process-manager' } });
  ds = await client.nextId('datastore');
  await accepted({ type: 'datastore.create', datastoreId: ds, template: { NAME: 'images', DS_MAD: 'fs', TM_MAD: 'shared' } });
  backups = await client.nextId('datastore');
  await accepted({ type: 'datastore.create', datastoreId: backups, template: { NAME: 'backups', TYPE: 'BACKUP_DS', DS_MAD: 'rsync', RSYNC_HOST: 'localhost' } });
  // Reservations are only taken where capacity counts: after a first monitor.
  await eventually(async () => (await client.datastore(ds))?.monitoredAt !== null, 'monitored');
});

afterAll(async () => {
  await drivers.stop();
  await client.close();
  await asDriverHost.close();
  await asManager.close();
  await manager.stop();
  await nats.dispose();
});

async function accepted(cmd: CommandInput): Promise<Extract<Outcome, { status: 'accepted' }>> {
  const o = await client.send(cmd, SLOW);
  if (o.status !== 'accepted') throw new Error(`${cmd.type}: ${o.code} ${o.message}`);
  return o;
}

async function readyImage(name: string): Promise<number> {
  const id = await client.nextId('image');
  await accepted({ type: 'image.allocate', imageId: id, datastoreId: ds, template: { NAME: name, PATH: '/tmp/origin', SIZE: '10' } });
  await eventually(async () => (await client.image(id))?.state === 'READY', `${name} READY`);
  return id;
}

/**
 * Runs `operate` against a manager armed to die at `point`, waits until it
 * did, starts a fresh manager and lets `operate` finish there.
 */
async function crashingAt(point: string, operate: () => Promise<void>): Promise<void> {
  await manager.stop();
  manager = await ManagerProcess.start(nats.url, CONFIG, { IMGR_FAILPOINTS: point });
  const work = operate();
  // A point the operation never reaches fails the test here (a failpoint that no longer exists).
  await Promise.race([manager.ended(), work.then(() => manager.ended())]);
  manager = await ManagerProcess.start(nats.url, CONFIG);
  await work;
}

/** What holds after every crash: the log has each commit once, its chains intact, and the views are its fold. */
async function logIsSound(ids: readonly number[]): Promise<void> {
  const log = await readLog(await nats.connect('manager'));
  expect(duplicateCommits(log)).toEqual([]);
  expect((await verifyLog(await nats.connect('auditor'))).breaks).toEqual([]);
  const rebuilt = viewsFromLog(log);
  for (const id of ids) expect(await client.image(id)).toEqual(rebuilt.images.get(id));
}

/** The manager's view of an image; undefined while no manager runs (between a crash and the restart). */
const view = (id: number) => client.image(id).catch(() => undefined);

/** Images whose name starts with `prefix`, as the log says (no projections run here). */
const imagesNamed = async (prefix: string) =>
  [...viewsFromLog(await readLog(await nats.connect('manager'), 'imgr.evt.image.>')).images.values()].filter((v) => v.name.startsWith(prefix) && v.state !== 'REMOVED');

/** Which of these images still hold space, as the log says (W38: the image's record holds it until it leaves LOCKED). */
const reservedFor = async (imageIds: readonly number[]): Promise<number[]> =>
  [...viewsFromLog(await readLog(await nats.connect('manager'), 'imgr.evt.image.>')).images.values()].filter((v) => imageIds.includes(v.id) && v.reservedMb > 0).map((v) => v.id);

const CLONE_STEPS = [
  'before-commit:image.clone',
  'after-commit:image.clone',
  'before-dispatch:CLONE',
  'after-dispatch:CLONE',
  'before-commit:driver.reply:CLONE',
  'after-commit:driver.reply:CLONE',
  'before-follow-up:image.releaseCloneSource',
  'after-follow-up:image.releaseCloneSource',
];

describe('a clone, killed at every step', () => {
  for (const [point, copy] of [...CLONE_STEPS.map((p) => [p, 'succeed'] as const), ['after-commit:image.clone', 'fail'] as const, ['after-commit:driver.reply:CLONE', 'fail'] as const]) {
    it(`${point}, copy ${copy === 'succeed' ? 'succeeds' : 'fails'}: ${copy === 'succeed' ? 'complete' : 'compensated'}, origin released, no reservation`, async () => {
      const origin = await readyImage(`origin-${point.replace(/:/g, '-')}-${copy}`);
      const target = await client.nextId('image');
      drivers.set('CLONE', copy);
      try {
        await crashingAt(point, async () => {
          const o = await client.send({ type: 'image.clone', imageId: target, originId: origin, name: `copy-${target}`, datastoreId: ds }, SLOW);
          expect(o).toMatchObject({ status: 'accepted', id: target });
          await eventually(async () => (await view(target))?.state === (copy === 'succeed' ? 'READY' : 'ERROR'), 'the clone ended');
          await eventually(async () => (await view(origin))?.state === 'READY', 'origin released');
          await eventually(async () => (await reservedFor([target])).length === 0, 'reservation given back');
        });
      } finally {
        drivers.set('CLONE', 'succeed');
      }
      expect(await client.image(origin)).toMatchObject({ state: 'READY', clones: [] });
      expect((await imagesNamed(`copy-${target}`)).map((v) => v.id)).toEqual([target]);
      await logIsSound([origin, target]);
    });
  }
});

const REGISTRATION_STEPS = [
  'before-commit:image.allocate',
  'after-commit:image.allocate',
  'before-dispatch:CP',
  'after-dispatch:CP',
  'before-commit:driver.reply:CP',
  'after-commit:driver.reply:CP',
];

describe('a sized registration, killed at every step', () => {
  for (const [point, copy] of [...REGISTRATION_STEPS.map((p) => [p, 'succeed'] as const), ['after-commit:image.allocate', 'fail'] as const]) {
    it(`${point}, copy ${copy === 'succeed' ? 'succeeds' : 'fails'}: the reservation is held while it runs and given back`, async () => {
      const id = await client.nextId('image');
      drivers.set('CP', copy);
      try {
        await crashingAt(point, async () => {
          const o = await client.send({ type: 'image.allocate', imageId: id, datastoreId: ds, template: { NAME: `sized-${id}`, PATH: '/tmp/a', SIZE: '50' } }, SLOW);
          expect(o).toMatchObject({ status: 'accepted', id });
          await eventually(async () => (await view(id))?.state === (copy === 'succeed' ? 'READY' : 'ERROR'), 'the copy ended');
          await eventually(async () => (await reservedFor([id])).length === 0, 'reservation given back');
        });
      } finally {
        drivers.set('CP', 'succeed');
      }
      expect(await client.image(id)).toMatchObject({ reservedMb: 0, pending: null });
      await logIsSound([id]);
    });
  }
});

const RESTORE_STEPS = [
  'before-commit:image.restore',
  'after-commit:image.restore',
  'before-dispatch:RESTORE',
  'after-dispatch:RESTORE',
  'before-commit:driver.reply:RESTORE',
  'after-commit:driver.reply:RESTORE',
  'before-follow-up:image.registerRestored',
  'after-follow-up:image.registerRestored',
];

describe('a restore, killed at every step', () => {
  for (const point of RESTORE_STEPS) {
    it(`${point}: each restored disk becomes exactly one image, the job ends, nothing is reserved`, async () => {
      const backup = await client.nextId('image');
      // The backup image is registered by the manager's bookkeeping, the RESTORE answered by a driver host: each on its own subject.
      const send = (cmd: CommandInput, commandId: string) => (DRIVER_COMMANDS.has(cmd.type) ? asDriverHost : asManager).send(cmd, { internal: true, commandId, ...SLOW });
      const made = await send(
        { type: 'image.allocateBackup', imageId: backup, datastoreId: backups, vmId: 3, source: `bk-${backup}`, sizeMb: 5, format: 'raw', diskIds: [0, 1], owner: { uid: 0, gid: 0, uname: 'oneadmin', gname: '' } },
        `backup-${backup}`,
      );
      expect(made.status).toBe('accepted');
      const name = `restored-${backup}`;
      const restoredImages = () => imagesNamed(`${name}-disk-`);
      await crashingAt(point, async () => {
        await accepted({ type: 'image.restore', imageId: backup, datastoreId: ds, options: { name } });
        // Stands in for the driver host: the RESTORE ran and printed two disks.
        const req = await eventually(() => drivers.seen.find((r) => r.action === 'RESTORE' && r.imageId === backup), 'RESTORE dispatched', 60_000);
        const reply = await send(
          { type: 'driver.reply', imageId: backup, requestId: req.requestId, action: 'RESTORE', result: 'SUCCESS', info: `${req.datastore.basePath}/.restore/${req.requestId}/${name}-0:4 ${req.datastore.basePath}/.restore/${req.requestId}/${name}-1:2` },
          `reply-${req.requestId}`,
        );
        expect(reply).toMatchObject({ status: 'accepted', fact: 'image.restored' });
        await eventually(async () => {
          const images = await restoredImages();
          return images.length === 2 && images.every((v) => v.state === 'READY');
        }, 'both restored images READY', 60_000);
      });
      const images = await restoredImages();
      expect(images.map((v) => v.name).sort()).toEqual([`${name}-disk-0`, `${name}-disk-1`]);
      expect(await client.image(backup)).toMatchObject({ state: 'READY', jobs: [] });
      // Each image gives its reservation back in a follow-up of the commit that made it READY.
      await eventually(async () => (await reservedFor(images.map((v) => v.id))).length === 0, 'reservations given back');
      await logIsSound([backup, ...images.map((v) => v.id)]);
    });
  }
});
