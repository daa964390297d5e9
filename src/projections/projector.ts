import { redactSealed } from '../secrets/sealed.js';
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { z } from 'zod';
import type { Logger } from '../platform/logger.js';
import type { ImageView } from '../messages/image-record.js';
import type { DatastoreView } from '../messages/datastore.js';
import { DATASTORE, IMAGE, foldCommit } from '../machines/aggregates.js';
import { EventStore, type LoggedCommit, type Tail } from '../store/event-store.js';
import { provision } from '../store/provision.js';
import { applyUsage, type Usage } from './usage.js';
import { LogProgress } from '../store/progress.js';
import { safeJson } from '../platform/json.js';
import { readBucket } from '../store/kv.js';
import { ImageQuerySchema, queryImages } from './query.js';
import { DatastoreSummaries, DatastoreSummarySchema, EMPTY_SUMMARY } from './summary.js';
import { untilDone } from '../platform/retry.js';

export const VIEW_BUCKETS = { images: 'imgr_images', datastores: 'imgr_datastores', usage: 'imgr_usage' } as const;
/** imgr_meta key naming the generation of view buckets readers use (blue/green rebuilds). */
export const GENERATION_KEY = 'views.generation';

export interface ViewBucketNames {
  readonly images: string;
  readonly datastores: string;
  readonly usage: string;
}

/** Bucket names of a generation: generation 0 uses the plain names. */
export function viewBuckets(generation: number): ViewBucketNames {
  if (generation === 0) return VIEW_BUCKETS;
  return { images: `${VIEW_BUCKETS.images}_${generation}`, datastores: `${VIEW_BUCKETS.datastores}_${generation}`, usage: `${VIEW_BUCKETS.usage}_${generation}` };
}
const checkpointKey = (generation: number): string => `projection.views.${generation}`;

export async function activeGeneration(meta: KV): Promise<number> {
  const e = await meta.get(GENERATION_KEY);
  return e?.operation === 'PUT' ? Number(e.string()) : 0;
}

const StoredImage = z.object({ seq: z.number().int(), view: IMAGE.storedView });
const StoredDatastore = z.object({ seq: z.number().int(), view: DATASTORE.storedView, summary: DatastoreSummarySchema.default(EMPTY_SUMMARY) });

/**
 * The read side: image and datastore views and usage per owner and datastore,
 * kept in NATS KV (watchable by dashboards) with the log sequence each view
 * reflects, updated live from the event log, with its own checkpoint.
 */
export class Projector {
  readonly images = new Map<number, { seq: number; view: ImageView }>();
  readonly datastores = new Map<number, { seq: number; view: DatastoreView }>();
  readonly usage = new Map<string, Usage>();
  private readonly summaries = new DatastoreSummaries();
  private readonly written = new Map<number, string>();
  private readonly progress = new LogProgress();
  private tail: Tail | undefined;
  private stopping = false;
  private queries: Subscription[] = [];
  private pending: Promise<void> = Promise.resolve();

  private constructor(
    private readonly nc: NatsConnection,
    private readonly store: EventStore,
    private readonly kv: { images: KV; datastores: KV; usage: KV; meta: KV },
    private readonly log: Logger,
    readonly generation: number,
  ) {}

  /**
   * Projects into the active generation's buckets (or `generation`), from its
   * checkpoint on. `onProgress` hears (applied, target) while it catches up.
   */
  static async start(
    nc: NatsConnection,
    log: Logger,
    o: { generation?: number; serveQueries?: boolean; onProgress?: (applied: number, target: number) => void } = {},
  ): Promise<Projector> {
    const p = await provision(nc);
    const generation = o.generation ?? (await activeGeneration(p.meta));
    const names = viewBuckets(generation);
    const kvm = new Kvm(nc);
    const kv = {
      images: await kvm.create(names.images, { history: 1 }),
      datastores: await kvm.create(names.datastores, { history: 1 }),
      usage: await kvm.create(names.usage, { history: 1 }),
      meta: p.meta,
    };
    const projector = new Projector(nc, new EventStore(nc, p.jsm), kv, log, generation);
    await projector.boot(o.onProgress);
    if (o.serveQueries ?? true) projector.serve();
    return projector;
  }

  /** Removes this generation's buckets and checkpoint (after a switch to a newer one). */
  async destroy(): Promise<void> {
    await this.stop();
    for (const kv of [this.kv.images, this.kv.datastores, this.kv.usage]) await kv.destroy();
    await this.kv.meta.delete(checkpointKey(this.generation));
  }

  get appliedSeq(): number {
    return this.progress.applied;
  }

  waitFor(seq: number): Promise<void> {
    return this.progress.waitFor(seq);
  }

  async stop(): Promise<void> {
    for (const q of this.queries) q.unsubscribe();
    await this.tail?.stop();
    this.stopping = true;
    await this.pending;
    await this.kv.meta.put(checkpointKey(this.generation), String(this.progress.applied));
  }

