/**
 * The nats-server 2.10–2.15 features the open work builds on, driven through
 * @nats-io/jetstream 3.4 against the server setup brings: atomic batches
 * (multi-aggregate commits), expectations over a wildcard, per-message TTL,
 * deterministic subject partitioning and pinned-client priority groups
 * (partitioned managers). Each test states what imgr relies on.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, type JsMsg } from '@nats-io/jetstream';
import { connect, headers, nanos, type NatsConnection } from '@nats-io/transport-node';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { TestNats } from '../support/nats.js';
import { eventually } from '../support/eventually.js';

/** The expectation header a batch's later messages must carry themselves. */
const expecting = (seq: number, subject?: string) => {
  const h = headers();
  h.set('Nats-Expected-Last-Subject-Sequence', String(seq));
  if (subject !== undefined) h.set('Nats-Expected-Last-Subject-Sequence-Subject', subject);
  return h;
};

let nats: TestNats;
let conf: string;
/** These tests are about the server, not imgr's roles: JetStream without users. */
const opened: NatsConnection[] = [];
const open = async (): Promise<NatsConnection> => {
  const nc = await connect({ servers: nats.url });
  opened.push(nc);
  return nc;
};
beforeAll(async () => {
  conf = join(mkdtempSync(join(tmpdir(), 'imgr-features-')), 'open.conf');
  writeFileSync(conf, 'listen: 127.0.0.1:4222\njetstream {}\n');
  nats = await TestNats.start(conf);
});
afterAll(async () => {
  await Promise.allSettled(opened.map((nc) => nc.close()));
  await nats.dispose();
  rmSync(dirname(conf), { recursive: true, force: true });
});

