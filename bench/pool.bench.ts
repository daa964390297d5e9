/**
 * imgr at several pool sizes (the scale curve), the system in its own
 * processes (manager, driver host, projections: `src/main.ts <role>`) and
 * the load from this one: the manager's boot over the pool's log with no
 * checkpoint and again from its checkpoint (first answered command, resident
 * memory per image), command throughput with 128 senders, one sender's
 * latency, projection lag under the throughput load, and registrations
 * through the dummy driver until READY in the views. Raw baselines of the
 * same run: appends with a per-subject expectation to as many subjects, 128
 * in flight; runs of the dummy driver's script, as many at once as the
 * driver host runs. Last, each rate at the largest pool as a share of the
 * smallest.
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
import { BENCH_PRINCIPALS, DUMMY_CP, rate, scriptRuns, startBenchServer, type Result } from './harness.js';
import { reactorsPastHistory, writeSyntheticPool } from './synthetic-log.js';
import { benchScale } from './scale.js';

export const SENDERS = 128;
const FACTS_PER_IMAGE = 10;
/** The pool's ids start here, clear of the ids the manager's counter hands out for registrations. */
const FIRST_ID = 10_000_000;

const percentile = (sorted: readonly number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN;
const rateText = (n: number): string => (n >= 1000 ? `${(n / 1000).toFixed(1)}k` : n.toFixed(0));
/** The driver host's default: OpenNebula's -t 15. */
export const DRIVER_CONCURRENCY = 15;
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
  const rates: { pool: number; commands: number; registrations: number }[] = [];
  for (const pool of benchScale().pools) {
    const r = await atPool(pool, durationMs);
    results.push(...r.results);
    rates.push({ pool, ...r.rates });
  }
  const first = rates[0];
  const last = rates.at(-1);
  if (first && last && last !== first) {
    const scenario = `scale curve, ${last.pool.toLocaleString('en')} images against ${first.pool.toLocaleString('en')}`;
    const share = (a: number, b: number): string => `${((100 * a) / b).toFixed(0)} %`;
    results.push(
      { scenario, variant: 'command rate with 128 senders', ops: 1, seconds: 1, figure: share(last.commands, first.commands), target: '≥ 80 %' },
      { scenario, variant: 'registration rate until READY in the views', ops: 1, seconds: 1, figure: share(last.registrations, first.registrations), target: '≥ 80 %' },
    );
  }
  return results;
}

/** Until the answer to a command, started from the role's start. */
async function bootedUntilAnswer(server: string, answer: () => Promise<unknown>): Promise<{ manager: RoleProcess; ms: number }> {
  const start = performance.now();
  const manager = await RoleProcess.start('manager', server);
  await answer();
  return { manager, ms: performance.now() - start };
}

