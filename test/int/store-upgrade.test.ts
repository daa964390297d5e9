/**
 * A store written by nats-server 2.9 (Debian 12's, where imgr ran before)
 * with imgr's schema-1 streams opens on the current server: provisioning
 * upgrades the streams in place, keeps every commit, and the manager goes on
 * deciding on that history.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AckPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connect } from '@nats-io/transport-node';
import { OLD_NATS_SERVER, startNatsServer, type NatsServer } from '../../src/platform/nats-server.js';
import { credentialsFor, inboxPrefixFor } from '../../src/platform/nats.js';
import { BUCKETS, STREAMS, SCHEMA_VERSION, provision, streamConfigs } from '../../src/store/provision.js';
import { EventStore } from '../../src/store/event-store.js';
import { verifyLog } from '../../src/audit/verify.js';
import { Manager } from '../../src/manager.js';
import { ImgrClient } from '../../src/client/index.js';
import { silentLogger } from '../../src/platform/logger.js';
import type { Commit } from '../../src/messages/wire.js';
import { history } from '../support/image-spec.js';
import { registerReady } from '../support/image-states.js';
import { ADMIN } from '../support/fixtures.js';
import { NATS_CONF, TEST_PRINCIPALS, testCredentials } from '../support/nats.js';
import { writeServerConfig } from '../../src/platform/nats-auth.js';
import { publishPrincipals } from '../../src/platform/principals-file.js';
import { PRINCIPALS_KEY } from '../../src/platform/principals.js';
import { LEGACY_DURABLES } from '../../src/intake/intake.js';
import { readLog } from '../support/log.js';
import { eventually } from '../support/eventually.js';

let storeDir: string;
let server: NatsServer | undefined;
beforeAll(async () => (storeDir = await mkdtemp(join(tmpdir(), 'imgr-upgrade-js-'))));
afterAll(async () => {
  await server?.stop();
  await rm(storeDir, { recursive: true, force: true });
  await rm(`${storeDir}.conf`, { force: true });
});

/** What imgr's schema 1 created: today's streams without the 2.12 options and unpartitioned, buckets with a store-wide TTL. */
function schemaOneStreams() {
  const unpartitioned: Record<string, string[]> = { [STREAMS.commands]: ['imgr.cmd.>'], [STREAMS.internal]: ['imgr.int.>'] };
  return streamConfigs().map((c) => {
    const { allow_atomic: _atomic, allow_msg_ttl: _ttl, subject_transform: _transform, ...old } = c;
    return { ...old, subjects: unpartitioned[c.name] ?? old.subjects ?? [] };
  });
}

