/**
 * imgr on a three-node NATS cluster (nats-cluster/, the scale-out issue): the
 * nodes' routes refuse a route without the generated password; the store
 * has three copies of everything; two managers, a driver host and the
 * projections run on the three URLs while a load of acquire/release runs and
 * one NATS node, then one manager, is killed. Afterwards every command has
 * one answer and at most one commit, nothing answered is missing from the
 * log, the projections equal the log, `imgr audit verify` passes, and the
 * killed node catches up again.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { connect as tcp } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import type { NatsCluster, ClusterNodeName } from '../../src/platform/nats-cluster.js';
import { BUCKETS, STREAMS } from '../../src/store/provision.js';
import { TestCluster } from '../support/cluster.js';
import { ImgrClient } from '../../src/client/index.js';
import { main as cli } from '../../src/cli/imgr.js';
import { activeGeneration, viewBuckets } from '../../src/projections/projector.js';
import { readBucket } from '../../src/store/kv.js';
import { RoleProcess } from '../support/manager-process.js';
import { readLog } from '../support/log.js';
import { duplicateCommits, viewsFromLog } from '../support/replay.js';
import { eventually } from '../support/eventually.js';
import type { CommandInput, Outcome } from '../../src/messages/wire.js';

const IMAGES = 24;
const SENDERS = 8;
const config = { ackWaitMs: 3_000, watchdogIntervalMs: 1_000 };

let dir: string;
let nodes: TestCluster;
let cluster: NatsCluster;
let nc: NatsConnection;
const roles: RoleProcess[] = [];
const clients: ImgrClient[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'imgr-cluster-'));
  nodes = await TestCluster.start();
  cluster = nodes.cluster;
  nc = await nodes.connect('manager');
}, 120_000);

afterAll(async () => {
  await Promise.allSettled(clients.map((c) => c.close()));
  await Promise.allSettled(roles.map((r) => r.stop()));
  await nodes.dispose();
  rmSync(dir, { recursive: true, force: true });
});

/** What a node's route port says to a connection that does not present the route password. */
async function routeAnswer(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tcp(port, '127.0.0.1');
    let text = '';
    s.on('data', (b: Buffer) => {
      text += b.toString();
      if (text.includes('INFO ') && !text.includes('CONNECT-SENT')) {
        text += 'CONNECT-SENT';
        s.write(`CONNECT ${JSON.stringify({ verbose: false, pedantic: false, name: 'intruder', cluster: 'imgr' })}\r\nPING\r\n`);
      }
      if (/-ERR|PONG/.test(text)) s.end();
    });
    s.on('close', () => resolve(text));
    s.on('error', reject);
    setTimeout(() => s.destroy(), 5_000);
  });
}

