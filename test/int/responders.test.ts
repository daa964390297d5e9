/**
 * Answering never writes for the asker (issue: trust as a class). A
 * request's reply subject is the asker's choice; whoever answers publishes
 * there with its own rights. This test does not name imgr's responders: it
 * asks the server for every subscription of every imgr connection
 * (manager, projections, driver host, api), makes concrete subjects from
 * them, and sends requests as each read-only or unprivileged user with the
 * reply set to every sensitive destination: each JetStream API verb on each
 * stream and consumer, each key of each bucket, the log, imgr's internal
 * subjects, other users' inboxes. Then every stream and bucket must be as it
 * was and no other inbox may have heard a thing. A responder added later is
 * walked the same way without editing this file.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { z } from 'zod';
import { startSystem, type TestSystem } from '../support/system.js';
import { eventually } from '../support/eventually.js';
import { connectAs, inboxPrefixFor } from '../../src/platform/nats.js';
import { DriverHost } from '../../src/driver-host/driver-host.js';
import { LiveViews } from '../../src/api/views.js';
import { systemClock } from '../../src/platform/clock.js';
import { silentLogger } from '../../src/platform/logger.js';
import { querySubjects } from '../../src/messages/queries.js';
import { replyFor } from '../../src/platform/responder.js';

const DRIVERS_DIR = fileURLToPath(new URL('../../drivers', import.meta.url));
/** Who attacks: every user that may ask something and is not imgr itself. */
const ATTACKERS = ['dashboard', 'auditor', 'alice', 'drivers'] as const;

let sys: TestSystem;
let jsm: JetStreamManager;
/** The manager's rights, to read what a hostile asker would aim at. */
let reader: NatsConnection;
let driverHost: DriverHost;
let api: LiveViews;
let dir: string;
const attackers = new Map<string, NatsConnection>();

beforeAll(async () => {
  // No timer of the manager's writes during the test: the store must be still unless someone writes to it.
  sys = await startSystem({ config: { monitorIntervalMs: 3_600_000, snapshotIntervalMs: 3_600_000 } });
  dir = await mkdtemp(join(tmpdir(), 'imgr-responders-'));
  driverHost = new DriverHost(await connectAs('drivers', sys.nats.url, 'imgr-drivers'), { driversDir: DRIVERS_DIR, concurrency: 2, graceMs: 200, maxStdoutBytes: 65536, secretsKeyFile: join(dir, 'secrets.key') }, systemClock, silentLogger());
  await driverHost.start();
  api = await LiveViews.start(await connectAs('dashboard', sys.nats.url, 'imgr-api'));
  reader = await sys.nats.connect('manager');
  jsm = await jetstreamManager(reader);
  // Something in every stream and bucket: a datastore and an image with views, outcomes and a refusal.
  const ds = await sys.admin.nextId('datastore');
  await sys.admin.send({ type: 'datastore.create', datastoreId: ds, template: { NAME: 'd', DS_MAD: 'dummy', TM_MAD: 'dummy', SAFE_DIRS: '/tmp' } });
  const img = await sys.admin.nextId('image');
  await sys.admin.send({ type: 'image.allocate', imageId: img, datastoreId: ds, template: { NAME: 'i', PATH: '/tmp/x', SIZE: '1' } });
  await eventually(() => sys.manager.host.image(img)?.state === 'READY', 'the image READY');
  await sys.admin.send({ type: 'image.enable', imageId: 424242 });
  await sys.settled();
  for (const user of ATTACKERS) attackers.set(user, await sys.nats.connect(user));
});

afterAll(async () => {
  api.stop();
  await driverHost.stop();
  await sys.stop();
  await rm(dir, { recursive: true, force: true });
});

const ConnzSchema = z.object({
  connections: z.array(
    z.object({
      cid: z.number(),
      name: z.string().optional(),
      authorized_user: z.string().optional(),
      subscriptions_list_detail: z.array(z.object({ subject: z.string(), qgroup: z.string().optional() })).optional(),
    }),
  ),
});

