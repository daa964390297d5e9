import type { Commit, DriverRequest } from '../messages/wire.js';
import { subjects } from '../messages/wire.js';
import type { Effect } from '../messages/effects.js';
import type { ImageView } from '../messages/image-record.js';
import { emptyImage } from '../machines/image/record.js';
import type { ManagerConfig } from '../platform/config.js';
import type { Clock } from '../platform/clock.js';
import { LogReactor, type ReactorContext } from './log-reactor.js';
import { Publisher } from './publish.js';
import { failpoint } from '../platform/failpoint.js';
import { MonitorCoalescer } from './monitor-coalescer.js';

/** The reactor's durable on IMGR_EVT (nats.conf lets the manager role alone pull from it). */
export const DISPATCH_DURABLE = 'imgr-dispatch';

/**
 * Driver dispatch: every `driver.request` and `datastore.monitor` effect of a
 * commit becomes a message on imgr.drv.<DS_MAD>.<action>, carrying the image
 * and datastore documents the driver contract needs; a
 * `datastore.orphanSource` effect (a late success stored a file nobody
 * owns) becomes an RM of that file.
 */
export class DriverDispatcher extends LogReactor {
  readonly name = DISPATCH_DURABLE;
  protected override readonly effectsOnly = true;
  private readonly out: Publisher;
  private readonly monitors: MonitorCoalescer;

  constructor(
    ctx: ReactorContext,
    private readonly config: ManagerConfig,
    private readonly clock: Clock,
  ) {
    super(ctx);
    this.out = new Publisher(ctx.nc, 'dispatcher');
    this.monitors = new MonitorCoalescer(config.monitorCoalesceMs, (ds, requestId, seq) => this.monitor(ds, requestId, seq), (e) => ctx.log.warn({ err: e }, 'a trailing monitor was not sent; the monitor timer probes the datastore later'));
  }

  override async stop(): Promise<void> {
    this.monitors.stop();
    await super.stop();
  }

  protected async react(commit: Commit, seq: number): Promise<void> {
    const effects: Effect[] = commit.facts.flatMap((f) => f.effects);
    for (const [i, e] of effects.entries()) {
      if (e.kind === 'driver.request') {
        failpoint(`before-dispatch:${e.action}`);
        await this.request({ ...e, seq });
        failpoint(`after-dispatch:${e.action}`);
      } else if (e.kind === 'datastore.monitor') {
        await this.monitors.request(e.datastoreId, `mon-${seq}-${i}`, seq);
      } else if (e.kind === 'datastore.orphanSource') {
        await this.reclaim(e, `reclaim-${seq}-${i}`, seq);
      }
    }
  }

  /** Also used by the monitor timer. */
  async monitor(datastoreId: number, requestId: string, seq: number): Promise<void> {
    const ds = this.ctx.host.datastore(datastoreId);
    if (!ds || ds.state === 'REMOVED') return;
    // §12.5: a system datastore is probed only when shared; DS_MAD is "-" there.
    if (ds.type === 'SYSTEM_DS' && (ds.template['SHARED'] ?? 'YES') !== 'YES') return;
    await this.request({
      requestId,
      action: 'MONITOR',
      imageId: -1,
      datastoreId,
      deadline: this.clock.now() + this.config.timeouts.MONITOR * 1000,
      extra: {},
      seq,
    });
  }

  /** The image document names the orphan as its SOURCE: the driver's RM removes that file and nothing else. */
  private async reclaim(e: Extract<Effect, { kind: 'datastore.orphanSource' }>, requestId: string, seq: number): Promise<void> {
    const image = (await this.ctx.host.readImage(e.imageId)) ?? { ...emptyImage(e.imageId), state: 'REMOVED' as const };
    this.ctx.log.warn({ ...e, seq, requestId }, 'reclaiming an orphaned source');
    await this.request({ requestId, action: 'RM', imageId: e.imageId, datastoreId: e.datastoreId, deadline: this.clock.now() + this.config.timeouts.RM * 1000, extra: {}, seq }, { ...image, source: e.source });
  }

  private async request(r: Omit<DriverRequest, 'image' | 'datastore'>, imageDocument?: ImageView): Promise<void> {
    const datastore = this.ctx.host.datastore(r.datastoreId);
    if (!datastore) {
      this.ctx.log.warn({ requestId: r.requestId, datastoreId: r.datastoreId }, 'driver request for a datastore that does not exist');
      return;
    }
    const image = imageDocument ?? (r.imageId >= 0 ? ((await this.ctx.host.readImage(r.imageId)) ?? null) : null);
    const mad = datastore.type === 'SYSTEM_DS' ? datastore.tmMad : datastore.dsMad;
    const body: DriverRequest = { ...r, image, datastore };
    await this.out.raw(subjects.driverRequest(mad, r.action), body, `drv-${r.requestId}`);
  }
}