describe('imgr on a three-node NATS cluster', () => {
  it('refuses a route that does not present the generated route password', async () => {
    const answer = await routeAnswer(cluster.layout.n2.route);
    expect(answer).toMatch(/-ERR 'Authorization Violation'/);
    expect(answer).not.toMatch(/PONG/);
  });

  it('keeps three copies of every stream and bucket', async () => {
    const jsm = await jetstreamManager(nc);
    const names = [...Object.values(STREAMS), ...Object.values(BUCKETS).map((b) => `KV_${b}`)];
    const replicas = await Promise.all(names.map(async (n) => [n, (await jsm.streams.info(n)).config.num_replicas] as const));
    expect(replicas.filter(([, r]) => r !== 3)).toEqual([]);
  });

  it('answers every command once through a killed NATS node and a killed manager, and the node catches up', async () => {
    roles.push(await RoleProcess.start('manager', cluster.urls, { IMGR_CONFIG: JSON.stringify(config) }));
    roles.push(await RoleProcess.start('manager', cluster.urls, { IMGR_CONFIG: JSON.stringify(config) }));
    roles.push(await RoleProcess.start('drivers', cluster.urls, { IMGR_DATA_DIR: dir }));
    roles.push(await RoleProcess.start('projections', cluster.urls));
    const client = await ImgrClient.connect({ servers: cluster.urls, actor: { uid: 0, gid: 0, name: 'oneadmin' } });
    clients.push(client);

    const ds = await client.nextId('datastore');
    expect((await client.send({ type: 'datastore.create', datastoreId: ds, template: { NAME: 'cluster-dummy', DS_MAD: 'dummy', TM_MAD: 'dummy', SAFE_DIRS: '/srv' } })).status).toBe('accepted');
    const images: number[] = [];
    for (let i = 0; i < IMAGES; i++) {
      const id = await client.nextId('image');
      expect((await client.send({ type: 'image.allocate', imageId: id, datastoreId: ds, template: { NAME: `c${i}`, PATH: '/srv/c.img', SIZE: '1' } })).status).toBe('accepted');
      images.push(id);
    }
    await eventually(async () => ((await Promise.all(images.map((id) => client.image(id)))).every((v) => v?.state === 'READY') ? true : undefined), 'images READY in the views');

    const sent: { commandId: string; command: CommandInput; outcome?: Outcome }[] = [];
    /** A careful service: the same command id again until an answer comes. */
    const sendSurely = async (command: CommandInput, commandId: string): Promise<void> => {
      const s: (typeof sent)[number] = { commandId, command };
      sent.push(s);
      while (s.outcome === undefined) {
        try {
          s.outcome = await client.send(command, { commandId, timeoutMs: 4_000 });
        } catch {
          await sleep(100);
        }
      }
    };
    let running = true;
    const sender = async (w: number): Promise<void> => {
      for (let n = 0; running; n++) {
        const imageId = images[(w + n * SENDERS) % images.length] ?? 0;
        const vmId = 1000 + w;
        await sendSurely({ type: 'image.acquire', imageId, vmId, mode: 'deploy' }, `cl-${w}-${n}-a`);
        await sendSurely({ type: 'image.release', imageId, vmId, failed: false }, `cl-${w}-${n}-r`);
      }
    };
    const load = Promise.all(Array.from({ length: SENDERS }, (_, w) => sender(w)));
    const answered = (): number => sent.filter((s) => s.outcome !== undefined).length;
    const progress = async (more: number, what: string): Promise<void> => {
      const target = answered() + more;
      await eventually(() => answered() >= target, what, 120_000);
    };

    await progress(100, 'load running');
    const victim: ClusterNodeName = 'n1';
    await cluster.stopNode(victim, { kill: true });
    await progress(200, 'load answered with one NATS node down');
    await roles[0]?.kill();
    await progress(200, 'load answered with one manager killed');
    await cluster.startNode(victim);
    await progress(100, 'load answered after the node returned');
    running = false;
    await load;

    // Every command answered, and the log agrees with the answers: each accepted one committed once, no refused one committed.
    expect(sent.filter((s) => s.outcome === undefined)).toEqual([]);
    let log = await readLog(nc);
    await eventually(async () => {
      log = await readLog(nc);
      const seqs = new Set(log.map((l) => l.seq));
      return sent.every((s) => s.outcome?.status !== 'accepted' || seqs.has(s.outcome.seq)) ? true : undefined;
    }, 'every accepted command in the log');
    process.stdout.write(`cluster: ${sent.length} commands answered through a killed node and a killed manager, ${log.length} commits\n`);
    expect(duplicateCommits(log)).toEqual([]);
    const committed = new Map(log.map((l) => [l.commit.commandId, l.seq]));
    const mismatched = sent.filter((s) => (s.outcome?.status === 'accepted' ? committed.get(s.commandId) !== s.outcome.seq : committed.has(s.commandId)));
    expect(mismatched.map((s) => `${s.commandId}: ${JSON.stringify(s.outcome)}`)).toEqual([]);
    // The answers are not all refusals: the load made progress through the faults.
    expect(sent.filter((s) => s.outcome?.status === 'accepted').length).toBeGreaterThan(300);
    expect(sent.filter((s) => s.outcome?.status === 'rejected').map((s) => s.outcome)).toEqual([]);

    // The projections equal a fold of the log.
    const views = viewsFromLog(log);
    const meta = await new Kvm(nc).open(BUCKETS.meta);
    const names = viewBuckets(await activeGeneration(meta));
    const projectionDiff = async (): Promise<string[]> => {
      const projected = new Map<number, string>();
      await readBucket(jetstream(nc), await new Kvm(nc).open(names.images), (key, text) => projected.set(Number(key), JSON.stringify((JSON.parse(text) as { view: unknown }).view)));
      return [...views.images.values()].filter((v) => projected.get(v.id) !== JSON.stringify(v)).map((v) => `${v.id}`);
    };
    await eventually(async () => ((await projectionDiff()).length === 0 ? true : undefined), 'projections equal the log', 30_000).catch(() => undefined);
    expect(await projectionDiff()).toEqual([]);

    // `imgr audit verify` on the node that was killed.
    let out = '';
    const code = await cli(['--nats', cluster.url(victim), 'audit', 'verify'], (s) => (out += s), (s) => (out += s), false);
    expect(out).toMatch(/^log intact: \d+ commits/);
    expect(code).toBe(0);

    // The killed node has every message of the log again.
    const jsm = await jetstreamManager(nc);
    await eventually(async () => {
      const info = await jsm.streams.info(STREAMS.events);
      const peers = [info.cluster?.leader, ...(info.cluster?.replicas ?? []).filter((r) => r.current).map((r) => r.name)];
      return peers.includes(`imgr-${victim}`) ? true : undefined;
    }, `imgr-${victim} current again`);

    // No role ended by itself (the killed manager was killed).
    expect(roles.slice(1).filter((r) => r.exitCode !== null).map((r) => `${r.role}: ${r.output.join('').slice(-2000)}`)).toEqual([]);
  }, 400_000);
});