/** Every subject some imgr connection subscribes to, from the server's own account of it. */
async function answeredSubjects(exclude: ReadonlySet<number>): Promise<{ subjects: string[]; users: Set<string> }> {
  const res = await fetch(`${sys.nats.monitorUrl}/connz?subs=detail&auth=true&limit=4096`);
  const connz = ConnzSchema.parse(await res.json());
  const subjects = new Set<string>();
  const users = new Set<string>();
  for (const c of connz.connections) {
    if (exclude.has(c.cid)) continue;
    for (const s of c.subscriptions_list_detail ?? []) {
      subjects.add(s.subject);
      if (c.authorized_user !== undefined) users.add(c.authorized_user);
    }
  }
  return { subjects: [...subjects].sort(), users };
}

/** Concrete subjects a pattern matches, with tokens an asker would try (its own name, aggregates, ids). */
function concrete(pattern: string, asker: string): string[] {
  const choices = [asker, 'image', 'datastore', '0', '100'];
  let out = [''];
  for (const token of pattern.split('.')) {
    const options = token === '*' ? choices : token === '>' ? ['x', 'image.0', `${asker}.view.image.0`] : [token];
    out = out.flatMap((prefix) => options.map((o) => (prefix === '' ? o : `${prefix}.${o}`)));
  }
  return out;
}

/** Where a hostile asker would point an answer: every write imgr's roles could make, every other inbox. */
async function sensitiveDestinations(asker: string): Promise<string[]> {
  const out: string[] = [];
  for await (const s of jsm.streams.list()) {
    const name = s.config.name;
    out.push(`$JS.API.STREAM.PURGE.${name}`, `$JS.API.STREAM.DELETE.${name}`, `$JS.API.STREAM.UPDATE.${name}`, `$JS.API.STREAM.MSG.DELETE.${name}`, `$JS.API.STREAM.SNAPSHOT.${name}`);
    for await (const c of jsm.consumers.list(name)) out.push(`$JS.API.CONSUMER.DELETE.${name}.${c.name}`, `$JS.API.CONSUMER.PAUSE.${name}.${c.name}`);
    if (name.startsWith('KV_')) {
      const bucket = name.slice(3);
      const kv = await new Kvm(reader).open(bucket);
      for await (const k of await kv.keys()) out.push(`$KV.${bucket}.${k}`);
      out.push(`$KV.${bucket}.x`);
    }
    for (const subject of s.config.subjects) out.push(subject.replaceAll('*', '0').replaceAll('>', 'image.0'));
  }
  out.push('$JS.API.STREAM.CREATE.EVIL', '$JS.API.ACCOUNT.PURGE', '$JS.API.SERVER.REMOVE');
  out.push('imgr.evt.image.0', 'imgr.evt.datastore.100', 'imgr.int.image.0', 'imgr.int.datastore.100', 'imgr.cmd.oneadmin.image.0', 'imgr.cmd.oneadmin.datastore.100');
  out.push('imgr.rej.image.0', 'imgr.parked.dispatch.1', 'imgr.drv.dummy.cp', 'imgr.stat', 'imgr.admin.projections.rebuild', 'imgr.vm.1.notice');
  for (const other of ['manager', 'drivers', 'responder', 'oneadmin', 'service', 'bob', 'dashboard', 'auditor', 'alice']) if (other !== asker) out.push(`${inboxPrefixFor(other)}.stolen.1`);
  return out;
}

/** What a write would change: each stream's configuration and sequence, each bucket's keys and values, the consumers. */
async function storeState(): Promise<Record<string, unknown>> {
  const state: Record<string, unknown> = {};
  for await (const s of jsm.streams.list()) {
    const name = s.config.name;
    const consumers: string[] = [];
    for await (const c of jsm.consumers.list(name)) if (c.config.durable_name !== undefined) consumers.push(c.name);
    if (name.startsWith('KV_')) {
      // Buckets by value: a lease renewed at the same value is no change, any other write is.
      const kv = await new Kvm(reader).open(name.slice(3));
      const values: Record<string, string> = {};
      for await (const k of await kv.keys()) values[k] = (await kv.get(k))?.string() ?? '<none>';
      state[name] = { config: { ...s.config }, values, consumers: consumers.sort() };
    } else {
      state[name] = { config: { ...s.config }, messages: s.state.messages, first: s.state.first_seq, last: s.state.last_seq, consumers: consumers.sort() };
    }
  }
  return state;
}