async function atPool(pool: number, durationMs: number): Promise<{ results: Result[]; rates: { commands: number; registrations: number } }> {
  const store = await mkdtemp(join(tmpdir(), 'imgr-bench-pool-'));
  const server = await startBenchServer(store);
  const roles: RoleProcess[] = [];
  const results: Result[] = [];
  const scenario = `pool of ${pool.toLocaleString('en')} images`;
  try {
    const nc = await connectAs('manager', server.url);
    const provisioned = await provision(nc);
    await publishPrincipals(nc, BENCH_PRINCIPALS);
    const js = jetstream(nc);

    // The pool's history first, then the manager boots over it.
    let manager = await RoleProcess.start('manager', server.url);
    const client = await ImgrClient.connect({ servers: server.url, principal: 'bench', actor: { uid: 0, gid: 0, name: 'bench', service: 'bench' } });
    const poolDs = await client.nextId('datastore');
    accepted(await client.send({ type: 'datastore.create', datastoreId: poolDs, template: { NAME: 'pool', DS_MAD: 'dummy', TM_MAD: 'shared', SAFE_DIRS: BENCH_IMPORT_DIR } }));
    const dummyDs = await client.nextId('datastore');
    accepted(await client.send({ type: 'datastore.create', datastoreId: dummyDs, template: { NAME: 'registrations', DS_MAD: 'dummy', TM_MAD: 'shared', SAFE_DIRS: BENCH_IMPORT_DIR } }));
    const empty = await rssKb(manager.pid);
    await manager.stop();
    const facts = await writeSyntheticPool(js, { datastoreId: poolDs, firstId: FIRST_ID, images: pool, factsPerImage: FACTS_PER_IMAGE });
    await reactorsPastHistory(await jetstreamManager(nc), provisioned.meta);

    // With no checkpoint (the synthetic log was written behind its back) the manager replays the whole log;
    // stopped, it writes its checkpoint, and the next boot reads that and the log after it, as a restart does.
    const cold = await bootedUntilAnswer(server.url, async () => accepted(await client.send({ type: 'image.acquire', imageId: FIRST_ID, vmId: 1_000_000, mode: 'deploy' })));
    results.push({ scenario, variant: `manager boot with no checkpoint, replaying ${facts.toLocaleString('en')} facts, until the first answered command`, ops: facts, seconds: cold.ms / 1000, figure: `${ms(cold.ms)} (${rateText(facts / (cold.ms / 1000))} facts/s)` });
    await cold.manager.stop();
    const warm = await bootedUntilAnswer(server.url, async () => accepted(await client.send({ type: 'image.release', imageId: FIRST_ID, vmId: 1_000_000 })));
    manager = warm.manager;
    roles.push(manager);
    results.push({ scenario, variant: 'manager boot from its checkpoint, until the first answered command', ops: 1, seconds: warm.ms / 1000, figure: ms(warm.ms), ...(pool >= 100_000 ? { target: '≤ 5,000 ms' } : {}) });
    const perImage = ((await rssKb(manager.pid)) - empty) / pool;
    results.push({ scenario, variant: 'manager resident memory per idle image (after the boot from its checkpoint)', ops: 1, seconds: 1, figure: `${perImage.toFixed(2)} KB`, target: '≤ 1 KB' });

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

    const registered = await registrations(client, nc, dummyDs, scenario, benchScale().registrations);
    results.push(registered);
    await client.close();
    // The baselines run alone: imgr's processes would share the CPU with them (and read raw messages as unreadable commits).
    for (const r of roles.splice(0).reverse()) await r.stop();
    const raw = await rawAppends(js, pool, durationMs, scenario);
    results.push(raw, { scenario, variant: 'imgr commands as a share of the raw baseline', ops: 1, seconds: 1, figure: `${((100 * rate(commands)) / rate(raw)).toFixed(0)} %`, target: '≥ 35 %' });
    const runs: Result = { scenario, variant: `raw runs of the dummy driver's cp, ${DRIVER_CONCURRENCY} at once (baseline)`, ...(await scriptRuns(DUMMY_CP, DRIVER_CONCURRENCY, 300)) };
    results.push(runs, { scenario, variant: 'registrations as a share of the raw driver runs', ops: 1, seconds: 1, figure: `${((100 * rate(registered)) / rate(runs)).toFixed(0)} %` });
    await nc.close();
    return { results, rates: { commands: rate(commands), registrations: rate(registered) } };
  } finally {
    for (const r of roles.reverse()) await r.stop();
    await server.stop();
    await rm(store, { recursive: true, force: true });
  }
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

/**
 * Where the registrations' PATH is: a folder their datastores allow (the
 * driver host checks a local PATH against SAFE_DIRS before anything reads it);
 * the dummy driver reads no file, and a missing one is not inspected.
 */
export const BENCH_IMPORT_DIR = '/var/tmp';

/** Images registered through the driver host's dummy driver, 128 in flight, until each is READY in the views. */
export async function registrations(client: ImgrClient, nc: NatsConnection, datastoreId: number, scenario: string, count: number): Promise<Result & { ids: number[] }> {
  const ids: number[] = [];
  for (let i = 0; i < count; i++) ids.push(await client.nextId('image'));
  const seconds = await untilViews(nc, ids, 'READY', (id) => client.send({ type: 'image.allocate', imageId: id, datastoreId, template: { NAME: `r${id}`, PATH: `${BENCH_IMPORT_DIR}/imgr-bench-none.img`, SIZE: '1' } }));
  return { scenario, variant: `${count.toLocaleString('en')} registrations through the dummy driver, until READY in the views`, ops: count, seconds, target: '≥ 1,000/s', ids };
}

/**
 * Sends one command per id, SENDERS at a time, each accepted, and returns
 * the seconds until every id's view in the projections' bucket is in
 * `state` (REMOVED: its key deleted).
 */
export async function untilViews(nc: NatsConnection, ids: readonly number[], state: string, send: (id: number) => Promise<Outcome>): Promise<number> {
  const kv = await new Kvm(nc).open(VIEW_BUCKETS.images);
  const pending = new Set(ids);
  const watch = await kv.watch({ include: KvWatchInclude.UpdatesOnly });
  const reached = (async () => {
    for await (const e of watch) {
      const now = e.operation === 'PUT' ? e.json<{ view: { state: string } }>().view.state : 'REMOVED';
      if (now === state) pending.delete(Number(e.key));
      if (pending.size === 0) break;
    }
  })();
  const start = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: SENDERS }, async () => {
      while (next < ids.length) accepted(await send(ids[next++] ?? 0));
    }),
  );
  await reached;
  watch.stop();
  return (performance.now() - start) / 1000;
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
