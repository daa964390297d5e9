import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { NatsConnection } from '@nats-io/transport-node';
import { startNatsServer, type NatsServer } from '../../src/platform/nats-server.js';
import { connectAs, type Role } from '../../src/platform/nats.js';

export const NATS_CONF = fileURLToPath(new URL('../../nats.conf', import.meta.url));

/**
 * A real nats-server for one test file: imgr's nats.conf, a random port and a
 * temporary store. `restart` keeps the store and the port, as an operator's
 * restart would.
 */
export class TestNats {
  private connections: NatsConnection[] = [];
  private constructor(
    public server: NatsServer,
    readonly storeDir: string,
    private readonly configFile: string = NATS_CONF,
  ) {}

  /** `configFile` replaces imgr's nats.conf, for tests of the server itself rather than of imgr's roles. */
  static async start(configFile: string = NATS_CONF): Promise<TestNats> {
    const storeDir = await mkdtemp(join(tmpdir(), 'imgr-test-js-'));
    const server = await startNatsServer({ configFile, storeDir, port: 'random' });
    return new TestNats(server, storeDir, configFile);
  }

  get url(): string {
    return this.server.url;
  }

  async connect(role: Role = 'manager'): Promise<NatsConnection> {
    const nc = await connectAs(role, this.url, `test-${role}`);
    this.connections.push(nc);
    return nc;
  }

  async restart(): Promise<void> {
    const port = this.server.port;
    await this.server.stop();
    this.server = await startNatsServer({ configFile: this.configFile, storeDir: this.storeDir, port });
  }

  async dispose(): Promise<void> {
    await Promise.allSettled(this.connections.map((c) => c.close()));
    await this.server.stop();
    await rm(this.storeDir, { recursive: true, force: true });
  }
}