describe('answering never writes for the asker', () => {
  it('an answer goes only to the asker\'s own inbox', () => {
    expect(replyFor({ subject: 'imgr.query.alice.view.image.1', reply: '_INBOX.alice.abc.1' })).toBe('_INBOX.alice.abc.1');
    expect(replyFor({ subject: 'imgr.query.alice.view.image.1', reply: '_INBOX.alicex.abc.1' })).toBeUndefined();
    expect(replyFor({ subject: 'imgr.query.alice.view.image.1', reply: '_INBOX.bob.abc.1' })).toBeUndefined();
    expect(replyFor({ subject: 'imgr.query.alice.view.image.1', reply: '$JS.API.STREAM.PURGE.KV_imgr_outcomes' })).toBeUndefined();
    expect(replyFor({ subject: 'imgr.query.alice.view.image.1', reply: '_INBOX.alice' })).toBeUndefined();
    expect(replyFor({ subject: 'imgr.query.alice.view.image.1' })).toBeUndefined();
  });

  it('requests to every subscription imgr answers, as every unprivileged user, with every sensitive reply subject, change nothing', async () => {
    const attackerIds = new Set([...attackers.values()].map((nc) => nc.info?.client_id ?? -1));
    const { subjects, users } = await answeredSubjects(attackerIds);
    // The enumeration found imgr's answerers: the manager, its query responders, the driver host, the api.
    expect(subjects).toEqual(expect.arrayContaining(['imgr.query.*.view.*.*', 'imgr.query.*.next-id.*', 'imgr.query.*.images', 'imgr.query.*.datastores', 'imgr.stat']));
    expect([...users]).toEqual(expect.arrayContaining(['manager', 'responder', 'drivers', 'dashboard']));

    // Listeners on every inbox and subject an answer must never reach, each as a user that may read it.
    const heard: string[] = [];
    const listeners: NatsConnection[] = [];
    for (const [user, subject] of [['manager', '_INBOX.manager.stolen.>'], ['manager', 'imgr.admin.>'], ['drivers', '_INBOX.drivers.stolen.>'], ['drivers', 'imgr.stat'], ['responder', '_INBOX.responder.stolen.>'], ['oneadmin', '_INBOX.oneadmin.stolen.>'], ['service', '_INBOX.service.stolen.>'], ['bob', '_INBOX.bob.stolen.>'], ['dashboard', '_INBOX.dashboard.stolen.>'], ['auditor', '_INBOX.auditor.stolen.>'], ['alice', '_INBOX.alice.stolen.>']] as const) {
      const nc = await sys.nats.connect(user);
      nc.subscribe(subject, {
        callback: (_e, m) => {
          heard.push(`${user} heard ${m.subject}`);
        },
      });
      await nc.flush();
      listeners.push(nc);
    }

    // Still: nothing writes while nobody acts (the start's monitors and positions settled), else a change would prove nothing.
    const before = await eventually(async () => {
      const a = await storeState();
      await sleep(1_000);
      return isDeepStrictEqual(a, await storeState()) ? a : false;
    }, 'the store to be still');

    let sent = 0;
    for (const [asker, nc] of attackers) {
      const destinations = await sensitiveDestinations(asker);
      for (const pattern of subjects) {
        for (const subject of concrete(pattern, asker)) {
          for (const reply of destinations) {
            nc.publish(subject, '', { reply });
            sent++;
          }
        }
        await nc.flush();
      }
    }
    expect(sent).toBeGreaterThan(10_000);

    // Every asker's own queries are still answered, on its own inbox (after everything it sent above).
    for (const [asker, nc] of attackers) {
      if (asker === 'drivers') continue;
      const answer = await nc.request(querySubjects.view(asker, 'datastore', 100), '', { timeout: 10_000 });
      expect(answer.string()).toContain('"name":"d"');
    }
    await sys.settled();
    expect(heard).toEqual([]);
    expect(await storeState()).toEqual(before);

    // The comparison sees a write when there is one.
    await sys.admin.send({ type: 'image.disable', imageId: 0 });
    await sys.settled();
    expect(await storeState()).not.toEqual(before);
    for (const nc of listeners) await nc.close();
  });
});
