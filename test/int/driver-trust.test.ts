/**
 * A hostile driver host, with the drivers user's own credentials, through a
 * real nats-server (#27: the drivers role is a driver, not an administrator):
 *
 * - the SOURCE it reports is taken only as a file of the datastore's own
 *   folder that no other live image holds: answering mallory's MKFS with
 *   alice's SOURCE (or a host file) leaves mallory's image in ERROR, and its
 *   delete sends no RM for alice's disk;
 * - nothing it publishes shares a de-duplication window (or an id) with the
 *   manager's own commands: reports carrying the msgIDs of the manager's
 *   follow-ups (`imgr.pm-<seq>-<i>-<what>`) and timeouts
 *   (`imgr.timeout-<request>`) stop neither.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstream, jetstreamManager, type ConsumerMessages, type JetStreamClient } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { TestNats } from '../support/nats.js';
import { eventually } from '../support/eventually.js';
import { Manager } from '../../src/manager.js';
import { ImgrClient } from '../../src/client/index.js';
import { silentLogger } from '../../src/platform/logger.js';
import { DEFAULT_DRIVER_TIMEOUTS } from '../../src/messages/driver.js';
import { DRIVERS_DURABLE, STREAMS } from '../../src/messages/names.js';
import { DriverRequestSchema, subjects, type CommandInput, type CommandMessage, type DriverRequest, type Outcome } from '../../src/messages/wire.js';

let nats: TestNats;
let manager: Manager;
let admin: ImgrClient;
let drivers: NatsConnection;
let js: JetStreamClient;
let messages: ConsumerMessages;
let ds: number;
let folder: string;
/** What the hostile driver host answers, per image id (undefined: nothing). */
const answers = new Map<number, (req: DriverRequest) => Promise<void>>();
const seen: DriverRequest[] = [];

const ok = async (cmd: CommandInput): Promise<Extract<Outcome, { status: 'accepted' }>> => {
  const o = await admin.send(cmd);
  if (o.status !== 'accepted') throw new Error(`${cmd.type}: ${o.code} ${o.message}`);
  return o;
};
const message = (command: CommandInput, commandId: string): CommandMessage =>
  ({ envelope: { commandId, correlationId: commandId, causationId: null, actor: { uid: 0, gid: 0, name: 'imgr', service: 'driver-host' }, at: Date.now() }, command, replyTo: null }) as CommandMessage;
/** A reply as a driver host sends it: on its own subject, with its own id. */
const reply = (req: DriverRequest, result: 'SUCCESS' | 'FAILURE', info: string): Promise<unknown> =>
  js.publish(
    subjects.driverReply('image', req.imageId),
    JSON.stringify(message({ type: 'driver.reply', imageId: req.imageId, requestId: req.requestId, action: req.action as 'MKFS', result, info }, `imgr.reply-${req.requestId}`)),
    { msgID: `imgr.reply-${req.requestId}` },
  );
/** What the RM requests sent to driver hosts name. */
const removed = (): string[] => seen.filter((r) => r.action === 'RM').map((r) => r.image?.source ?? r.extra['SOURCE'] ?? '');
const stateOf = (id: number) => manager.host.image(id);

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'imgr-driver-trust-'));
  nats = await TestNats.start();
  manager = await Manager.start({
    servers: nats.url,
    log: silentLogger(),
    tickMs: 100,
    config: { watchdogIntervalMs: 100, timeouts: { ...DEFAULT_DRIVER_TIMEOUTS, MKFS: 2 }, drivers: { dsMads: { fs: {} }, tmMads: { shared: {} }, datastoreLocation: join(dir, 'datastores') } },
  });
  admin = await ImgrClient.connect({ servers: nats.url, actor: { uid: 0, gid: 0, name: 'oneadmin' } });
  drivers = await nats.connect('drivers');
  js = jetstream(drivers);
  // The hostile driver host takes the requests from the driver hosts' durable, as a real one does.
  messages = await (await js.consumers.get(STREAMS.driver, DRIVERS_DURABLE)).consume();
  void (async () => {
    for await (const m of messages) {
      const req = DriverRequestSchema.parse(m.json());
      seen.push(req);
      await answers.get(req.imageId)?.(req);
      m.ack();
    }
  })();
  ds = await admin.nextId('datastore');
  await ok({ type: 'datastore.create', datastoreId: ds, template: { NAME: 'files', DS_MAD: 'fs', TM_MAD: 'shared' } });
  folder = manager.host.datastore(ds)?.basePath ?? '';
  expect(folder).toBe(join(dir, 'datastores', String(ds)));
});

afterAll(async () => {
  await messages.close();
  await admin.close();
  await manager.stop();
  await nats.dispose();
});

/** A DATABLOCK whose MKFS the hostile host answers with `source`. */
async function datablock(name: string, source: (req: DriverRequest) => string): Promise<{ id: number; request: () => DriverRequest | undefined }> {
  const id = await admin.nextId('image');
  answers.set(id, async (req) => {
    if (req.action === 'MKFS') await reply(req, 'SUCCESS', source(req));
    else if (req.action === 'RM') await reply(req, 'SUCCESS', '');
  });
  await ok({ type: 'image.allocate', imageId: id, datastoreId: ds, template: { NAME: name, TYPE: 'DATABLOCK', SIZE: '1' } });
  return { id, request: () => seen.find((r) => r.imageId === id && r.action === 'MKFS') };
}

