/**
 * The life cycle through the real driver host with the dummy driver:
 * register images until each is READY in the views, clone some of them
 * until the clones are READY, delete the clones until they are gone from
 * the views. Every step runs a driver script per image (CP, CLONE, RM), so
 * the raw baseline of the same run is the dummy script run by the driver
 * host's runner as many at once as the driver host runs them.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectAs } from '../src/platform/nats.js';
import { provision } from '../src/store/provision.js';
import { publishPrincipals } from '../src/platform/principals-file.js';
import { ImgrClient } from '../src/client/index.js';
import { RoleProcess } from '../test/support/manager-process.js';
import { BENCH_PRINCIPALS, DUMMY_CP, rate, scriptRuns, startBenchServer, type Result } from './harness.js';
import { BENCH_IMPORT_DIR, DRIVER_CONCURRENCY, registrations, untilViews } from './pool.bench.js';
import { benchScale } from './scale.js';

export async function run(): Promise<Result[]> {
  const { lifecycleImages, lifecycleClones } = benchScale();
  const store = await mkdtemp(join(tmpdir(), 'imgr-bench-life-'));
  const server = await startBenchServer(store);
  const roles: RoleProcess[] = [];
  const results: Result[] = [];
  const scenario = 'life cycle through the driver host, dummy driver';
  try {
    const nc = await connectAs('manager', server.url);
    await provision(nc);
    await publishPrincipals(nc, BENCH_PRINCIPALS);
    for (const role of ['manager', 'drivers', 'projections'] as const) roles.push(await RoleProcess.start(role, server.url));
    const client = await ImgrClient.connect({ servers: server.url, principal: 'bench', actor: { uid: 0, gid: 0, name: 'bench', service: 'bench' } });
    const ds = await client.nextId('datastore');
    const created = await client.send({ type: 'datastore.create', datastoreId: ds, template: { NAME: 'life', DS_MAD: 'dummy', TM_MAD: 'shared', SAFE_DIRS: BENCH_IMPORT_DIR } });
    if (created.status !== 'accepted') throw new Error(`datastore refused: ${created.message}`);

    const registered = await registrations(client, nc, ds, scenario, lifecycleImages);
    results.push(registered);
    const clones: number[] = [];
    for (let i = 0; i < lifecycleClones; i++) clones.push(await client.nextId('image'));
    const origins = registered.ids;
    const cloned: Result = {
      scenario,
      variant: `${lifecycleClones.toLocaleString('en')} clones of them, until READY in the views`,
      ops: lifecycleClones,
      seconds: await untilViews(nc, clones, 'READY', (id) => client.send({ type: 'image.clone', imageId: id, originId: origins[id % origins.length] ?? 0, name: `c${id}`, datastoreId: ds })),
    };
    const deleted: Result = {
      scenario,
      variant: `the ${lifecycleClones.toLocaleString('en')} clones deleted, until gone from the views`,
      ops: lifecycleClones,
      seconds: await untilViews(nc, clones, 'REMOVED', (id) => client.send({ type: 'image.delete', imageId: id })),
    };
    results.push(cloned, deleted);
    await client.close();
    for (const r of roles.splice(0).reverse()) await r.stop();
    const runs: Result = { scenario, variant: `raw runs of the dummy driver's cp, ${DRIVER_CONCURRENCY} at once (baseline)`, ...(await scriptRuns(DUMMY_CP, DRIVER_CONCURRENCY, 300)) };
    results.push(runs);
    for (const [step, what] of [[registered, 'registrations'], [cloned, 'clones'], [deleted, 'deletions']] as const) {
      results.push({ scenario, variant: `${what} as a share of the raw driver runs`, ops: 1, seconds: 1, figure: `${((100 * rate(step)) / rate(runs)).toFixed(0)} %` });
    }
    await nc.close();
  } finally {
    for (const r of roles.reverse()) await r.stop();
    await server.stop();
    await rm(store, { recursive: true, force: true });
  }
  return results;
}
