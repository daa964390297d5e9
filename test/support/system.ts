import { TestNats } from './nats.js';
import { DriverResponder } from './driver-responder.js';
import { Manager } from '../../src/manager.js';
import { ProjectionService } from '../../src/projections/service.js';
import { ImgrClient } from '../../src/client/index.js';
import { silentLogger } from '../../src/platform/logger.js';
import { Responder } from '../../src/platform/responder.js';
import type { ManagerConfigInput } from '../../src/platform/config.js';
import type { Projector } from '../../src/projections/projector.js';

/**
 * A whole imgr for one test file, in this process: a real nats-server, the
 * manager, the projections and the test driver responder, plus a client.
 */
export interface TestSystem {
  readonly nats: TestNats;
  readonly manager: Manager;
  readonly projections: ProjectionService;
  readonly drivers: DriverResponder;
  readonly client: ImgrClient;
  /** The administrator (principal oneadmin). */
  readonly admin: ImgrClient;
  /** The live projector (it changes after a rebuild). */
  projector(): Projector;
  /** Resolves once the projections reflect everything the manager applied. */
  settled(): Promise<void>;
  stop(): Promise<void>;
}

export async function startSystem(o: { config?: ManagerConfigInput; actor?: { uid: number; gid: number; name: string } } = {}): Promise<TestSystem> {
  const nats = await TestNats.start();
  const manager = await Manager.start({ servers: nats.url, log: silentLogger(), tickMs: 100, ...(o.config ? { config: o.config } : {}) });
  const projections = await ProjectionService.start(await nats.connect('manager'), await Responder.connect(nats.url, 'test-projections-queries', silentLogger()), silentLogger());
  const drivers = await DriverResponder.start(nats.url);
  const client = await ImgrClient.connect({ servers: nats.url, actor: o.actor ?? { uid: 0, gid: 0, name: 'oneadmin' } });
  // Datastores are the administrator's to create, whoever the test acts as.
  const admin = await ImgrClient.connect({ servers: nats.url, principal: 'oneadmin', actor: { uid: 0, gid: 0, name: 'oneadmin' } });
  return {
    admin,
    nats,
    manager,
    projections,
    drivers,
    client,
    projector: () => projections.projector,
    settled: () => projections.projector.waitFor(manager.host.appliedSeq),
    stop: async () => {
      await drivers.stop();
      await projections.stop();
      await client.close();
      await admin.close();
      await manager.stop();
      await nats.dispose();
    },
  };
}
