/**
 * Auditors: who did what to an image and when (refusals included), its view
 * at a past sequence or time, the NDJSON export, and verification of the
 * hash chain — all with the read-only auditor role.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestNats } from '../support/nats.js';
import { DriverResponder } from '../support/driver-responder.js';
import { eventually } from '../support/eventually.js';
import { Manager } from '../../src/manager.js';
import { ImgrClient } from '../../src/client/index.js';
import { silentLogger } from '../../src/platform/logger.js';
import { datastoreAt, exportNdjson, historyOf, imageAt } from '../../src/audit/history.js';
import { verifyLog } from '../../src/audit/verify.js';
import type { NatsConnection } from '@nats-io/transport-node';

let nats: TestNats;
let manager: Manager;
let drivers: DriverResponder;
let alice: ImgrClient;
let bob: ImgrClient;
let auditor: NatsConnection;
let ds: number;
let image: number;
const seqs: number[] = [];

beforeAll(async () => {
  nats = await TestNats.start();
  manager = await Manager.start({ servers: nats.url, log: silentLogger(), tickMs: 100 });
  drivers = await DriverResponder.start(nats.url);
  // Two gateways, each vouching for its users: the facts name the gateway NATS authenticated.
  alice = await ImgrClient.connect({ servers: nats.url, principal: 'portal', actor: { uid: 7, gid: 100, name: 'alice' } });
  bob = await ImgrClient.connect({ servers: nats.url, principal: 'scheduler', actor: { uid: 8, gid: 100, name: 'bob' } });
  auditor = await nats.connect('auditor');
  ds = await alice.nextId('datastore');
  // Datastores are the administrator's to create.
  const admin = await ImgrClient.connect({ servers: nats.url, principal: 'oneadmin', actor: { uid: 0, gid: 0, name: 'oneadmin' } });
  await admin.send({ type: 'datastore.create', datastoreId: ds, template: { NAME: 'images', DS_MAD: 'fs', TM_MAD: 'shared' } });
  await admin.close();
  image = await alice.nextId('image');
  const o = await alice.send({ type: 'image.allocate', imageId: image, datastoreId: ds, template: { NAME: 'audited', PATH: '/tmp/a', SIZE: '1', PERSISTENT: 'YES' } });
  if (o.status === 'accepted') seqs.push(o.seq);
  await eventually(() => manager.host.image(image)?.state === 'READY', 'READY');
  for (const cmd of [
    { type: 'image.acquire' as const, imageId: image, vmId: 1, mode: 'deploy' as const },
    { type: 'image.acquire' as const, imageId: image, vmId: 2, mode: 'deploy' as const },
    { type: 'image.release' as const, imageId: image, vmId: 1 },
  ]) {
    const r = await bob.send(cmd);
    if (r.status === 'accepted') seqs.push(r.seq);
  }
});

afterAll(async () => {
  await drivers.stop();
  await alice.close();
  await bob.close();
  await manager.stop();
  await nats.dispose();
});

describe('audit', () => {
  it('answers who did what to an image and when, refusals included', async () => {
    const h = await historyOf(auditor, 'image', image);
    expect(h.map((e) => [e.kind, e.what, e.actor?.name, e.actor?.service])).toEqual([
      ['fact', 'image.registered', 'alice', 'portal'],
      ['fact', 'image.driverSucceeded', 'imgr', 'driver-host'],
      ['fact', 'image.acquired', 'bob', 'scheduler'],
      ['rejected', 'image.acquire', 'bob', 'scheduler'],
      ['fact', 'image.released', 'bob', 'scheduler'],
    ]);
    expect(h[3]?.why).toBe(`IMG_ERR_ACQUIRE_PERSISTENT: Cannot acquire image ${image}, it is persistent and already in use`);
    expect(h[2]).toMatchObject({ state: 'USED_PERS', why: 'vmId=1 mode=deploy' });
    expect(h.every((e, i) => i === 0 || (h[i - 1]?.at ?? 0) <= e.at)).toBe(true);
  });

  it('travels in time by sequence and by time', async () => {
    const [registered, acquired] = seqs;
    expect((await imageAt(auditor, image, { seq: registered ?? 0 }))?.state).toBe('LOCKED');
    expect((await imageAt(auditor, image, { seq: acquired ?? 0 }))).toMatchObject({ state: 'USED_PERS', vms: [1] });
    expect(await imageAt(auditor, image, { seq: 0 })).toBeNull();
    expect((await imageAt(auditor, image, { at: Date.now() }))).toEqual(manager.host.image(image));
    expect((await datastoreAt(auditor, ds, { at: Date.now() }))?.name).toBe('images');
  });

  it('exports the log as NDJSON, one commit per line', async () => {
    const lines: string[] = [];
    for await (const l of exportNdjson(auditor, `imgr.evt.image.${image}`)) lines.push(l);
    expect(lines).toHaveLength(4);
    const first = JSON.parse(lines[0] ?? '{}') as { seq: number; subject: string; commit: { commandId: string } };
    expect(first.subject).toBe(`imgr.evt.image.${image}`);
    expect(lines.every((l) => l.endsWith('\n') && !l.slice(0, -1).includes('\n'))).toBe(true);
    let all = 0;
    for await (const _ of exportNdjson(auditor)) all += 1;
    expect(all).toBeGreaterThan(lines.length);
  });

  it('verifies the log with the read-only auditor role', async () => {
    expect(await verifyLog(auditor)).toMatchObject({ ok: true, breaks: [] });
  });
});
