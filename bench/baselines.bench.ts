/**
 * Raw JetStream baselines, on the server imgr runs on (2.15) and, where setup
 * kept it, on Debian 12's 2.9 that imgr ran on before, in the same run:
 * appends with a per-subject expectation (one by one), asynchronous publishes
 * with a window, atomic batches (2.12+), and an ordered replay of the log.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { accessSync, constants } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeliverPolicy, jetstream, jetstreamManager, type JetStreamClient } from '@nats-io/jetstream';
import { connect, headers } from '@nats-io/transport-node';
import { OLD_NATS_SERVER, natsServerBinary } from '../src/platform/nats-server.js';
import { measure, serverVersion, startOpenBenchServer, type Result } from './harness.js';

const WINDOW = 256;
const BATCH = 100;
const REPLAY = 50_000;

function runnable(bin: string): boolean {
  try {
    accessSync(bin, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export async function run(ms: number): Promise<Result[]> {
  const results: Result[] = [];
  const servers = [natsServerBinary(), ...(runnable(OLD_NATS_SERVER) ? [OLD_NATS_SERVER] : [])];
  for (const binary of servers) results.push(...(await onServer(binary, ms)));
  return results;
}

async function onServer(binary: string, ms: number): Promise<Result[]> {
  const version = serverVersion(binary);
  const store = await mkdtemp(join(tmpdir(), 'imgr-bench-raw-'));
  const server = await startOpenBenchServer(store, binary);
  const results: Result[] = [];
  const scenario = `raw JetStream on ${version}`;
  try {
    // A plain connection to a server without users: these baselines also run on servers imgr itself refuses.
    const nc = await connect({ servers: server.url });
    const jsm = await jetstreamManager(nc);
    const atomic = version.startsWith('2.9') ? {} : { allow_atomic: true };
    await jsm.streams.add({ name: 'BENCH', subjects: ['bench.>'], ...atomic });
    const js = jetstream(nc);

    const last = new Map<number, number>();
    results.push(
      await measure(scenario, 'append with expectation, sequential', ms, async (i) => {
        const subject = i % 64;
        const ack = await js.publish(`bench.seq.${subject}`, '{"bench":true}', { expect: { lastSubjectSequence: last.get(subject) ?? 0 } });
        last.set(subject, ack.seq);
      }),
    );
    results.push(await windowed(scenario, js, ms));
    if (!version.startsWith('2.9')) results.push(await batches(scenario, js, ms));
    results.push(await replay(scenario, js));
    await nc.close();
  } finally {
    await server.stop();
    await rm(store, { recursive: true, force: true });
  }
  return results;
}

/** Publishes without awaiting each ack, at most WINDOW outstanding. */
async function windowed(scenario: string, js: JetStreamClient, ms: number): Promise<Result> {
  const start = performance.now();
  let n = 0;
  const outstanding = new Set<Promise<unknown>>();
  while (performance.now() - start < ms) {
    const p = js.publish(`bench.async.${n % 64}`, '{"bench":true}').finally(() => outstanding.delete(p));
    outstanding.add(p);
    n += 1;
    if (outstanding.size >= WINDOW) await Promise.race(outstanding);
  }
  await Promise.all(outstanding);
  return { scenario, variant: `async publish, window ${WINDOW}`, ops: n, seconds: (performance.now() - start) / 1000 };
}

/** Atomic batches of BATCH messages, each message with its own subject expectation. */
async function batches(scenario: string, js: JetStreamClient, ms: number): Promise<Result> {
  const last = new Map<string, number>();
  let round = 0;
  const start = performance.now();
  let n = 0;
  while (performance.now() - start < ms) {
    const subject = (k: number) => `bench.batch.${round}.${k}`;
    const expecting = (k: number) => {
      const h = headers();
      h.set('Nats-Expected-Last-Subject-Sequence', String(last.get(subject(k)) ?? 0));
      return h;
    };
    const b = await js.startBatch(subject(0), '{"bench":true}', { expect: { lastSubjectSequence: 0 } });
    for (let k = 1; k < BATCH - 1; k++) b.add(subject(k), '{"bench":true}', { headers: expecting(k) });
    await b.commit(subject(BATCH - 1), '{"bench":true}', { headers: expecting(BATCH - 1) });
    n += BATCH;
    round += 1;
  }
  return { scenario, variant: `atomic batch of ${BATCH}, messages`, ops: n, seconds: (performance.now() - start) / 1000 };
}

/** Reads REPLAY messages from the start with an ordered consumer, the way a rebuild does. */
async function replay(scenario: string, js: JetStreamClient): Promise<Result> {
  const pending = new Set<Promise<unknown>>();
  for (let i = 0; i < REPLAY; i++) {
    const p = js.publish(`bench.replay.${i % 1000}`, '{"bench":true,"payload":"a commit of about a hundred bytes, as imgr writes them"}').finally(() => pending.delete(p));
    pending.add(p);
    if (pending.size >= WINDOW) await Promise.race(pending);
  }
  await Promise.all(pending);
  const c = await js.consumers.get('BENCH', { filter_subjects: 'bench.replay.>', deliver_policy: DeliverPolicy.All });
  const start = performance.now();
  let n = 0;
  const messages = await c.consume();
  for await (const _ of messages) {
    n += 1;
    if (n === REPLAY) break;
  }
  return { scenario, variant: 'ordered replay, messages', ops: n, seconds: (performance.now() - start) / 1000 };
}
