import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import { CLUSTER_NODES, NatsCluster } from '../../src/platform/nats-cluster.js';
import { connectAs, type Role } from '../../src/platform/nats.js';
import { publishPrincipals } from '../../src/platform/principals-file.js';
import { provision } from '../../src/store/provision.js';
import { TEST_PRINCIPALS, testCredentials } from './nats.js';

/**
 * The three-node cluster of nats-cluster/ for one test file, on free ports
 * with temporary stores, provisioned (three replicas) and knowing the test
 * principals. `restart` restarts the nodes in turn, one per call.
 */
export class TestCluster {
  private readonly connections: NatsConnection[] = [];
  private next = 0;

  private constructor(
    readonly cluster: NatsCluster,
    private readonly dir: string,
  ) {}

  static async start(): Promise<TestCluster> {
    const dir = mkdtempSync(join(tmpdir(), 'imgr-test-cluster-'));
    const t = new TestCluster(await NatsCluster.start({ dir, principals: TEST_PRINCIPALS, credentials: testCredentials(), ports: 'free' }), dir);
    const nc = await t.connect('manager');
    await provision(nc);
    await publishPrincipals(nc, TEST_PRINCIPALS);
    return t;
  }

  get url(): string {
    return this.cluster.urls;
  }

  async connect(role: Role = 'manager'): Promise<NatsConnection> {
    const nc = await connectAs(role, this.url, `test-${role}`);
    this.connections.push(nc);
    return nc;
  }

  /** Stops the next node (SIGKILL when `kill`) and starts it again on its store. */
  async restart(o: { kill?: boolean } = {}): Promise<void> {
    const node = CLUSTER_NODES[this.next++ % CLUSTER_NODES.length] ?? 'n1';
    await this.cluster.stopNode(node, o);
    await this.cluster.startNode(node);
  }

  async dispose(): Promise<void> {
    await Promise.allSettled(this.connections.map((c) => c.close()));
    await this.cluster.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
