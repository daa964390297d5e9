import type { AggregateKind } from '../messages/wire.js';
import type { ImageCommand } from '../messages/image-commands.js';
import type { DatastoreCommand } from '../messages/datastore.js';
import type { DatastoreInfo } from '../messages/datastore-info.js';
import type { ManagerConfig } from '../platform/config.js';
import { decisionContext, type DecisionContext, type Meta, type StorageContext } from '../machines/image/events.js';
import type { DatastoreDecisionContext } from '../machines/datastore/events.js';
import { datastoreInfo } from '../machines/datastore/decide.js';
import type { ResidentState } from './resident-state.js';

/**
 * Creations decided but not committed yet: a group of allocations into one
 * datastore is decided one after another and committed together, so each
 * decision must see the names taken and the space held by those before it.
 */
export class PendingCreations {
  private reserved = 0;
  private members = 0;
  private readonly names = new Map<string, number>();

  constructor(readonly datastoreId: number) {}

  add(image: { id: number; uid: number; name: string; reservedMb: number }): void {
    this.reserved += image.reservedMb;
    this.members += 1;
    this.names.set(`${image.uid}\u0000${image.name}`, image.id);
  }

  get empty(): boolean {
    return this.members === 0;
  }

  reservedIn(datastoreId: number): number {
    return datastoreId === this.datastoreId ? this.reserved : 0;
  }

  imagesIn(datastoreId: number): number {
    return datastoreId === this.datastoreId ? this.members : 0;
  }

  imageNamed(uid: number, name: string): number | null {
    return this.names.get(`${uid}\u0000${name}`) ?? null;
  }
}

const NOTHING_PENDING = new PendingCreations(-1);

/**
 * What a decision reads of other aggregates and of the configuration, taken
 * from the resident state so that the machines stay pure. `contextAggregates`
 * names the same aggregates, for the host's check that none of them lagged.
 */
export class DecisionContexts {
  constructor(
    private readonly state: ResidentState,
    private readonly config: ManagerConfig,
  ) {}

  image(c: ImageCommand, meta: Meta, pending: PendingCreations = NOTHING_PENDING): DecisionContext {
    const base = { defaults: this.config.defaults, timeouts: this.config.timeouts };
    const taken = (name: string) => this.state.imageNamed(meta.actor.uid, name) ?? pending.imageNamed(meta.actor.uid, name);
    const datastore = (id: number): DatastoreInfo | null => this.datastoreInfo(id, pending);
    switch (c.type) {
      case 'image.allocate':
        return decisionContext({ ...base, datastore: datastore(c.datastoreId), nameTakenBy: taken(nameIn(c.template)) });
      case 'image.clone': {
        const origin = this.state.image(c.originId) ?? null;
        return decisionContext({
          ...base,
          datastore: datastore(c.datastoreId),
          origin,
          originDatastore: origin ? datastore(origin.datastore.id) : null,
          nameTakenBy: taken(c.name),
        });
      }
      case 'image.allocateSaveAs': {
        const origin = this.state.image(c.originImageId);
        return decisionContext({ ...base, datastore: origin ? datastore(origin.datastore.id) : null, nameTakenBy: taken(c.name) });
      }
      case 'image.allocateBackup':
      case 'image.restore':
        return decisionContext({ ...base, datastore: datastore(c.datastoreId) });
      case 'image.backup':
        return decisionContext({ ...base, datastore: datastore(c.backupDatastoreId) });
      case 'driver.reply': {
        const own = this.state.image(c.imageId);
        return decisionContext({ ...base, datastore: own ? datastore(own.datastore.id) : null, storage: own ? this.storage(own.datastore.id, c.imageId, c.info) : null });
      }
      default: {
        const own = this.state.image(c.imageId);
        return decisionContext({ ...base, datastore: own ? datastore(own.datastore.id) : null });
      }
    }
  }

  datastore(c: DatastoreCommand, pending: PendingCreations = NOTHING_PENDING): DatastoreDecisionContext {
    return {
      nameTakenBy: c.type === 'datastore.create' ? this.state.datastoreNamed(nameIn(c.template)) : null,
      drivers: this.config.drivers,
      capacityCheck: this.config.capacityCheck,
      images: this.state.imagesIn(c.datastoreId) + pending.imagesIn(c.datastoreId),
      reservedMb: this.state.reservedIn(c.datastoreId) + pending.reservedIn(c.datastoreId),
      ...(c.type === 'datastore.swept' ? { sweep: this.sweep(c.datastoreId) } : {}),
    };
  }

  /** A datastore as image decisions see it; null when it does not exist (or no longer does). */
  datastoreInfo(id: number, pending: PendingCreations = NOTHING_PENDING): DatastoreInfo | null {
    const r = this.state.residentDatastore(id);
    return r && (r.agg.state === 'READY' || r.agg.state === 'DISABLED') ? datastoreInfo(r.agg.record, this.config.capacityCheck, this.state.reservedIn(id) + pending.reservedIn(id)) : null;
  }

  /**
   * What a driver's reply may claim as the image's file: the datastore's own
   * folder, and which of the paths the reply names (its tokens, a restored
   * disk's `<file>:<size>` too) other live images of the datastore hold, a
   * snapshot folder `<SOURCE>.snap` with its image. Bounded by the reply's
   * size, never by the pool.
   */
  private storage(datastoreId: number, imageId: number, info: string): StorageContext | null {
    const ds = this.state.residentDatastore(datastoreId);
    if (!ds || ds.agg.state === 'INIT' || ds.agg.state === 'REMOVED') return null;
    const claimed: Record<string, number> = {};
    for (const token of info.split(/\s+/).slice(0, 64)) {
      const path = token.replace(/:\d+$/, '');
      if (path === '') continue;
      const holder = this.state.fileHolder(datastoreId, path, imageId) ?? (path.endsWith('.snap') ? this.state.fileHolder(datastoreId, path.slice(0, -'.snap'.length), imageId) : undefined);
      if (holder !== undefined) claimed[path] = holder;
    }
    return { folder: ds.agg.record.basePath, claimed };
  }

  /** What a sweep compares the files with: a scan of the pool, once per monitor period, never per command. */
  private sweep(datastoreId: number): { named: ReadonlySet<string>; graceSec: number } {
    const named = this.state.namedFiles(datastoreId);
    const t = this.config.timeouts;
    const graceMs = this.config.orphanGraceMs ?? Math.max(t.CP, t.CLONE, t.MKFS) * 1000 + 60_000;
    return { named, graceSec: Math.ceil(graceMs / 1000) };
  }
}

/** The other aggregates an image decision reads through its context (DecisionContexts.image). */
export function contextAggregates(c: ImageCommand | DatastoreCommand): (readonly [AggregateKind, number])[] {
  switch (c.type) {
    case 'image.allocate':
    case 'image.allocateBackup':
    case 'image.restore':
      return [['datastore', c.datastoreId]];
    case 'image.clone':
      return [['image', c.originId], ['datastore', c.datastoreId]];
    case 'image.allocateSaveAs':
      return [['image', c.originImageId]];
    case 'image.backup':
      return [['datastore', c.backupDatastoreId]];
    default:
      return [];
  }
}

export const nameIn = (template: Readonly<Record<string, string>>): string =>
  Object.entries(template).find(([k]) => k.trim().toUpperCase() === 'NAME')?.[1] ?? '';