describe('a store written by nats-server 2.9', () => {
  it('opens on the current server with its history, upgraded in place', async () => {
    const conf = writeServerConfig(NATS_CONF, TEST_PRINCIPALS, testCredentials(), `${storeDir}.conf`);
    const old = await startNatsServer({ configFile: conf, storeDir, port: 'random', binary: OLD_NATS_SERVER });
    // The 2.9 connection is raw: imgr itself now refuses that server.
    const oldNc = await connect({ servers: old.url, ...credentialsFor('manager'), inboxPrefix: inboxPrefixFor('manager') });
    expect(oldNc.info?.version).toBe('2.9.10');
    const oldJsm = await jetstreamManager(oldNc);
    for (const cfg of schemaOneStreams()) await oldJsm.streams.add(cfg);
    const kvm = new Kvm(oldNc);
    await kvm.create(BUCKETS.snapshots, { history: 1 });
    await kvm.create(BUCKETS.outcomes, { history: 1, ttl: 24 * 60 * 60_000 });
    const meta = await kvm.create(BUCKETS.meta, { history: 5 });
    await meta.put('schema', '1');
    const store = new EventStore(oldNc, oldJsm);
    const facts = history(3, registerReady({ id: 3, template: { NAME: 'from-2.9' } }));
    let prev = '';
    let expected = 0;
    for (const [i, fact] of facts.entries()) {
      const c: Commit = { v: 1, aggregate: 'image', id: 3, commandId: `old-${i}`, correlationId: `old-${i}`, causationId: null, actor: ADMIN, at: 1_000 + i, prev, facts: [fact] };
      const r = await store.append('image', 3, c, expected);
      prev = r.hash;
      expected = r.seq;
    }
    // A command that waited in the store's one intake durable when it stopped.
    await oldJsm.consumers.add(STREAMS.commands, { durable_name: LEGACY_DURABLES.public, ack_policy: AckPolicy.Explicit, filter_subject: 'imgr.cmd.>' });
    const waiting = { envelope: { commandId: 'waited-in-2.9', correlationId: 'waited-in-2.9', causationId: null, actor: { uid: 0, gid: 0, name: 'oneadmin' }, at: 1 }, command: { type: 'image.disable', imageId: 3 }, replyTo: null };
    const serviceNc = await connect({ servers: old.url, ...credentialsFor('service'), inboxPrefix: inboxPrefixFor('service') });
    await jetstream(serviceNc).publish('imgr.cmd.service.image.3', JSON.stringify(waiting), { msgID: 'waited-in-2.9' });
    await serviceNc.close();
    await meta.put(PRINCIPALS_KEY, JSON.stringify(TEST_PRINCIPALS));
    const before = (await oldJsm.streams.info(STREAMS.events)).state;
    expect(before.messages).toBe(facts.length);
    expect((await oldJsm.streams.info(STREAMS.events)).config.allow_atomic ?? false).toBe(false);
    await oldNc.close();
    await old.stop();

    server = await startNatsServer({ configFile: conf, storeDir, port: 'random' });
    const manager = await Manager.start({ servers: server.url, log: silentLogger() });
    await publishPrincipals(manager.nc, TEST_PRINCIPALS);
    try {
      const nc = await connect({ servers: server.url, ...credentialsFor('manager'), inboxPrefix: inboxPrefixFor('manager') });
      const jsm = await jetstreamManager(nc);
      // The waiting command was decided through the old durable, which is gone; the partitions' durables took its place.
      await eventually(async () => ((await jsm.streams.info(STREAMS.events)).state.messages === before.messages + 1 ? true : undefined), 'the waiting command decided');
      expect((await readLog(nc)).at(-1)?.commit).toMatchObject({ commandId: 'waited-in-2.9', facts: [{ type: 'image.disabled', state: 'DISABLED' }] });
      await eventually(async () => ((await jsm.consumers.list(STREAMS.commands).next()).every((c) => c.name !== LEGACY_DURABLES.public) ? true : undefined), 'the old durable removed');
      const evt = await jsm.streams.info(STREAMS.events);
      expect(evt.state).toMatchObject({ messages: before.messages + 1, first_seq: before.first_seq });
      expect(evt.config).toMatchObject({ allow_atomic: true, deny_delete: true, deny_purge: true });
      expect((await jsm.streams.info(STREAMS.commands)).config.allow_atomic).toBe(true);
      expect((await jsm.streams.info(STREAMS.rejected)).config.allow_msg_ttl).toBe(true);
      expect((await (await new Kvm(nc).open(BUCKETS.meta)).get('schema'))?.string()).toBe(String(SCHEMA_VERSION));
      expect(await verifyLog(nc)).toMatchObject({ ok: true });

      const client = await ImgrClient.connect({ servers: server.url, actor: ADMIN });
      expect(await client.image(3)).toMatchObject({ name: 'from-2.9', state: 'DISABLED' });
      expect(await client.send({ type: 'image.enable', imageId: 3 })).toMatchObject({ status: 'accepted', state: 'READY' });
      expect(await verifyLog(nc)).toMatchObject({ ok: true });
      await client.close();
      await nc.close();
      // A provision on an upgraded store changes nothing more.
      const again = await connect({ servers: server.url, ...credentialsFor('manager'), inboxPrefix: inboxPrefixFor('manager') });
      await provision(again);
      expect((await (await jetstreamManager(again)).streams.info(STREAMS.events)).state.messages).toBe(before.messages + 2);
      await again.close();
    } finally {
      await manager.stop();
    }
  });
});
