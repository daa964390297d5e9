/**
 * Commands end to end (client → IMGR_CMD → intake → decide → commit →
 * outcome) against the raw JetStream baseline measured in the same run:
 * appends with a per-subject expectation, awaited one by one and 64 in flight.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstream } from '@nats-io/jetstream';
import { connectAs } from '../src/platform/nats.js';
import { silentLogger } from '../src/platform/logger.js';
import { Manager } from '../src/manager.js';
import { ImgrClient } from '../src/client/index.js';
import { BENCH_PRINCIPALS, measure, startBenchServer, type Result } from './harness.js';
import { publishPrincipals } from '../src/platform/principals-file.js';

const IN_FLIGHT = 64;

async function inFlight(scenario: string, variant: string, ms: number, op: (i: number) => Promise<unknown>): Promise<Result> {
  let i = 0;
  const start = performance.now();
  const worker = async (): Promise<void> => {
    while (performance.now() - start < ms) await op(i++);
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  return { scenario, variant, ops: i, seconds: (performance.now() - start) / 1000 };
}

export async function run(ms: number): Promise<Result[]> {
  const store = await mkdtemp(join(tmpdir(), 'imgr-bench-'));
  const server = await startBenchServer(store);
  const results: Result[] = [];
  try {
    const manager = await Manager.start({ servers: server.url, log: silentLogger() });
    await publishPrincipals(manager.nc, BENCH_PRINCIPALS);
    const client = await ImgrClient.connect({ servers: server.url, principal: 'bench', actor: { uid: 0, gid: 0, name: 'bench', service: 'bench' } });
    const ds = await client.nextId('datastore');
    await client.send({ type: 'datastore.create', datastoreId: ds, template: { NAME: 'bench', DS_MAD: 'dummy', TM_MAD: 'shared' } });
    const images: number[] = [];
    for (let k = 0; k < IN_FLIGHT; k++) {
      const id = await client.nextId('image');
      await client.send({ type: 'image.allocate', imageId: id, datastoreId: ds, template: { NAME: `b${id}`, SOURCE: `/s/${id}`, FORMAT: 'raw', SIZE: '1', PERSISTENT: 'YES', PERSISTENT_TYPE: 'SHAREABLE' } });
      images.push(id);
    }
    // Alternate acquire/release of one VM per image: every command commits a fact.
    const cmd = (i: number) => {
      const img = images[i % images.length] ?? 0;
      const vm = Math.floor(i / images.length);
      return i % 2 === 0 ? { type: 'image.acquire' as const, imageId: img, vmId: vm, mode: 'deploy' as const } : { type: 'image.release' as const, imageId: img, vmId: vm };
    };
    results.push(await measure('command round trip', 'imgr command, sequential', ms, (i) => client.send(cmd(i))));
    results.push(await inFlight('command round trip', `imgr commands, ${IN_FLIGHT} in flight`, ms, (i) => client.send(cmd(i))));

    const nc = await connectAs('manager', server.url);
    const js = jetstream(nc);
    const last = new Map<number, number>();
    const append = async (i: number): Promise<void> => {
      const subject = i % IN_FLIGHT;
      const ack = await js.publish(`imgr.evt.image.${1_000_000 + subject}`, '{"bench":true}', { expect: { lastSubjectSequence: last.get(subject) ?? 0 } });
      last.set(subject, ack.seq);
    };
    results.push(await measure('command round trip', 'raw JetStream append with expectation, sequential (baseline)', ms, append));
    // In flight: each worker owns one subject so that expectations hold.
    let k = 0;
    const start = performance.now();
    await Promise.all(
      Array.from({ length: IN_FLIGHT }, async (_, w) => {
        while (performance.now() - start < ms) {
          await append(w);
          k += 1;
        }
      }),
    );
    results.push({ scenario: 'command round trip', variant: `raw JetStream append with expectation, ${IN_FLIGHT} in flight (baseline)`, ops: k, seconds: (performance.now() - start) / 1000 });
    await nc.close();
    await client.close();
    await manager.stop();
  } finally {
    await server.stop();
    await rm(store, { recursive: true, force: true });
  }
  return results;
}
