import { redactSealed } from '../secrets/sealed.js';
import type { KV } from '@nats-io/kv';
import { InvalidArgumentError, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { z } from 'zod';
import type { Logger } from '../platform/logger.js';
import type { ImageView } from '../messages/image-record.js';
import type { DatastoreView } from '../messages/datastore.js';
import { DATASTORE, IMAGE, foldCommit } from '../machines/aggregates.js';
import { EventStore, type LoggedCommit, type Tail } from '../store/event-store.js';
import { bucket, provision } from '../store/provision.js';
import { applyUsage, type Usage } from './usage.js';
import { LogProgress } from '../store/progress.js';
import { safeJson } from '../platform/json.js';
import { readBucket } from '../store/kv.js';
import { ImageQuerySchema, queryImages } from './query.js';
import { DatastoreSummaries, DatastoreSummarySchema, EMPTY_SUMMARY } from './summary.js';
import { untilDone } from '../platform/retry.js';
import { FlushLoop } from './flush-loop.js';
import type { Query, Responder } from '../platform/responder.js';
import { QUERY_PATTERNS } from '../messages/queries.js';
import { mayRead, type Reader } from '../intake/readers.js';
import { inParallel } from '../platform/parallel.js';

/** A write the client refuses before sending (a value over the server's max_payload): no retry cures it. */
const isRefusedForGood = (e: unknown): boolean => e instanceof InvalidArgumentError;

/**
 * Under load, flushes start at most this often: an image acquired and
 * released within it is written once (128 senders: 1.3 view writes per
 * command without it). The lag it adds is well inside the 100 ms target.
 */
export const FLUSH_SPACING_MS = 20;

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
/** A checkpoint is written after a flush once this many commits passed, and whenever the projection is idle. */
const CHECKPOINT_EVERY = 1000;
/** View writes a flush keeps in flight. */
const WRITES_IN_FLIGHT = 256;

interface Dirty {
  readonly images: Set<number>;
  readonly usage: Set<string>;
  readonly datastores: Set<number>;
}

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
  /** Keys changed by commits folded but not yet written. */
  private dirty: Dirty = { images: new Set(), usage: new Set(), datastores: new Set() };
  /** The commits folded into the in-memory views (the progress mark is the buckets'). */
  private readonly folded = new LogProgress();
  /** While booting, commits are folded in memory only, and the buckets written once caught up. */
  private catchingUp = true;
  /** The sequence the stored checkpoint names. */
  private checkpointed = 0;
  /** When each live commit folded since the last flush was made, for the lag from commit to view. */
  private pendingAts: number[] = [];
  private lag: ((seconds: number) => void) | undefined;
  private readonly writer = new FlushLoop(
    () => this.flush(),
    (e) => this.log.error({ err: e }, 'view flush failed; its keys are written with the next change'),
    FLUSH_SPACING_MS,
  );

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
    /** `queries`: answer imgr.query.<asker>.images and .datastores on it, to each asker what `readerOf` lets it read (the live generation does; a rebuild's candidate not yet). */
    o: { generation?: number; queries?: { responder: Responder; readerOf: (q: Query) => Reader | undefined }; onProgress?: (applied: number, target: number) => void } = {},
  ): Promise<Projector> {
    const p = await provision(nc);
    const generation = o.generation ?? (await activeGeneration(p.meta));
    const names = viewBuckets(generation);
    const kv = {
      images: await bucket(nc, p.jsm, names.images, { history: 1, replicas: p.replicas }),
      datastores: await bucket(nc, p.jsm, names.datastores, { history: 1, replicas: p.replicas }),
      usage: await bucket(nc, p.jsm, names.usage, { history: 1, replicas: p.replicas }),
      meta: p.meta,
    };
    const projector = new Projector(nc, new EventStore(nc, p.jsm), kv, log, generation);
    await projector.boot(o.onProgress);
    if (o.queries) projector.serve(o.queries.responder, o.queries.readerOf);
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

  /** How many commits of the log are not in the buckets yet. */
  async behind(): Promise<number> {
    return Math.max(0, (await this.store.lastSeq()) - this.progress.applied);
  }

  /** Hears, for every live commit (not those of a boot or rebuild), the seconds from its making until its views were written. */
  observeLag(f: (seconds: number) => void): void {
    this.lag = f;
  }

  waitFor(seq: number): Promise<void> {
    return this.progress.waitFor(seq);
  }

  async stop(): Promise<void> {
    for (const q of this.queries) q.unsubscribe();
    await this.tail?.stop();
    // Writes still due finish now; one that fails (nats-server away) gives up, and the checkpoint stays before it.
    this.stopping = true;
    await this.writer.idle();
    await this.kv.meta.put(checkpointKey(this.generation), String(this.progress.applied));
  }

  private async boot(onProgress?: (applied: number, target: number) => void): Promise<void> {
    await readBucket(this.store.client, this.kv.images, (_key, text) => {
      const s = StoredImage.parse(JSON.parse(text));
      this.images.set(s.view.id, s);
      applyUsage(this.usage, undefined, s.view);
      this.summaries.change(undefined, s.view);
    });
    await readBucket(this.store.client, this.kv.datastores, (_key, text) => {
      const s = StoredDatastore.parse(JSON.parse(text));
      this.datastores.set(s.view.id, { seq: s.seq, view: s.view });
      this.written.set(s.view.id, text);
    });
    const cp = await this.kv.meta.get(checkpointKey(this.generation));
    const from = cp?.operation === 'PUT' ? Number(cp.string()) : 0;
    this.progress.reset(from);
    this.folded.reset(from);
    this.checkpointed = from;
    const target = await this.store.lastSeq();
    const ticker = onProgress ? setInterval(() => onProgress(this.folded.applied, target), 100) : undefined;
    this.tail = await this.store.tail(from + 1, (c) => this.project(c), undefined, { name: 'projector', log: this.log });
    // The fast path of a boot or a rebuild: the whole log folded in memory, then each key written once,
    // instead of one write per commit for keys that many commits change.
    await this.folded.waitFor(target);
    this.catchingUp = false;
    this.writer.kick();
    await this.waitFor(target);
    if (ticker) clearInterval(ticker);
    onProgress?.(this.progress.applied, target);
  }

  /**
   * Answers imgr.query.<asker>.images and .datastores from this projection:
   * to each asker the images it may read (`readerOf`: a principal those it
   * may USE, operators' roles and administrators all).
   */
  serve(queries: Responder, readerOf: (q: Query) => Reader | undefined): void {
    const readable = <V extends { uid: number; gid: number }>(q: Query, views: Iterable<V>): V[] => {
      const reader = readerOf(q);
      if (reader === undefined) return [];
      return reader.all ? [...views] : [...views].filter((v) => mayRead(reader, v));
    };
    this.queries.push(
      // Every reader sees every datastore: any principal may register into one (none needs the datastore's USE, as
      // with OpenNebula's default datastores, USE for others), and their secrets are sealed.
      queries.serve(QUERY_PATTERNS.datastores, 'imgr-projections', (m) =>
        JSON.stringify(readerOf(m) === undefined ? [] : redactSealed([...this.datastores.values()].map((x) => x.view).sort((a, b) => a.id - b.id))),
      ),
      queries.serve(QUERY_PATTERNS.images, 'imgr-projections', (m) => {
        // An empty request means "no filters"; unreadable JSON is refused by the schema.
        const q = ImageQuerySchema.safeParse(m.data.length > 0 ? (safeJson(m.text()) ?? null) : {});
        if (!q.success) return JSON.stringify({ ok: false, error: q.error.issues.map((i) => `${i.path.join('.') || 'query'}: ${i.message}`).join('; ') });
        // Redact the page only: the filter scans the views, the answer carries at most one page of them.
        return JSON.stringify({ ok: true, ...redactSealed(queryImages(readable(m, [...this.images.values()].map((x) => x.view)), q.data)) });
      }),
    );
  }

  /**
   * Folds one commit into the in-memory views (synchronously, in log order)
   * and marks what it changed; the writer puts the changed keys to KV in the
   * background. A key changed by many commits before the next flush is
   * written once, with its latest value: the buckets keep one value per key.
   */
  private project(c: LoggedCommit): void {
    if (!('unreadable' in c.commit)) {
      const commit = c.commit;
      if (!this.catchingUp && this.lag) this.pendingAts.push(commit.at);
      if (commit.aggregate === 'image') {
        const before = this.images.get(commit.id);
        if (!before || c.seq > before.seq) {
          const view = foldCommit(before?.view ?? null, commit);
          for (const k of applyUsage(this.usage, before?.view, view)) this.dirty.usage.add(k);
          // The image's datastore counts its images by state and its pending operations.
          for (const ds of this.summaries.change(before?.view, view)) this.dirty.datastores.add(ds);
          if (view.state === 'REMOVED') this.images.delete(commit.id);
          else this.images.set(commit.id, { seq: c.seq, view });
          this.dirty.images.add(commit.id);
        }
      } else {
        const before = this.datastores.get(commit.id);
        if (!before || c.seq > before.seq) {
          const view = foldCommit(before?.view ?? null, commit);
          if (view.state === 'REMOVED') this.datastores.delete(commit.id);
          else this.datastores.set(commit.id, { seq: c.seq, view });
          this.dirty.datastores.add(commit.id);
        }
      }
    }
    this.folded.advance(c.seq);
    if (!this.catchingUp) this.writer.kick();
  }

  /**
   * One flush: every key marked since the last one, written concurrently
   * (at most WRITES_IN_FLIGHT at once; never two writes of one key at once,
   * since a key marked again during a flush waits for the next), then the
   * checkpoint, then the progress mark: `waitFor(seq)` resolves once the
   * buckets hold every view up to `seq`.
   */
  private async flush(): Promise<void> {
    const upTo = this.folded.applied;
    const ats = this.pendingAts;
    this.pendingAts = [];
    const { images, usage, datastores } = this.dirty;
    this.dirty = { images: new Set(), usage: new Set(), datastores: new Set() };
    const writes: (() => Promise<unknown>)[] = [];
    for (const id of images) {
      const e = this.images.get(id);
      const key = String(id);
      writes.push(e ? () => this.kv.images.put(key, JSON.stringify({ seq: e.seq, view: redactSealed(e.view) })) : () => this.kv.images.delete(key));
    }
    for (const k of usage) {
      const text = JSON.stringify({ ...this.usage.get(k), seq: upTo });
      writes.push(() => this.kv.usage.put(k, text));
    }
    for (const id of datastores) {
      const write = this.datastoreWrite(id);
      if (write) writes.push(write);
    }
    await inParallel(writes, WRITES_IN_FLIGHT, (w) => this.surely(w));
    if (upTo - this.checkpointed >= CHECKPOINT_EVERY || (upTo > this.checkpointed && this.dirtyEmpty())) {
      await this.surely(() => this.kv.meta.put(checkpointKey(this.generation), String(upTo)));
      this.checkpointed = upTo;
    }
    this.progress.advance(upTo);
    const now = Date.now();
    for (const at of ats) this.lag?.(Math.max(0, now - at) / 1000);
  }

  private dirtyEmpty(): boolean {
    return this.dirty.images.size === 0 && this.dirty.usage.size === 0 && this.dirty.datastores.size === 0;
  }

  /**
   * A view write that fails (nats-server restarting) is retried until it
   * succeeds: the in-memory view already has the commit, so giving up would
   * leave the bucket behind it for good. The projection waits meanwhile.
   */
  private async surely(write: () => Promise<unknown>): Promise<void> {
    try {
      await untilDone(write, { stopped: () => this.stopping, firstDelayMs: 100, permanent: isRefusedForGood, onFirstFailure: (e) => this.log.warn({ err: e }, 'view write failed; retrying until it succeeds') });
    } catch (e) {
      // A view too large for a NATS message is refused every time: retried, it would stop every other view behind it.
      if (!isRefusedForGood(e)) throw e;
      this.log.error({ err: e }, 'view write refused for good (too large for a message); the other views go on without it');
    }
  }

  /** The write of a datastore's view with the summary of its images, when either changed since the last one. */
  private datastoreWrite(id: number): (() => Promise<unknown>) | undefined {
    const d = this.datastores.get(id);
    const key = String(id);
    if (!d) {
      // Only a datastore that was written has a key to delete (an image may name one the log never created).
      if (!this.written.delete(id)) return undefined;
      return () => this.kv.datastores.delete(key);
    }
    // Views are for readers: sealed secrets show as redacted there (W23).
    const text = JSON.stringify({ seq: d.seq, view: redactSealed(d.view), summary: this.summaries.of(id) });
    if (this.written.get(id) === text) return undefined;
    this.written.set(id, text);
    return () => this.kv.datastores.put(key, text);
  }
}
