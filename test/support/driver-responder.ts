import { jetstream } from '@nats-io/jetstream';
import { DriverRequestSchema, subjects, type DriverRequest } from '../../src/messages/wire.js';
import type { DriverAction } from '../../src/messages/driver.js';
import { DRIVERS_DURABLE, STREAMS } from '../../src/store/provision.js';
import { ImgrClient } from '../../src/client/index.js';
import { Publisher } from '../../src/reactors/publish.js';

export type Behaviour = 'succeed' | 'fail' | 'silent';

/**
 * Answers driver requests the way OpenNebula's dummy driver does, standing in
 * for the driver host in runtime tests. Each action's behaviour can be set.
 */
export class DriverResponder {
  readonly seen: DriverRequest[] = [];
  private readonly behaviour = new Map<DriverAction, Behaviour>();
  private stopping = false;
  private done: Promise<void> | undefined;
  private close: (() => Promise<void>) | undefined;

  private readonly out: Publisher;

  private constructor(private readonly client: ImgrClient) {
    // Replies travel as a driver host's do: on the driver hosts' own subject, with derived ids.
    this.out = new Publisher(client.nc, 'driver-host', subjects.driverReply);
  }

  /** Binds to the driver hosts' durable (the manager provisions it), as a driver host does. */
  static async start(servers: string): Promise<DriverResponder> {
    const client = await ImgrClient.connect({ servers, role: 'drivers', actor: { uid: 0, gid: 0, name: 'oneadmin', service: 'driver-host' } });
    const r = new DriverResponder(client);
    const consumer = await jetstream(client.nc).consumers.get(STREAMS.driver, DRIVERS_DURABLE);
    const messages = await consumer.consume();
    r.close = async () => {
      await messages.close();
    };
    r.done = (async () => {
      for await (const m of messages) {
        const req = DriverRequestSchema.parse(m.json());
        r.seen.push(req);
        try {
          await r.answer(req);
          m.ack();
        } catch {
          // nats-server restarting: the request comes back and is answered again (the reply's msgID makes it once).
          m.nak(250);
        }
        if (r.stopping) break;
      }
    })();
    return r;
  }

  set(action: DriverAction, b: Behaviour): void {
    this.behaviour.set(action, b);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.close?.();
    await this.done;
    await this.client.close();
  }

  private async answer(req: DriverRequest): Promise<void> {
    const b = this.behaviour.get(req.action) ?? 'succeed';
    if (b === 'silent') return;
    const ok = b === 'succeed';
    const id = `reply-${req.requestId}`;
    if (req.action === 'MONITOR') {
      const info = ok ? btoa('TOTAL_MB=1000\nFREE_MB=900\nUSED_MB=100') : 'monitor failed';
      await this.out.command({ type: 'datastore.monitored', datastoreId: req.datastoreId, result: ok ? 'SUCCESS' : 'FAILURE', info }, id, null, Date.now());
      return;
    }
    if (req.action === 'STAT' || req.action === 'RESTORE' || req.action === 'BACKUP') return;
    // A file of the datastore's own folder: a SOURCE anywhere else is refused (#27).
    const source = `${req.datastore.basePath.replace(/\/+$/, '')}/img-${req.imageId}`;
    const info: Record<string, string> = { CP: `${source} raw`, CLONE: source, MKFS: source, RM: '', SNAP_DELETE: '-', SNAP_REVERT: '-', SNAP_FLATTEN: '-', INCREMENT_FLATTEN: '10' };
    await this.out.command(
      { type: 'driver.reply', imageId: req.imageId, requestId: req.requestId, action: req.action, result: ok ? 'SUCCESS' : 'FAILURE', info: ok ? (info[req.action] ?? '') : 'dummy failure' },
      id,
      null,
      Date.now(),
    );
  }
}
