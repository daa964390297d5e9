import { EventEmitter } from 'node:events';
import { Kvm, KvWatchInclude, type KV, type KvEntry, type KvWatchEntry } from '@nats-io/kv';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { z } from 'zod';
import type { ImageView } from '../messages/image-record.js';
import { DATASTORE, IMAGE } from '../machines/aggregates.js';
import type { DatastoreView } from '../messages/datastore.js';
import { DatastoreSummarySchema, EMPTY_SUMMARY, type DatastoreSummary } from '../projections/summary.js';
import { GENERATION_KEY, activeGeneration, viewBuckets } from '../projections/projector.js';
import { BUCKETS } from '../store/provision.js';
import { parseCommit } from '../messages/wire.js';
import type { Usage } from '../projections/usage.js';
import { isNotFound } from '../store/errors.js';
import { setTimeout as sleep } from 'node:timers/promises';

const StoredImage = z.object({ seq: z.number().int(), view: IMAGE.storedView });
const StoredDatastore = z.object({ seq: z.number().int(), view: DATASTORE.storedView, summary: DatastoreSummarySchema.default(EMPTY_SUMMARY) });
export type ProjectedDatastore = DatastoreView & DatastoreSummary;
const StoredUsage = z.object({ images: z.number(), sizeMb: z.number(), seq: z.number().int() });

export interface FeedItem {
  readonly subject: string;
  readonly at: number;
  readonly actor: string;
  readonly facts: { type: string; state: string }[];
}

/**
 * What the API reads, kept live with a read-only connection: the projected
 * views (watched in KV) and the feed of commits (core subscription to the
 * log's subjects). Emits 'image', 'datastore' and 'fact' as they change.
 */
export class LiveViews extends EventEmitter {
  readonly images = new Map<number, ImageView>();
  readonly datastores = new Map<number, ProjectedDatastore>();
  readonly usage = new Map<string, Usage>();
  private readonly stops: (() => void)[] = [];

  private constructor(
    private readonly nc: NatsConnection,
    private readonly onWaiting: (bucket: string) => void,
  ) {
    super();
  }

  private async open(bucket: string): Promise<KV> {
    for (let waited = 0; ; waited++) {
      try {
        const kv = await new Kvm(this.nc).open(bucket);
        // Opening binds without asking the server; the status asks.
        await kv.status();
        return kv;
      } catch (e) {
        if (!isNotFound(e)) throw e;
      }
      if (waited % 20 === 0) this.onWaiting(bucket);
      await sleep(250);
    }
  }

  /**
   * Follows the active generation's buckets. They may not exist yet (the api
   * started before the projections or the manager): it waits for them,
   * telling `onWaiting` which one it waits for, instead of failing.
   */
  static async start(nc: NatsConnection, onWaiting: (bucket: string) => void = () => undefined): Promise<LiveViews> {
    const v = new LiveViews(nc, onWaiting);
    const meta = await v.open(BUCKETS.meta);
    const generation = await activeGeneration(meta);
    await v.follow(generation);
    // A blue/green rebuild switches the generation: read the new buckets from then on.
    const w = await meta.watch({ key: GENERATION_KEY, include: KvWatchInclude.UpdatesOnly });
    v.stops.push(() => w.stop());
    void (async () => {
      for await (const e of w) {
        const next = Number(e.string());
        if (e.operation !== 'PUT' || next === v.generation) continue;
        for (const s of v.bucketStops.splice(0)) s();
        v.images.clear();
        v.datastores.clear();
        v.usage.clear();
        await v.follow(next);
        v.emit('reset', { generation: next });
      }
    })().catch(() => {
      // The connection closed while switching (the API is stopping): nothing left to follow.
    });
    const feed: Subscription = nc.subscribe('imgr.evt.>', {
      callback: (err, m) => {
        if (err) return;
        const c = parseCommit(m.string());
        if ('unreadable' in c) return;
        const item: FeedItem = { subject: m.subject, at: c.at, actor: `${c.actor.name}/${c.actor.service}`, facts: c.facts.map((f) => ({ type: f.type, state: f.state })) };
        v.emit('fact', item);
      },
    });
    v.stops.push(() => feed.unsubscribe());
    return v;
  }

  /** Which generation of view buckets is being read. */
  generation = 0;
  private readonly bucketStops: (() => void)[] = [];

  private async follow(generation: number): Promise<void> {
    this.generation = generation;
    const names = viewBuckets(generation);
    await this.watch(await this.open(names.images), (e) => {
      const id = Number(e.key);
      if (e.operation !== 'PUT') {
        this.images.delete(id);
        this.emit('image', { id, removed: true });
        return;
      }
      const s = StoredImage.safeParse(e.json());
      if (s.success) {
        this.images.set(id, s.data.view);
        this.emit('image', s.data.view);
      }
    });
    await this.watch(await this.open(names.datastores), (e) => {
      const id = Number(e.key);
      const s = e.operation === 'PUT' ? StoredDatastore.safeParse(e.json()) : undefined;
      if (s?.success) {
        const projected = { ...s.data.view, ...s.data.summary };
        this.datastores.set(id, projected);
        this.emit('datastore', projected);
      } else if (e.operation !== 'PUT') this.datastores.delete(id);
    });
    await this.watch(await this.open(names.usage), (e) => {
      const s = e.operation === 'PUT' ? StoredUsage.safeParse(e.json()) : undefined;
      if (s?.success) this.usage.set(e.key, { images: s.data.images, sizeMb: s.data.sizeMb });
    });
  }

  /**
   * Follows a bucket: updates are watched first, then the current values are
   * read key by key, so nothing written in between is missed (a value read
   * later is never older than an update seen before it).
   */
  private async watch(kv: KV, onEntry: (e: KvWatchEntry | KvEntry) => void): Promise<void> {
    const w = await kv.watch({ include: KvWatchInclude.UpdatesOnly });
    this.bucketStops.push(() => w.stop());
    void (async () => {
      for await (const e of w) onEntry(e);
    })();
    const keys: string[] = [];
    for await (const k of await kv.keys()) keys.push(k);
    for (const k of keys) {
      const e = await kv.get(k);
      if (e) onEntry(e);
    }
  }

  stop(): void {
    for (const s of [...this.stops, ...this.bucketStops]) s();
    this.removeAllListeners();
  }

  get connection(): NatsConnection {
    return this.nc;
  }
}
