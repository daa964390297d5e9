/**
 * Auditors, the CLI and the tests read a stream with one ordered reader
 * (src/store/read-stream.ts). On a cluster the node that leads the stream can
 * die under the read; the reader then waits for a new leader and goes on
 * after the last message it gave, so a read never fails, repeats or skips a
 * message because a node restarted.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { CLUSTER_NODES, type ClusterNodeName } from '../../src/platform/nats-cluster.js';
import { STREAMS } from '../../src/store/provision.js';
import { readStream, streamMessages } from '../../src/store/read-stream.js';
import { TestCluster } from '../support/cluster.js';

const MESSAGES = 400;

let nodes: TestCluster;
let nc: NatsConnection;

beforeAll(async () => {
  nodes = await TestCluster.start();
  nc = await nodes.connect('manager');
  const js = jetstream(nc);
  for (let i = 0; i < MESSAGES; i += 1) await js.publish(`imgr.evt.image.${i % 20}`, JSON.stringify({ n: i }));
}, 120_000);

afterAll(async () => {
  await nodes.dispose();
});

/** The node that leads the event stream now. */
async function leader(): Promise<ClusterNodeName> {
  const info = await (await jetstreamManager(nc)).streams.info(STREAMS.events);
  const node = CLUSTER_NODES.find((n) => `imgr-${n}` === info.cluster?.leader);
  if (node === undefined) throw new Error(`no leader named for ${STREAMS.events}: ${JSON.stringify(info.cluster)}`);
  return node;
}

const numbers = (ms: { data: Uint8Array }[]): number[] => ms.map((m) => (JSON.parse(new TextDecoder().decode(m.data)) as { n: number }).n);
const all = Array.from({ length: MESSAGES }, (_, i) => i);

describe('reading a stream while its leader dies', () => {
  it('reads everything once, in order, when the leader was killed just before the read', async () => {
    const killed = await leader();
    await nodes.cluster.stopNode(killed, { kill: true });
    try {
      expect(numbers(await readStream(nc, STREAMS.events))).toEqual(all);
    } finally {
      await nodes.cluster.startNode(killed);
    }
  }, 90_000);

  it('goes on after the last message it gave when the leader dies in the middle of a read', async () => {
    const got: { seq: number; data: Uint8Array }[] = [];
    let killed: ClusterNodeName | undefined;
    try {
      for await (const m of streamMessages(nc, STREAMS.events, { filter: 'imgr.evt.image.>' })) {
        got.push(m);
        if (got.length === MESSAGES / 2) {
          killed = await leader();
          await nodes.cluster.stopNode(killed, { kill: true });
        }
      }
    } finally {
      if (killed !== undefined) await nodes.cluster.startNode(killed);
    }
    expect(killed).toBeDefined();
    expect(numbers(got)).toEqual(all);
    expect(got.map((m) => m.seq)).toEqual([...got.map((m) => m.seq)].sort((a, b) => a - b));
  }, 90_000);

  it('gives at most the limit, and only what the filter matches', async () => {
    expect(await readStream(nc, STREAMS.events, { limit: 7 })).toHaveLength(7);
    expect(numbers(await readStream(nc, STREAMS.events, { filter: 'imgr.evt.image.3' }))).toEqual(all.filter((n) => n % 20 === 3));
  }, 60_000);
});
