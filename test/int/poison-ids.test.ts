/**
 * A command id the outcome bucket cannot store wedged the intake: `poison.`
 * passed the schema, failed as a KV key at every delivery and was
 * redelivered for ever, each holding one of its partition durable's
 * ack-pending slots (2000 such commands stopped a partition, across
 * restarts). Every kind of id the schema used to accept and the bucket
 * refuses is sent through a real server, as a principal and as the drivers
 * user: each is refused once, the next command of the same partition is
 * answered, and no intake durable has anything left pending.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { TestNats } from '../support/nats.js';
import { eventually } from '../support/eventually.js';
import { Manager } from '../../src/manager.js';
import { ImgrClient } from '../../src/client/index.js';
import { silentLogger } from '../../src/platform/logger.js';
import { STREAMS } from '../../src/messages/names.js';
import { causedByMessage } from '../../src/intake/unprocessable.js';

let nats: TestNats;
let manager: Manager;
let alice: ImgrClient;
let drivers: ImgrClient;
let jsm: JetStreamManager;

beforeAll(async () => {
  nats = await TestNats.start();
  manager = await Manager.start({ servers: nats.url, log: silentLogger(), tickMs: 100 });
  alice = await ImgrClient.connect({ servers: nats.url, principal: 'alice', actor: { uid: 7, gid: 100, name: 'alice' } });
  drivers = await ImgrClient.connect({ servers: nats.url, role: 'drivers', actor: { uid: 0, gid: 0, name: 'oneadmin' } });
  jsm = await jetstreamManager(await nats.connect('manager'));
});
afterAll(async () => {
  await alice.close();
  await drivers.close();
  await manager.stop();
  await nats.dispose();
});

/** What every intake durable, of every stream and partition, holds taken and unacknowledged. */
async function intakePending(): Promise<number> {
  let n = 0;
  for await (const s of jsm.streams.list()) for await (const c of jsm.consumers.list(s.config.name)) if (c.name.startsWith('imgr-intake')) n += c.num_ack_pending;
  return n;
}

/** The refusals IMGR_REJ recorded of messages naming `id`. */
async function refusalsOf(id: string): Promise<number> {
  const js = jetstream(await nats.connect('auditor'));
  const c = await js.consumers.get(STREAMS.rejected, { deliver_policy: DeliverPolicy.All, ack_policy: AckPolicy.None } as never);
  const total = (await jsm.streams.info(STREAMS.rejected)).state.last_seq;
  let n = 0;
  for (let seen = 0; seen < total; ) {
    const m = await c.next({ expires: 5_000 });
    if (!m) break;
    seen = m.seq;
    if (m.string().includes(JSON.stringify(id).slice(1, -1))) n++;
  }
  return n;
}

/** Every kind of id the schema took and the bucket refuses: a trailing dot, an empty token, several. */
const PRINCIPAL_POISON = ['poison.', 'poi..son', 'p.', 'a..b.', 'x...y', 'tail-dots..'];
const DRIVER_POISON = ['imgr.reply-zz.', 'imgr..reply-zz', 'imgr.reply-zz..x', 'imgr.reply-zz...'];

describe('ids the outcome bucket cannot store', () => {
  it.each(PRINCIPAL_POISON)('a principal\'s command with id %j is refused once and its partition goes on', async (id) => {
    const imageId = 700 + PRINCIPAL_POISON.indexOf(id);
    const o = await alice.send({ type: 'image.enable', imageId }, { commandId: id, timeoutMs: 20_000 });
    expect(o).toMatchObject({ status: 'rejected', code: 'CMD_ERR_INVALID' });
    // The next command of the same aggregate, so of the same partition, is answered.
    expect(await alice.send({ type: 'image.enable', imageId }, { timeoutMs: 20_000 })).toMatchObject({ status: 'rejected', code: 'IMG_ERR_NOT_FOUND' });
    await eventually(async () => (await intakePending()) === 0, 'nothing pending on any intake durable');
    expect(await refusalsOf(id)).toBe(1);
  });

  it.each(DRIVER_POISON)('the drivers user\'s report with id %j is refused once and the driver hosts\' partition goes on', async (id) => {
    const imageId = 800 + DRIVER_POISON.indexOf(id);
    const log = { type: 'driver.log' as const, imageId, requestId: 'req-1', action: 'CP', lines: [{ severity: 'I' as const, text: 'x' }] };
    expect(await drivers.send(log, { commandId: id, internal: true, timeoutMs: 20_000 })).toMatchObject({ status: 'rejected', code: 'CMD_ERR_INVALID' });
    expect(await drivers.send(log, { internal: true, timeoutMs: 20_000 })).toMatchObject({ status: 'rejected', code: 'IMG_ERR_NOT_FOUND' });
    await eventually(async () => (await intakePending()) === 0, 'nothing pending on any intake durable');
    expect(await refusalsOf(id)).toBe(1);
  });

  it('a failure the message causes is told from NATS being away: the library\'s own refusals of a key, a subject or a payload', async () => {
    const nc = await nats.connect('manager');
    const kv = await new Kvm(nc).open('imgr_outcomes');
    for (const key of ['poison.', '.poison']) {
      const e = await kv.get(key).then(() => undefined, (x: unknown) => x);
      expect(causedByMessage(e), key).toBeDefined();
    }
    const big = await jetstream(nc).publish('imgr.rej.image.1', new Uint8Array(2 * 1024 * 1024)).then(() => undefined, (x: unknown) => x);
    expect(causedByMessage(big)).toBeDefined();
    expect(causedByMessage(new Error('wrapped', { cause: big }))).toBeDefined();
    // No answer (no stream, NATS away) is not the message's doing: left for redelivery.
    const none = await nc.request('imgr.nobody.listens', '', { timeout: 500 }).then(() => undefined, (x: unknown) => x);
    expect(none).toBeInstanceOf(Error);
    expect(causedByMessage(none)).toBeUndefined();
  });
});
