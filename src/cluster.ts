/**
 * `scripts/cluster.sh start|stop|status` (`npm run cluster -- start`): the
 * three-node NATS cluster of nats-cluster/ on this machine, its stores under
 * the data directory, running in the background until stopped. imgr runs
 * against it unchanged: `NATS_URL=<the three URLs> npm start`.
 */
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { NatsCluster, runningNodes, stopDetached } from './platform/nats-cluster.js';
import { loadPrincipals } from './platform/principals-file.js';
import { connectAs, credentialsDir } from './platform/nats.js';
import { provision } from './store/provision.js';
import { mkdirSync } from 'node:fs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const EnvSchema = z.object({ IMGR_DATA_DIR: z.string().default(resolve(ROOT, '.data')) });

async function main(command: string | undefined): Promise<void> {
  const data = resolve(EnvSchema.parse(process.env).IMGR_DATA_DIR);
  const dir = resolve(data, 'cluster');
  process.env['IMGR_CREDENTIALS_DIR'] ??= resolve(data, 'credentials');
  switch (command) {
    case 'start': {
      const running = runningNodes(dir);
      if (running.size > 0) throw new Error(`the cluster is already running (${[...running.keys()].join(', ')}); stop it first: scripts/cluster.sh stop`);
      mkdirSync(data, { recursive: true });
      const cluster = await NatsCluster.start({ dir, principals: loadPrincipals(resolve(data, 'principals.json')), credentials: credentialsDir(), detached: true });
      // Provisioning waits for the JetStream leader and makes the streams and buckets with three copies.
      const nc = await connectAs('manager', cluster.urls, 'imgr-cluster');
      const p = await provision(nc);
      await nc.close();
      process.stdout.write(
        [
          `NATS cluster running: 3 nodes, streams and buckets with ${p.replicas} replicas (stores, logs and pids in ${dir})`,
          `  NATS_URL=${cluster.urls}`,
          `  run imgr on it:  NATS_URL=${cluster.urls} npm start`,
          '  stop it:         scripts/cluster.sh stop',
          '',
        ].join('\n'),
      );
      return;
    }
    case 'stop': {
      const stopped = await stopDetached(dir);
      process.stdout.write(stopped.length > 0 ? `stopped ${stopped.join(', ')}\n` : 'no cluster node was running\n');
      return;
    }
    case 'status': {
      const running = runningNodes(dir);
      process.stdout.write(running.size > 0 ? `${[...running].map(([n, pid]) => `${n}: running (pid ${pid})`).join('\n')}\n` : 'no cluster node is running\n');
      return;
    }
    default:
      throw new Error('usage: scripts/cluster.sh start|stop|status');
  }
}

main(process.argv[2]).catch((e: unknown) => {
  process.stderr.write(`imgr cluster: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
