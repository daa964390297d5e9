import { Kvm } from '@nats-io/kv';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { z } from 'zod';
import type { Logger } from '../platform/logger.js';
import { jsonEqual } from '../machines/shared/equal.js';
import { BUCKETS } from '../store/provision.js';
import { GENERATION_KEY, Projector, viewBuckets } from './projector.js';
import { ImgrMetrics } from '../platform/metrics.js';
import type { Query, Responder } from '../platform/responder.js';
import { PrincipalRegistry } from '../intake/principal-registry.js';
import { readerOf, type Reader } from '../intake/readers.js';
import { READ_AS_HEADER } from '../messages/queries.js';

export const REBUILD_SUBJECT = 'imgr.admin.projections.rebuild';
export const REBUILD_PROGRESS = 'imgr.admin.projections.progress';

export const RebuildResultSchema = z.discriminatedUnion('ok', [
  z.object({ ok: z.literal(true), generation: z.number().int(), images: z.number().int(), datastores: z.number().int(), compared: z.number().int(), seq: z.number().int() }),
  z.object({ ok: z.literal(false), error: z.string() }),
]);
export type RebuildResult = z.infer<typeof RebuildResultSchema>;
export const RebuildProgressSchema = z.object({ applied: z.number().int(), target: z.number().int() });

/**
 * The projections role: keeps the active generation of views live, and
 * rebuilds them blue/green on request: a new generation is projected from the
 * whole log into fresh buckets, checked against the live one, then readers
 * switch to it and the old buckets go.
 */
export class ProjectionService {
  private rebuilding = false;
  private readonly sub: Subscription;

  private constructor(
    private readonly nc: NatsConnection,
    private current: Projector,
    private readonly queries: { responder: Responder; readerOf: (q: Query) => Reader | undefined },
    private readonly principals: PrincipalRegistry,
    private readonly log: Logger,
    private readonly metrics: ImgrMetrics,
  ) {
    this.live(current);
    metrics.watchFollower('projections', () => this.current.behind());
    this.sub = nc.subscribe(REBUILD_SUBJECT, {
      callback: (err, m) => {
        if (err) return;
        this.rebuild((applied, target) => this.nc.publish(REBUILD_PROGRESS, JSON.stringify({ applied, target }))).then(
          (r) => m.respond(JSON.stringify(r)),
          (e: unknown) => m.respond(JSON.stringify({ ok: false, error: e instanceof Error ? e.message : String(e) })),
        );
      },
    });
  }

  /** `responder` answers the views' queries, to each asker what it may read; the service closes it when it stops. */
  static async start(nc: NatsConnection, responder: Responder, log: Logger, metrics: ImgrMetrics = new ImgrMetrics()): Promise<ProjectionService> {
    const principals = await PrincipalRegistry.start(await new Kvm(nc).open(BUCKETS.meta), log.child({ component: 'principals' }));
    const queries = { responder, readerOf: (q: Query) => readerOf(q.asker, (name) => principals.lookup(name), q.header(READ_AS_HEADER)) };
    return new ProjectionService(nc, await Projector.start(nc, log, { queries }), queries, principals, log, metrics);
  }

  /** The projector whose views are served, and whose lag is reported. */
  private live(p: Projector): void {
    p.observeLag((seconds) => this.metrics.projectionLagSeconds.observe(seconds));
  }

  get projector(): Projector {
    return this.current;
  }

  async rebuild(onProgress: (applied: number, target: number) => void): Promise<RebuildResult> {
    if (this.rebuilding) return { ok: false, error: 'a rebuild is already running' };
    this.rebuilding = true;
    try {
      const next = this.current.generation + 1;
      await this.removeGeneration(next);
      const candidate = await Projector.start(this.nc, this.log, { generation: next, onProgress });
      const seq = Math.max(candidate.appliedSeq, this.current.appliedSeq);
      await Promise.all([candidate.waitFor(seq), this.current.waitFor(seq)]);
      const compared = this.differences(candidate);
      if (typeof compared === 'string') {
        await candidate.destroy();
        return { ok: false, error: `the rebuilt views differ from the live ones: ${compared}` };
      }
      const meta = await new Kvm(this.nc).open(BUCKETS.meta);
      await meta.put(GENERATION_KEY, String(next));
      const old = this.current;
      this.current = candidate;
      this.live(candidate);
      candidate.serve(this.queries.responder, this.queries.readerOf);
      await old.destroy();
      this.log.info({ generation: next, seq }, 'projections rebuilt and switched');
      return { ok: true, generation: next, images: candidate.images.size, datastores: candidate.datastores.size, compared, seq };
    } finally {
      this.rebuilding = false;
    }
  }

  /** Views both projections hold at the same sequence must be equal; returns how many were compared, or the first difference. */
  private differences(candidate: Projector): number | string {
    let compared = 0;
    for (const [name, a, b] of [
      ['image', this.current.images, candidate.images],
      ['datastore', this.current.datastores, candidate.datastores],
    ] as const) {
      for (const [id, live] of a) {
        const rebuilt = b.get(id);
        if (rebuilt?.seq !== live.seq) continue;
        if (!jsonEqual(rebuilt.view, live.view)) return `${name} ${id}`;
        compared += 1;
      }
    }
    return compared;
  }

  private async removeGeneration(generation: number): Promise<void> {
    const kvm = new Kvm(this.nc);
    const names = viewBuckets(generation);
    for (const name of [names.images, names.datastores, names.usage]) {
      try {
        await (await kvm.open(name)).destroy();
      } catch {
        // Not there: nothing left over from an interrupted rebuild.
      }
    }
  }

  async stop(): Promise<void> {
    this.sub.unsubscribe();
    this.queries.responder.unsubscribe();
    this.principals.stop();
    await this.current.stop();
    await this.queries.responder.close();
  }
}
