import type { AggregateKind, DriverRequest } from '../messages/wire.js';
import type { ImageCommand } from '../messages/image-commands.js';
import type { DatastoreCommand } from '../messages/datastore.js';
import type { ManagerConfig } from '../platform/config.js';
import type { DecisionContext } from '../machines/image/events.js';
import type { Clock } from '../platform/clock.js';
import { emptyImage } from '../machines/image/record.js';
import { restoredDisks } from '../machines/image/jobs.js';
import type { ResidentState } from './resident-state.js';
import { IMAGE_VALUE_FORMS, valueRefusal } from '../messages/driver-values.js';

/** Runs a STAT request somewhere a driver runs and answers with the reply. */
export type StatProbe = (req: DriverRequest) => Promise<{ result: 'SUCCESS' | 'FAILURE'; info: string; logs?: readonly string[] }>;
export const noStat: StatProbe = () => Promise.resolve({ result: 'FAILURE', info: 'no driver host can run STAT' });
/** Takes `count` fresh ids of a kind from the manager's counter. */
export type IdSource = (kind: AggregateKind, count: number) => Promise<number[]>;
export const noIds: IdSource = () => Promise.reject(new Error('this host hands out no ids'));

/** Outside knowledge a decision gets in its context: asked once per command, never inside the machines. */
export type Lookups = Pick<DecisionContext, 'statSizeMb' | 'statFailure' | 'newImageIds'>;
export const NO_LOOKUPS: Lookups = { statSizeMb: null, statFailure: null, newImageIds: [] };

export class OutsideLookups {
  constructor(
    private readonly state: ResidentState,
    private readonly config: ManagerConfig,
    private readonly stat: StatProbe,
    private readonly ids: IdSource,
    private readonly clock: Clock,
  ) {}

  async for(command: ImageCommand | DatastoreCommand, commandId: string, appliedSeq: number): Promise<Lookups> {
    return { ...(await this.sizeByStat(command, commandId, appliedSeq)), newImageIds: await this.restoredImageIds(command) };
  }

  /**
   * W12: a registration from a PATH without SIZE learns the size from the
   * datastore driver's STAT (run by a driver host) before the machine decides.
   */
  private async sizeByStat(command: ImageCommand | DatastoreCommand, commandId: string, appliedSeq: number): Promise<Pick<Lookups, 'statSizeMb' | 'statFailure'>> {
    const none = { statSizeMb: null, statFailure: null };
    if (command.type !== 'image.allocate' || this.state.residentImage(command.imageId)) return none;
    const tpl = Object.fromEntries(Object.entries(command.template).map(([k, v]) => [k.trim().toUpperCase(), v.trim()]));
    const path = tpl['PATH'] ?? '';
    if (path === '' || (tpl['SOURCE'] ?? '') !== '' || /^\d/.test(tpl['SIZE'] ?? '')) return none;
    // A value without its strict form (a PATH with shell syntax…) reaches no driver, not even a STAT: the machine refuses it.
    if (valueRefusal(IMAGE_VALUE_FORMS, tpl) !== undefined) return none;
    const ds = this.state.datastore(command.datastoreId);
    if (!ds || ds.state === 'REMOVED') return none;
    const request: DriverRequest = {
      requestId: `stat-${commandId}`,
      action: 'STAT',
      imageId: command.imageId,
      datastoreId: ds.id,
      deadline: this.clock.now() + this.config.timeouts.STAT * 1000,
      extra: {},
      image: { ...emptyImage(command.imageId), path, size: 0, template: tpl, state: 'INIT' },
      datastore: ds,
      seq: appliedSeq,
    };
    const r = await this.stat(request);
    if (r.result === 'SUCCESS') return { statSizeMb: Number(r.info), statFailure: null };
    // The driver's own log lines say why (a permission, a format): the refusal carries the last of them.
    const logs = (r.logs ?? []).slice(-5);
    return { statSizeMb: null, statFailure: logs.length > 0 ? `${r.info} (driver log: ${logs.join(' | ')})` : r.info };
  }

  /**
   * §7.13.1: the images a RESTORE reply creates get their ids here, once, and
   * the fact records them: a redelivered reply is answered from that commit,
   * so it never creates twice.
   */
  private async restoredImageIds(command: ImageCommand | DatastoreCommand): Promise<number[]> {
    if (command.type !== 'driver.reply' || command.action !== 'RESTORE' || command.result !== 'SUCCESS') return [];
    const waiting = this.state.residentImage(command.imageId)?.agg.record.jobs.some((j) => j.requestId === command.requestId) ?? false;
    const disks = restoredDisks(command.info);
    return waiting && disks !== null ? this.ids('image', disks.length) : [];
  }
}
