/**
 * imgr at several pool sizes, the system in its own processes (manager,
 * driver host, projections: `src/main.ts <role>`) and the load from this
 * one: the manager's boot over the pool's log (first answered command,
 * resident memory per image), command throughput with 128 senders,
 * one sender's latency, projection lag under the throughput load, and
 * registrations through the dummy driver until READY in the views. The raw
 * baseline of the same run: appends with a per-subject expectation to as
 * many subjects, 128 in flight.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstream, jetstreamManager, type JetStreamClient } from '@nats-io/jetstream';
import { Kvm, KvWatchInclude } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { connectAs } from '../src/platform/nats.js';
import { provision } from '../src/store/provision.js';
import { publishPrincipals } from '../src/platform/principals-file.js';
import { ImgrClient } from '../src/client/index.js';
import type { CommandInput, Outcome } from '../src/messages/wire.js';
import { VIEW_BUCKETS } from '../src/projections/projector.js';
import { RoleProcess } from '../test/support/manager-process.js';
import { BENCH_PRINCIPALS, rate, startBenchServer, type Result } from './harness.js';
import { reactorsPastHistory, writeSyntheticPool } from './synthetic-log.js';
import { benchScale } from './scale.js';

const SENDERS = 128;
const FACTS_PER_IMAGE = 10;
/** The pool's ids start here, clear of the ids the manager's counter hands out for registrations. */
const FIRST_ID = 10_000_000;

const percentile = (sorted: readonly number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN;
const ms = (x: number): string => `${x.toFixed(x < 10 ? 2 : 0)} ms`;

async function rssKb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN);
}

function accepted(o: Outcome): Extract<Outcome, { status: 'accepted' }> {
  if (o.status !== 'accepted') throw new Error(`bench command refused: ${o.code} ${o.message}`);
  return o;
}

export async function run(durationMs: number): Promise<Result[]> {
  const results: Result[] = [];
  for (const pool of benchScale().pools) results.push(...(await atPool(pool, durationMs)));
  return results;
}

