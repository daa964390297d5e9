/**
 * No command holds a slot of its partition's durable for ever, whatever
 * fails: the intake durables have a max_deliver, and a command that reaches
 * it is recorded in IMGR_REJ for audit (CMD_ERR_GIVEN_UP), logged for the
 * operator and removed from its work queue. Here the outcome bucket refuses
 * every write (it is full), a failure that is not the message's: the command
 * is redelivered up to the bound (three here, about twelve hours' worth by
 * default), then given up, and once the bucket takes writes again the next
 * command of its partition is answered.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { TestNats } from '../support/nats.js';
import { eventually } from '../support/eventually.js';
import { Manager } from '../../src/manager.js';
import { ImgrClient } from '../../src/client/index.js';
import { silentLogger } from '../../src/platform/logger.js';
import { ImgrMetrics } from '../../src/platform/metrics.js';
import { BUCKETS, STREAMS } from '../../src/messages/names.js';
import { INTAKE_MAX_DELIVER, intakeDurable } from '../../src/intake/intake.js';
import { partitionOf } from '../../src/messages/partitions.js';
import { RejectionRecordSchema, type RejectionRecord } from '../../src/messages/wire.js';

let nats: TestNats;
let manager: Manager;
let jsm: JetStreamManager;
let alice: ImgrClient;
let partitions: number;
const metrics = new ImgrMetrics();

beforeAll(async () => {
  nats = await TestNats.start();
  manager = await Manager.start({ servers: nats.url, log: silentLogger(), tickMs: 100, config: { intakeMaxDeliver: 3 }, metrics });
  jsm = await jetstreamManager(await nats.connect('manager'));
  alice = await ImgrClient.connect({ servers: nats.url, principal: 'alice', actor: { uid: 7, gid: 100, name: 'alice' } });
  partitions = Number(/partition\((\d+),/.exec((await jsm.streams.info(STREAMS.commands)).config.subject_transform?.dest ?? '')?.[1]);
});
afterAll(async () => {
  await alice.close();
  await manager.stop();
  await nats.dispose();
});

const durableOf = (imageId: number): string => intakeDurable('public', partitionOf('image', imageId, partitions));

async function recordsOf(commandId: string): Promise<RejectionRecord[]> {
  const js = jetstream(await nats.connect('auditor'));
  const last = (await jsm.streams.info(STREAMS.rejected)).state.last_seq;
  if (last === 0) return [];
  const c = await js.consumers.get(STREAMS.rejected, { deliver_policy: DeliverPolicy.All, ack_policy: AckPolicy.None } as never);
  const out: RejectionRecord[] = [];
  for (let seen = 0; seen < last; ) {
    const m = await c.next({ expires: 5_000 });
    if (!m) break;
    seen = m.seq;
    const r = RejectionRecordSchema.safeParse(m.json());
    if (r.success && r.data.commandId === commandId) out.push(r.data);
  }
  return out;
}

describe('a command that never gets processed', () => {
  it('the intake durables carry the bound, generous by default', async () => {
    expect(INTAKE_MAX_DELIVER).toBeGreaterThanOrEqual(12 * 3600);
    for await (const c of jsm.consumers.list(STREAMS.commands)) if (c.name.startsWith('imgr-intake')) expect(c.config.max_deliver).toBe(3);
  });

  it('is given up at its max_deliver: recorded once, removed from its queue, its slot freed, and the partition goes on', async () => {
    const imageId = 4242;
    const outcomes = `KV_${BUCKETS.outcomes}`;
    const cfg = (await jsm.streams.info(outcomes)).config;
    // The outcome bucket takes no write: every delivery fails, as a full store would make it.
    await jsm.streams.update(outcomes, { ...cfg, max_bytes: 1 });
    const commandId = randomUUID();
    const nc = await nats.connect('alice');
    const envelope = { commandId, correlationId: commandId, causationId: null, actor: { uid: 7, gid: 100, name: 'alice' }, at: Date.now() };
    const ack = await jetstream(nc).publish(`imgr.cmd.alice.image.${imageId}`, JSON.stringify({ envelope, command: { type: 'image.enable', imageId }, replyTo: null }), { msgID: commandId });
    const [given] = await eventually(async () => {
      const r = await recordsOf(commandId);
      return r.length > 0 ? r : undefined;
    }, 'the command given up');
    expect(given).toMatchObject({ code: 'CMD_ERR_GIVEN_UP', commandId, actor: { name: 'alice' } });
    expect(given?.message).toMatch(/delivered 3 times/);
    await eventually(async () => (await jsm.streams.getMessage(STREAMS.commands, { seq: ack.seq }).catch(() => null)) === null, 'the command removed from its queue');
    expect((await jsm.consumers.info(STREAMS.commands, durableOf(imageId))).num_ack_pending).toBe(0);
    // The operator sees it: counted among the refusals (and logged as an error).
    const counted = (await metrics.commands.get()).values.find((v) => v.labels.type === 'given-up' && v.labels.source === STREAMS.commands);
    expect(counted?.value).toBe(1);
    // The store takes writes again: the next command of the partition is answered.
    await jsm.streams.update(outcomes, { ...cfg, max_bytes: -1 });
    expect(await alice.send({ type: 'image.enable', imageId }, { timeoutMs: 20_000 })).toMatchObject({ status: 'rejected', code: 'IMG_ERR_NOT_FOUND' });
    await eventually(async () => (await jsm.consumers.info(STREAMS.commands, durableOf(imageId))).num_ack_pending === 0, 'nothing pending');
    expect(await recordsOf(commandId)).toHaveLength(1);
  });
});
