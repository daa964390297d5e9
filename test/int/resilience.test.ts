/**
 * Concurrency and infrastructure faults: two managers racing on one image,
 * and a nats-server restart under load.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestNats } from '../support/nats.js';
import { DriverResponder } from '../support/driver-responder.js';
import { eventually } from '../support/eventually.js';
import { readLog } from '../support/log.js';
import { duplicateCommits, viewsFromLog } from '../support/replay.js';
import { verifyLog } from '../../src/audit/verify.js';
import { Manager } from '../../src/manager.js';
import { ImgrClient } from '../../src/client/index.js';
import { silentLogger } from '../../src/platform/logger.js';
import type { CommandInput, Outcome } from '../../src/messages/wire.js';

let nats: TestNats;
let a: Manager;
let b: Manager;
let drivers: DriverResponder;
let client: ImgrClient;
let ds: number;

beforeAll(async () => {
  nats = await TestNats.start();
  a = await Manager.start({ servers: nats.url, log: silentLogger(), tickMs: 100 });
  b = await Manager.start({ servers: nats.url, log: silentLogger(), tickMs: 100 });
  drivers = await DriverResponder.start(nats.url);
  client = await ImgrClient.connect({ servers: nats.url, actor: { uid: 0, gid: 0, name: 'oneadmin' } });
  ds = await client.nextId('datastore');
  await client.send({ type: 'datastore.create', datastoreId: ds, template: { NAME: 'images', DS_MAD: 'fs', TM_MAD: 'shared' } });
});

afterAll(async () => {
  await drivers.stop();
  await client.close();
  await a.stop();
  await b.stop();
  await nats.dispose();
});

async function readyImage(template: Record<string, string>): Promise<number> {
  const id = await client.nextId('image');
  const o = await client.send({ type: 'image.allocate', imageId: id, datastoreId: ds, template: { PATH: '/tmp/a', SIZE: '1', ...template } });
  expect(o.status).toBe('accepted');
  // Each manager reads it (the one that does not hold its partition loads it for the read).
  await eventually(async () => (await a.host.readImage(id))?.state === 'READY' && (await b.host.readImage(id))?.state === 'READY', 'READY on both managers');
  return id;
}

/** Sends until an outcome arrives, always with the same command id, as a careful service does. */
async function sendSurely(c: CommandInput, commandId: string): Promise<Outcome> {
  for (;;) {
    try {
      return await client.send(c, { commandId, timeoutMs: 5_000 });
    } catch {
      // Connection lost or no outcome yet: the same id makes the retry safe.
    }
  }
}

describe('two managers racing on one image', () => {
  it('loses no update: every acquire of a SHAREABLE image is accepted and recorded once', async () => {
    const id = await readyImage({ NAME: 'shared', PERSISTENT: 'YES', PERSISTENT_TYPE: 'SHAREABLE' });
    const vms = Array.from({ length: 40 }, (_, i) => i + 1);
    const outcomes = await Promise.all(vms.map((vm) => client.send({ type: 'image.acquire', imageId: id, vmId: vm, mode: 'deploy' }, { commandId: `race-${id}-${vm}` })));
    expect(outcomes.filter((o) => o.status !== 'accepted' || o.state !== 'USED_PERS')).toEqual([]);
    await eventually(async () => (await a.host.readImage(id))?.vms.length === 40 && (await b.host.readImage(id))?.vms.length === 40, 'both managers see 40 VMs');
    expect((await a.host.readImage(id))?.vms).toEqual(vms);
    const log = await readLog(await nats.connect('manager'), `imgr.evt.image.${id}`);
    expect(log.filter((c) => c.commit.commandId.startsWith(`race-${id}-`))).toHaveLength(40);
    expect(duplicateCommits(log)).toEqual([]);
  });
});

describe('nats-server restart under load', () => {
  it('the managers reconnect and every command gets exactly one outcome and one commit', async () => {
    const id = await readyImage({ NAME: 'busy' });
    const commands: [CommandInput, string][] = [];
    for (let vm = 100; vm < 130; vm++) {
      commands.push([{ type: 'image.acquire', imageId: id, vmId: vm, mode: 'deploy' }, `load-${id}-${vm}-a`]);
      commands.push([{ type: 'image.release', imageId: id, vmId: vm }, `load-${id}-${vm}-r`]);
    }
    const outcomes: Outcome[] = [];
    let restarted = false;
    for (const [i, [c, commandId]] of commands.entries()) {
      if (i === 20) {
        await nats.restart();
        restarted = true;
      }
      outcomes.push(await sendSurely(c, commandId));
    }
    expect(restarted).toBe(true);
    expect(outcomes.filter((o) => o.status !== 'accepted')).toEqual([]);
    expect((await a.host.readImage(id))?.state).toBe('READY');

    const log = await readLog(await nats.connect('manager'));
    expect(duplicateCommits(log)).toEqual([]);
    const mine = new Set(commands.map(([, cid]) => cid));
    expect(log.filter((c) => mine.has(c.commit.commandId))).toHaveLength(commands.length);
    const views = viewsFromLog(log);
    await eventually(() => a.host.appliedSeq >= (log.at(-1)?.seq ?? 0) && b.host.appliedSeq >= (log.at(-1)?.seq ?? 0), 'caught up');
    expect(await a.host.readImage(id)).toEqual(views.images.get(id));
    expect(await b.host.readImage(id)).toEqual(views.images.get(id));
    // Two managers and a server restart later, every aggregate's hash chain is intact.
    expect((await verifyLog(await nats.connect('auditor'))).breaks).toEqual([]);
  });
});