async function atPool(pool: number, durationMs: number): Promise<Result[]> {
  const store = await mkdtemp(join(tmpdir(), 'imgr-bench-pool-'));
  const server = await startBenchServer(store);
  const roles: RoleProcess[] = [];
  const results: Result[] = [];
  const scenario = `pool of ${pool.toLocaleString('en')} images`;
  try {
    const nc = await connectAs('manager', server.url);
    await provision(nc);
    await publishPrincipals(nc, BENCH_PRINCIPALS);
    const js = jetstream(nc);

    // The pool's history first, then the manager boots over it.
    let manager = await RoleProcess.start('manager', server.url);
    const client = await ImgrClient.connect({ servers: server.url, principal: 'bench', actor: { uid: 0, gid: 0, name: 'bench', service: 'bench' } });
    const poolDs = await client.nextId('datastore');
    accepted(await client.send({ type: 'datastore.create', datastoreId: poolDs, template: { NAME: 'pool', DS_MAD: 'dummy', TM_MAD: 'shared' } }));
    const dummyDs = await client.nextId('datastore');
    accepted(await client.send({ type: 'datastore.create', datastoreId: dummyDs, template: { NAME: 'registrations', DS_MAD: 'dummy', TM_MAD: 'shared' } }));
    const empty = await rssKb(manager.pid);
    await manager.stop();
    const facts = await writeSyntheticPool(js, { datastoreId: poolDs, firstId: FIRST_ID, images: pool, factsPerImage: FACTS_PER_IMAGE });
    await reactorsPastHistory(await jetstreamManager(nc));

    const bootStart = performance.now();
    manager = await RoleProcess.start('manager', server.url);
    roles.push(manager);
    accepted(await client.send({ type: 'image.acquire', imageId: FIRST_ID, vmId: 1_000_000, mode: 'deploy' }));
    const firstAnswer = performance.now() - bootStart;
    results.push({ scenario, variant: `manager boot over ${facts.toLocaleString('en')} facts, until the first answered command`, ops: 1, seconds: firstAnswer / 1000, figure: ms(firstAnswer), ...(pool >= 100_000 ? { target: '≤ 5,000 ms' } : {}) });
    const perImage = ((await rssKb(manager.pid)) - empty) / pool;
    results.push({ scenario, variant: 'manager resident memory per idle image', ops: 1, seconds: 1, figure: `${perImage.toFixed(2)} KB`, target: '≤ 1 KB' });

    roles.push(await RoleProcess.start('drivers', server.url));
    // The projections role says it is ready once its views are current: boot and catch-up over the whole log.
    const viewsStart = performance.now();
    roles.push(await RoleProcess.start('projections', server.url));
    const viewsMs = performance.now() - viewsStart;
    results.push({ scenario, variant: `projections boot over ${facts.toLocaleString('en')} facts, until the views are current`, ops: facts, seconds: viewsMs / 1000, figure: ms(viewsMs) });

    // Acquire and release by VMs of the pool's images, spread over the pool.
    let vm = 2_000_000;
    const command = (i: number): CommandInput => {
      const imageId = FIRST_ID + (((i >> 1) * 7919) % pool);
      return i % 2 === 0 ? { type: 'image.acquire', imageId, vmId: vm + (i >> 1), mode: 'deploy' } : { type: 'image.release', imageId, vmId: vm + (i >> 1) };
    };
    const lag = await LagProbe.start(nc);
    const throughput = await senders(SENDERS, durationMs, (i) => {
      // Each sender does an acquire and its release, so pairs stay on one image.
      return (async () => {
        lag.committed(accepted(await client.send(command(2 * i))), performance.now());
        lag.committed(accepted(await client.send(command(2 * i + 1))), performance.now());
      })();
    }, 2);
    const commands: Result = { scenario, variant: `commands, ${SENDERS} senders`, ...throughput, target: '≥ 5,000/s' };
    results.push(commands);
    const lags = await lag.stop();
    results.push({ scenario, variant: 'projection lag under that load, commit to view, p50 / p99', ops: lags.length, seconds: 1, figure: `${ms(percentile(lags, 0.5))} / ${ms(percentile(lags, 0.99))}`, target: 'p99 ≤ 100 ms' });

    vm += 10_000_000;
    const latencies: number[] = [];
    const until = performance.now() + durationMs;
    for (let i = 0; performance.now() < until; i++) {
      const t = performance.now();
      accepted(await client.send(command(i)));
      latencies.push(performance.now() - t);
    }
    latencies.sort((a, b) => a - b);
    results.push({ scenario, variant: 'one sender, p50 / p99 / p99.9', ops: latencies.length, seconds: durationMs / 1000, figure: `${ms(percentile(latencies, 0.5))} / ${ms(percentile(latencies, 0.99))} / ${ms(percentile(latencies, 0.999))}`, target: 'p50 ≤ 1.5 ms, p99 ≤ 5 ms' });

    results.push(await registrations(client, nc, dummyDs, scenario));
    await client.close();
    // The baseline runs alone: imgr's processes would share the CPU with it (and read its messages as unreadable commits).
    for (const r of roles.splice(0).reverse()) await r.stop();
    const raw = await rawAppends(js, pool, durationMs, scenario);
    results.push(raw, { scenario, variant: 'imgr commands as a share of the raw baseline', ops: 1, seconds: 1, figure: `${((100 * rate(commands)) / rate(raw)).toFixed(0)} %`, target: '≥ 35 %' });
    await nc.close();
  } finally {
    for (const r of roles.reverse()) await r.stop();
    await server.stop();
    await rm(store, { recursive: true, force: true });
  }
  return results;
}

/** `n` workers calling `op` with increasing numbers for `durationMs`; each call counts `opsPerCall`. */
async function senders(n: number, durationMs: number, op: (i: number) => Promise<void>, opsPerCall: number): Promise<{ ops: number; seconds: number }> {
  let i = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (performance.now() - start < durationMs) await op(i++);
    }),
  );
  return { ops: i * opsPerCall, seconds: (performance.now() - start) / 1000 };
}

