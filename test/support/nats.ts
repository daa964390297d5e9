import { mkdtempSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { NatsConnection } from '@nats-io/transport-node';
import { startNatsServer, type NatsServer } from '../../src/platform/nats-server.js';
import { connectAs, type Role } from '../../src/platform/nats.js';
import { writeServerConfig } from '../../src/platform/nats-auth.js';
import { publishPrincipals } from '../../src/platform/principals-file.js';
import type { Principals } from '../../src/platform/principals.js';
import { provision } from '../../src/store/provision.js';

export const NATS_CONF = fileURLToPath(new URL('../../nats.conf', import.meta.url));

/**
 * The principals every test server knows: `service` is a delegating
 * administrator with the VM service's grant (tests act as any user through
 * it, as a portal would); alice and bob (one group) and mallory (another)
 * act only as themselves; `portal` and
 * `scheduler` are delegates that are not administrators, granted uids
 * 2-999 in gids 100-199 (alice and bob among them), and `scheduler` is a VM
 * service.
 */
const plain = { admin: false, delegate: false, uids: [], gids: [], vmService: false };
export const TEST_PRINCIPALS: Principals = {
  service: { uid: 0, gid: 0, admin: true, delegate: true, uids: [[0, 99_999]], gids: [[0, 99_999]], vmService: true },
  oneadmin: { uid: 0, gid: 0, ...plain, admin: true },
  alice: { uid: 7, gid: 100, ...plain },
  bob: { uid: 8, gid: 100, ...plain },
  portal: { uid: 1, gid: 1, ...plain, delegate: true, uids: [[2, 999]], gids: [[100, 199]] },
  scheduler: { uid: 2, gid: 1, ...plain, delegate: true, uids: [[2, 999]], gids: [[100, 199]], vmService: true },
  mallory: { uid: 9, gid: 200, ...plain },
};

type PrincipalName = 'oneadmin' | 'alice' | 'bob' | 'portal' | 'scheduler' | 'mallory';

/** One credentials folder per test process, shared by its servers and every role it starts. */
export function testCredentials(): string {
  process.env['IMGR_CREDENTIALS_DIR'] ??= mkdtempSync(join(tmpdir(), 'imgr-test-creds-'));
  return process.env['IMGR_CREDENTIALS_DIR'];
}

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

  /**
   * imgr's nats.conf with the users generated for the roles and TEST_PRINCIPALS
   * (passwords in one credentials folder per test process). `configFile`
   * replaces it, for tests of the server itself rather than of imgr's roles;
   * `storeDir` puts the store somewhere given (a small file system).
   */
  static async start(configFile?: string, o: { storeDir?: string } = {}): Promise<TestNats> {
    const storeDir = o.storeDir ?? (await mkdtemp(join(tmpdir(), 'imgr-test-js-')));
    const creds = testCredentials();
    const conf = configFile ?? writeServerConfig(NATS_CONF, TEST_PRINCIPALS, creds, join(storeDir, 'nats.conf'));
    const server = await startNatsServer({ configFile: conf, storeDir, port: 'random', monitor: true });
    const t = new TestNats(server, storeDir, conf);
    if (configFile === undefined) {
      // The manager learns the principals from imgr_meta, as npm start publishes them.
      const nc = await t.connect('manager');
      await provision(nc);
      await publishPrincipals(nc, TEST_PRINCIPALS);
    }
    return t;
  }

  get url(): string {
    return this.server.url;
  }

  /** The server's monitoring endpoint (/connz, /subsz…): every test server has one, on loopback. */
  get monitorUrl(): string {
    if (this.server.monitorUrl === undefined) throw new Error('this test server has no monitoring endpoint');
    return this.server.monitorUrl;
  }

  async connect(role: Role | PrincipalName = 'manager'): Promise<NatsConnection> {
    const nc = await connectAs(role, this.url, `test-${role}`);
    this.connections.push(nc);
    return nc;
  }

  /** `kill` stops the server with SIGKILL, as a crash would, instead of SIGTERM; `downMs` keeps it down that long. */
  async restart(o: { kill?: boolean; downMs?: number } = {}): Promise<void> {
    const port = this.server.port;
    await (o.kill === true ? this.server.kill() : this.server.stop());
    if (o.downMs !== undefined) await new Promise((r) => setTimeout(r, o.downMs));
    this.server = await startNatsServer({ configFile: this.configFile, storeDir: this.storeDir, port, monitor: true });
  }

  async dispose(): Promise<void> {
    await Promise.allSettled(this.connections.map((c) => c.close()));
    await this.server.stop();
    await rm(this.storeDir, { recursive: true, force: true });
  }
}
