/**
 * Projection rebuild: a fresh generation of the views projected from a log
 * of a whole pool, against the raw baseline of the same run: an ordered
 * replay of that same log with one JSON.parse per message.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeliverPolicy, jetstream } from '@nats-io/jetstream';
import { connectAs } from '../src/platform/nats.js';
import { silentLogger } from '../src/platform/logger.js';
import { provision, STREAMS } from '../src/store/provision.js';
import { subjects } from '../src/messages/wire.js';
import { Projector } from '../src/projections/projector.js';
import { rate, startBenchServer, type Result } from './harness.js';
import { writeSyntheticPool } from './synthetic-log.js';
import { benchScale } from './scale.js';

export async function run(): Promise<Result[]> {
  const { rebuildImages, factsPerImage } = benchScale();
  const store = await mkdtemp(join(tmpdir(), 'imgr-bench-rebuild-'));
  const server = await startBenchServer(store);
  const results: Result[] = [];
  try {
    const nc = await connectAs('manager', server.url);
    await provision(nc);
    const js = jetstream(nc);
    const facts = await writeSyntheticPool(js, { datastoreId: 100, firstId: 1, images: rebuildImages, factsPerImage });
    const scenario = `projection rebuild, ${facts.toLocaleString('en')} facts of ${rebuildImages.toLocaleString('en')} images`;

    const c = await js.consumers.get(STREAMS.events, { filter_subjects: subjects.events, deliver_policy: DeliverPolicy.All });
    let n = 0;
    let start = performance.now();
    for await (const m of await c.consume({ max_messages: 1000 })) {
      JSON.parse(m.string());
      if (++n === facts) break;
    }
    results.push({ scenario, variant: 'raw ordered replay with JSON.parse (baseline)', ops: n, seconds: (performance.now() - start) / 1000 });

    start = performance.now();
    const p = await Projector.start(nc, silentLogger(), { generation: 1 });
    const rebuilt: Result = { scenario, variant: 'imgr rebuild into a new generation, facts', ops: p.appliedSeq, seconds: (performance.now() - start) / 1000, target: '≥ 80,000/s' };
    const replay = results[0];
    results.push(rebuilt);
    if (replay) results.push({ scenario, variant: 'imgr rebuild as a share of the raw replay', ops: 1, seconds: 1, figure: `${((100 * rate(rebuilt)) / rate(replay)).toFixed(0)} %`, target: '≥ 60 %' });
    await p.destroy();
    await nc.close();
  } finally {
    await server.stop();
    await rm(store, { recursive: true, force: true });
  }
  return results;
}