/**
 * Commit to view: the time from an accepted outcome until the image's view
 * in the projections' bucket reflects its sequence or a later one (views
 * written together carry the latest commit only).
 */
class LagProbe {
  private readonly waiting = new Map<number, { seq: number; at: number }[]>();
  private readonly lags: number[] = [];
  private constructor(private readonly stopWatch: () => void) {}

  static async start(nc: NatsConnection): Promise<LagProbe> {
    const kv = await new Kvm(nc).open(VIEW_BUCKETS.images);
    const watch = await kv.watch({ include: KvWatchInclude.UpdatesOnly });
    const probe = new LagProbe(() => watch.stop());
    void (async () => {
      for await (const e of watch) {
        if (e.operation !== 'PUT') continue;
        const { seq } = e.json<{ seq: number }>();
        probe.viewed(Number(e.key), seq, performance.now());
      }
    })();
    return probe;
  }

  committed(o: Extract<Outcome, { status: 'accepted' }>, at: number): void {
    const list = this.waiting.get(o.id) ?? [];
    list.push({ seq: o.seq, at });
    this.waiting.set(o.id, list);
  }

  private viewed(id: number, seq: number, at: number): void {
    const list = this.waiting.get(id);
    if (!list) return;
    const rest = list.filter((w) => {
      if (w.seq > seq) return true;
      this.lags.push(Math.max(0, at - w.at));
      return false;
    });
    if (rest.length > 0) this.waiting.set(id, rest);
    else this.waiting.delete(id);
  }

  async stop(): Promise<number[]> {
    // Views still due arrive within a moment of the load's end.
    for (let i = 0; i < 50 && this.waiting.size > 0; i++) await new Promise((r) => setTimeout(r, 100));
    this.stopWatch();
    return this.lags.sort((a, b) => a - b);
  }
}

/** Images registered through the driver host's dummy driver, 128 in flight, until each is READY in the views. */
async function registrations(client: ImgrClient, nc: NatsConnection, datastoreId: number, scenario: string): Promise<Result> {
  const count = benchScale().registrations;
  const kv = await new Kvm(nc).open(VIEW_BUCKETS.images);
  const ids: number[] = [];
  for (let i = 0; i < count; i++) ids.push(await client.nextId('image'));
  const pending = new Set(ids);
  const watch = await kv.watch({ include: KvWatchInclude.UpdatesOnly });
  const ready = (async () => {
    for await (const e of watch) {
      if (e.operation === 'PUT' && e.json<{ view: { state: string } }>().view.state === 'READY') pending.delete(Number(e.key));
      if (pending.size === 0) break;
    }
  })();
  const start = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: SENDERS }, async () => {
      while (next < ids.length) {
        const id = ids[next++] ?? 0;
        accepted(await client.send({ type: 'image.allocate', imageId: id, datastoreId, template: { NAME: `r${id}`, PATH: '/dev/null', SIZE: '1' } }));
      }
    }),
  );
  await ready;
  watch.stop();
  return { scenario, variant: `${count.toLocaleString('en')} registrations through the dummy driver, until READY in the views`, ops: count, seconds: (performance.now() - start) / 1000, target: '10,000 in ≤ 10 s' };
}

/** The raw baseline: appends with a per-subject expectation, one subject per image of the pool, 128 in flight (each sender its own subjects). */
async function rawAppends(js: JetStreamClient, pool: number, durationMs: number, scenario: string): Promise<Result> {
  const last = new Map<number, number>();
  let n = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: SENDERS }, async (_, w) => {
      for (let k = 0; performance.now() - start < durationMs; k++) {
        const subject = FIRST_ID + ((w + SENDERS * k) % pool);
        const ack = await js.publish(`imgr.evt.image.${subject + pool}`, '{"bench":true}', { expect: { lastSubjectSequence: last.get(subject) ?? 0 } });
        last.set(subject, ack.seq);
        n += 1;
      }
    }),
  );
  return { scenario, variant: `raw JetStream appends with expectation to ${pool.toLocaleString('en')} subjects, ${SENDERS} in flight (baseline)`, ops: n, seconds: (performance.now() - start) / 1000 };
}