describe('a SOURCE a driver host reports', () => {
  it('is taken inside the datastore\'s folder; another image\'s, or a host file, leaves the image in ERROR and is never removed', async () => {
    const alice = await datablock('alice-disk', () => `${folder}/alice`);
    await eventually(() => stateOf(alice.id)?.state === 'READY', 'alice READY');
    expect(stateOf(alice.id)?.source).toBe(`${folder}/alice`);

    for (const [name, source] of [['mallory-alias', `${folder}/alice`], ['mallory-passwd', '/etc/passwd'], ['mallory-below', `${folder}/alice.snap/0`]] as const) {
      const mallory = await datablock(name, () => source);
      await eventually(() => stateOf(mallory.id)?.state === 'ERROR', `${name} in ERROR`);
      const view = stateOf(mallory.id);
      expect(view?.source, name).toBe('');
      expect(view?.error, name).toContain('MKFS operation succeeded but its SOURCE was refused');
      // Her delete removes the record; no RM ever names alice's file or a host file.
      await ok({ type: 'image.delete', imageId: mallory.id });
      await eventually(() => stateOf(mallory.id)?.state === 'REMOVED' || stateOf(mallory.id) === undefined, `${name} removed`);
    }
    expect(removed()).not.toContain(`${folder}/alice`);
    expect(removed()).not.toContain('/etc/passwd');
    expect(stateOf(alice.id)).toMatchObject({ state: 'READY', source: `${folder}/alice` });
  });
});

describe('the manager\'s own commands cannot be suppressed by the drivers user', () => {
  // Junk with the follow-up's msgID (the server's de-duplication), and well-formed reports with its id (the
  // outcomes and the log's msgID): each alone kept the origin USED with clones [clone] for ever.
  for (const mode of ['junk with its msgID', 'reports with its id'] as const) {
    it(`${mode}: the clone's follow-up still releases the origin`, async () => {
      const origin = await datablock(`origin-${mode}`, () => `${folder}/origin-${mode.split(' ')[0]}`);
      await eventually(() => stateOf(origin.id)?.state === 'READY', 'origin READY');
      const clone = await admin.nextId('image');
      const jsm = await jetstreamManager(await nats.connect('manager'));
      answers.set(clone, async (req) => {
        if (req.action !== 'CLONE') return;
        // The follow-up releasing the origin is published as imgr.pm-<seq>-0-clone-finish, seq the commit of
        // this reply: claim every id it may take.
        const last = (await jsm.streams.info(STREAMS.events)).state.last_seq;
        if (mode === 'junk with its msgID') {
          for (let seq = last; seq <= last + 20; seq++) await js.publish(subjects.driverReply('image', clone), 'junk', { msgID: `imgr.pm-${seq}-0-clone-finish` });
        } else {
          // Each report is a commit of its own: the reply's comes after all ten.
          for (let j = 0; j < 10; j++) {
            const id = `imgr.pm-${last + 11 + j}-0-clone-finish`;
            const log = message({ type: 'driver.log', imageId: clone, requestId: req.requestId, action: 'CLONE', lines: [{ severity: 'I', text: 'x' }] }, id);
            await js.publish(subjects.driverReply('image', clone), JSON.stringify(log), { msgID: `claim-${id}` });
          }
        }
        await reply(req, 'SUCCESS', `${folder}/clone-${clone}`);
      });
      await ok({ type: 'image.clone', imageId: clone, originId: origin.id, name: `copy-${clone}`, datastoreId: ds });
      await eventually(() => stateOf(clone)?.state === 'READY', 'the clone READY');
      // The origin's follow-up was decided: it is READY again, held by no clone.
      await eventually(() => (stateOf(origin.id)?.state === 'READY' && stateOf(origin.id)?.clones.length === 0 ? true : undefined), 'the origin released', 15_000);
    });
  }

  it('reports carrying a timeout\'s msgID and id do not hold the timeout off', async () => {
    const silent = await admin.nextId('image');
    answers.set(silent, async (req) => {
      for (const id of [`imgr.timeout-${req.requestId}`]) {
        await js.publish(subjects.driverReply('image', silent), 'junk', { msgID: id });
        await js.publish(subjects.driverReply('image', silent), JSON.stringify(message({ type: 'driver.log', imageId: silent, requestId: req.requestId, action: req.action, lines: [{ severity: 'I', text: 'x' }] }, id)), { msgID: `${id}-x` });
      }
    });
    await ok({ type: 'image.allocate', imageId: silent, datastoreId: ds, template: { NAME: 'never-answered', TYPE: 'DATABLOCK', SIZE: '1' } });
    await eventually(() => stateOf(silent)?.state === 'ERROR', 'the MKFS timed out', 20_000);
    expect(stateOf(silent)?.error).toMatch(/Driver action MKFS timed out/);
  });
});