describe('nats-server features imgr builds on', () => {
  it('atomic batch: commits to several subjects land together, each with its expectation, or not at all', async () => {
    const nc = await open();
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: 'F_ATOMIC', subjects: ['fa.>'], allow_atomic: true });
    const js = jetstream(nc);
    const a = await js.publish('fa.image.1', 'a1');

    // @nats-io/jetstream 3.4 applies `expect` to a batch's first message only: later ones carry the header themselves.
    const batch = await js.startBatch('fa.image.1', 'a2', { expect: { lastSubjectSequence: a.seq } });
    batch.add('fa.datastore.1', 'd1', { headers: expecting(0) });
    const ack = await batch.commit('fa.image.2', 'b1', { headers: expecting(0) });
    expect(ack.count).toBe(3);
    expect((await jsm.streams.info('F_ATOMIC')).state.messages).toBe(4);

    // One stale expectation (fa.image.1 moved on) refuses the whole batch.
    const stale = await js.startBatch('fa.image.3', 'c1', { expect: { lastSubjectSequence: 0 } });
    stale.add('fa.image.1', 'a3', { headers: expecting(a.seq) });
    // Batch.commit of 3.4 reports a refused batch only as a count mismatch; the server's
    // answer to the commit message names the reason, so imgr sends the commit itself.
    const h = expecting(0);
    h.set('Nats-Batch-Id', stale.id);
    h.set('Nats-Batch-Sequence', String(stale.count + 1));
    h.set('Nats-Batch-Commit', '1');
    const answer = (await nc.request('fa.image.4', 'd1', { headers: h, timeout: 5_000 })).json<{ error?: { code: number; err_code: number; description: string } }>();
    expect(answer.error).toMatchObject({ code: 400, err_code: 10071 });
    expect(answer.error?.description).toMatch(/wrong last sequence/);
    const info = await jsm.streams.info('F_ATOMIC', { subjects_filter: '>' });
    expect(info.state.messages).toBe(4);
    expect(info.state.subjects).toEqual({ 'fa.image.1': 2, 'fa.datastore.1': 1, 'fa.image.2': 1 });
  });

  it('a stream without allow_atomic refuses batches', async () => {
    const nc = await open();
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: 'F_PLAIN', subjects: ['fp.>'] });
    const js = jetstream(nc);
    await expect(js.startBatch('fp.1', 'x').then((b) => b.commit('fp.2', 'y', {}))).rejects.toThrow();
  });

  it('expected last sequence over a wildcard: one check guards every subject of an aggregate', async () => {
    const nc = await open();
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: 'F_WILD', subjects: ['fw.>'] });
    const js = jetstream(nc);
    const first = await js.publish('fw.image.7.created', '1');
    await js.publish('fw.image.7.acquired', '2');
    const over = (seq: number) => ({ headers: expecting(seq, 'fw.image.7.*') });
    await expect(js.publish('fw.image.7.released', '3', over(first.seq))).rejects.toThrow(/wrong last sequence/);
    await expect(js.publish('fw.image.7.released', '3', over(first.seq + 1))).resolves.toMatchObject({ seq: first.seq + 2 });
  });

  it('per-message TTL: a message expires on its own while the stream keeps the rest', async () => {
    const nc = await open();
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: 'F_TTL', subjects: ['ft.>'], allow_msg_ttl: true });
    const js = jetstream(nc);
    await js.publish('ft.short', 'x', { ttl: '1s' });
    await js.publish('ft.kept', 'y');
    await eventually(async () => (await jsm.streams.info('F_TTL')).state.messages === 1, 'the 1 s message to expire');
    expect((await jsm.streams.getMessage('F_TTL', { last_by_subj: 'ft.kept' }))?.string()).toBe('y');
  });

  it('deterministic partitioning: a subject transform puts every id in one fixed partition', async () => {
    const nc = await open();
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({
      name: 'F_PART',
      subjects: ['fq.cmd.*.*'],
      subject_transform: { src: 'fq.cmd.*.*', dest: 'fq.cmd.{{wildcard(1)}}.{{partition(4,2)}}.{{wildcard(2)}}' },
    });
    const js = jetstream(nc);
    const partitionOf = async (id: number): Promise<string> => {
      const ack = await js.publish(`fq.cmd.image.${id}`, String(id));
      const m = await jsm.streams.getMessage('F_PART', { seq: ack.seq });
      return m?.subject.split('.')[3] ?? '';
    };
    const seen = new Map<number, string>();
    for (let id = 0; id < 40; id++) seen.set(id, await partitionOf(id));
    for (let id = 0; id < 40; id++) expect(await partitionOf(id)).toBe(seen.get(id));
    expect(new Set(seen.values())).toEqual(new Set(['0', '1', '2', '3']));
  });

  it('pinned-client priority group: one consumer at a time gets the messages, another takes over when it goes', async () => {
    const nc = await open();
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: 'F_PIN', subjects: ['fpin.>'] });
    await jsm.consumers.add('F_PIN', {
      durable_name: 'partition-0',
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      priority_groups: ['managers'],
      priority_policy: 'pinned_client',
      priority_timeout: nanos(5_000),
      // A message the leaving client had taken but not acknowledged comes back soon.
      ack_wait: nanos(2_000),
    });
    const got: Record<'a' | 'b', number[]> = { a: [], b: [] };
    const run = async (who: 'a' | 'b') => {
      const conn = await open();
      const c = await jetstream(conn).consumers.get('F_PIN', 'partition-0');
      const messages = await c.consume({ group: 'managers', max_messages: 10, expires: 1_000 });
      void (async () => {
        for await (const m of messages as AsyncIterable<JsMsg>) {
          got[who].push(Number(m.string()));
          m.ack();
        }
      })();
      return conn;
    };
    const a = await run('a');
    await sleep(200);
    const b = await run('b');
    const js = jetstream(nc);
    for (let i = 0; i < 20; i++) await js.publish('fpin.x', String(i));
    await eventually(() => got.a.length + got.b.length === 20, 'all 20 messages');
    // Exactly one of them was pinned and received everything.
    expect([got.a.length, got.b.length].sort()).toEqual([0, 20]);
    const [pinned, other, otherName] = got.a.length === 20 ? [a, b, 'b' as const] : [b, a, 'a' as const];
    await pinned.close();
    for (let i = 20; i < 30; i++) await js.publish('fpin.x', String(i));
    await eventually(() => new Set(got[otherName]).size === 10, 'the other consumer to take over');
    // All of them, each once acknowledged; one taken by the leaving client may come back out of order.
    expect([...new Set(got[otherName])].sort((x, y) => x - y)).toEqual([20, 21, 22, 23, 24, 25, 26, 27, 28, 29]);
    await other.close();
  });
});