  private async boot(onProgress?: (applied: number, target: number) => void): Promise<void> {
    await readBucket(this.kv.images, (_key, text) => {
      const s = StoredImage.parse(JSON.parse(text));
      this.images.set(s.view.id, s);
      applyUsage(this.usage, undefined, s.view);
      this.summaries.change(undefined, s.view);
    });
    await readBucket(this.kv.datastores, (_key, text) => {
      const s = StoredDatastore.parse(JSON.parse(text));
      this.datastores.set(s.view.id, { seq: s.seq, view: s.view });
    });
    const cp = await this.kv.meta.get(checkpointKey(this.generation));
    this.progress.reset(cp?.operation === 'PUT' ? Number(cp.string()) : 0);
    const target = await this.store.lastSeq();
    const ticker = onProgress ? setInterval(() => onProgress(this.progress.applied, target), 100) : undefined;
    this.tail = await this.store.tail(this.progress.applied + 1, (c) => {
      // Commits are projected one after the other, each after the previous one's writes.
      this.pending = this.pending.then(() => this.project(c)).catch((e: unknown) => this.log.error({ err: e, seq: c.seq }, 'projection failed'));
    }, undefined, { name: 'projector', log: this.log });
    await this.waitFor(target);
    if (ticker) clearInterval(ticker);
    onProgress?.(this.progress.applied, target);
  }

  /** Answers imgr.query.images and imgr.query.datastores from this projection. */
  serve(): void {
    this.queries.push(
      this.nc.subscribe('imgr.query.datastores', {
        queue: 'imgr-projections',
        callback: (err, m) => {
          if (!err) m.respond(JSON.stringify(redactSealed([...this.datastores.values()].map((x) => x.view).sort((a, b) => a.id - b.id))));
        },
      }),
    );
    this.queries.push(this.nc.subscribe('imgr.query.images', {
      queue: 'imgr-projections',
      callback: (err, m) => {
        if (err) return;
        // An empty request means "no filters"; unreadable JSON is refused by the schema.
        const q = ImageQuerySchema.safeParse(m.data.length > 0 ? (safeJson(m.string()) ?? null) : {});
        // Redact the page only: the filter scans the views, the answer carries at most one page of them.
        m.respond(JSON.stringify(q.success ? { ok: true, ...redactSealed(queryImages([...this.images.values()].map((x) => x.view), q.data)) } : { ok: false, error: q.error.issues.map((i) => `${i.path.join('.') || 'query'}: ${i.message}`).join('; ') }));
      },
    }));
  }

  private async project(c: LoggedCommit): Promise<void> {
    if ('unreadable' in c.commit) {
      this.progress.advance(c.seq);
      return;
    }
    const commit = c.commit;
    if (commit.aggregate === 'image') {
      const before = this.images.get(commit.id);
      if (!before || c.seq > before.seq) {
        const view = foldCommit(before?.view ?? null, commit);
        const touched = applyUsage(this.usage, before?.view, view);
        const summarised = this.summaries.change(before?.view, view);
        if (view.state === 'REMOVED') {
          this.images.delete(commit.id);
          await this.surely(() => this.kv.images.delete(String(commit.id)));
        } else {
          this.images.set(commit.id, { seq: c.seq, view });
          const text = JSON.stringify({ seq: c.seq, view: redactSealed(view) });
          await this.surely(() => this.kv.images.put(String(commit.id), text));
        }
        for (const k of touched) {
          const text = JSON.stringify({ ...this.usage.get(k), seq: c.seq });
          await this.surely(() => this.kv.usage.put(k, text));
        }
        // The image's datastore counts its images by state and its pending operations.
        for (const ds of summarised) await this.putDatastore(ds);
      }
    } else {
      const before = this.datastores.get(commit.id);
      if (!before || c.seq > before.seq) {
        const view = foldCommit(before?.view ?? null, commit);
        if (view.state === 'REMOVED') {
          this.datastores.delete(commit.id);
          await this.surely(() => this.kv.datastores.delete(String(commit.id)));
        } else {
          this.datastores.set(commit.id, { seq: c.seq, view });
          await this.putDatastore(commit.id);
        }
      }
    }
    this.progress.advance(c.seq);
    if (c.seq % 100 === 0) await this.surely(() => this.kv.meta.put(checkpointKey(this.generation), String(c.seq)));
  }

  /**
   * A view write that fails (nats-server restarting) is retried until it
   * succeeds: the in-memory view already has the commit, so giving up would
   * leave the bucket behind it for good. The projection waits meanwhile.
   */
  private surely(write: () => Promise<unknown>): Promise<void> {
    return untilDone(write, { stopped: () => this.stopping, firstDelayMs: 100, onFirstFailure: (e) => this.log.warn({ err: e }, 'view write failed; retrying until it succeeds') });
  }

  /** Writes a datastore's view with the summary of its images, when either changed. */
  private async putDatastore(id: number): Promise<void> {
    const d = this.datastores.get(id);
    if (!d) return;
    const summary = this.summaries.of(id);
    // Views are for readers: sealed secrets show as redacted there (W23).
    const text = JSON.stringify({ seq: d.seq, view: redactSealed(d.view), summary });
    if (this.written.get(id) === text) return;
    await this.surely(() => this.kv.datastores.put(String(id), text));
    this.written.set(id, text);
  }
}
