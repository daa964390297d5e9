import type { KV } from '@nats-io/kv';
import type { JetStreamClient } from '@nats-io/jetstream';
import type { Logger } from '../platform/logger.js';
import { safeJson } from '../platform/json.js';
import { putIfNewer, readBucket } from '../store/kv.js';
import { SnapshotSchema, type ResidentState } from './resident-state.js';
import { inParallel } from '../platform/parallel.js';

/** The store's checkpoint: every partition's at once, written while a manager knows every image. */
const CHECKPOINT_KEY = 'checkpoint';
const PARTITION_PREFIX = 'checkpoint.p';
/** A partition's checkpoint: the snapshots of its images include their commits up to it. */
export const partitionCheckpointKey = (partition: number): string => `${PARTITION_PREFIX}${partition}`;
/**
 * Snapshot writes a checkpoint keeps in flight. The first checkpoint after a
 * boot over a pool writes every aggregate: all at once, 100,000 requests
 * flooded the connection, commands waited behind them, the checkpoint timed
 * out, gave its keys back and flooded again at the next interval.
 */
const SNAPSHOT_WRITES_IN_FLIGHT = 256;

/**
 * The resident state's checkpoints in KV `imgr_snapshots`: every aggregate
 * changed since the last one, then a checkpoint sequence per command
 * partition; a restart replays only the log after the lowest. Managers share
 * the bucket, so no write replaces a snapshot of a later sequence and a
 * checkpoint only grows: then every aggregate's snapshot includes its
 * commits up to its partition's checkpoint whoever wrote it, and any manager
 * may boot from them (the checkpoint a lagging manager wrote used to hide
 * the commits it had not seen behind another's newer checkpoint).
 *
 * A manager writes a partition's checkpoint only while it knows none of
 * that partition's images as foreign (ResidentState): a foreign image's
 * commits move its indexes, not a snapshot, so a checkpoint past them would
 * hide them from the next boot. Datastores are resident in every manager.
 */
export class Checkpoints {
  /** KV revisions this host last wrote, for compare-and-set writes. */
  private readonly revisions = new Map<string, number>();

  constructor(
    private readonly js: JetStreamClient,
    private readonly kv: KV,
    private readonly state: ResidentState,
    private readonly log: Logger,
    /** The store's partition count. */
    private readonly partitions: number,
  ) {}

  /**
   * Loads every snapshot into the state; returns where the log is to be read
   * after: the lowest partition checkpoint, one never written counting as
   * the store's single checkpoint (an earlier version's), 0 when there is none.
   */
  async load(): Promise<number> {
    let single = 0;
    const byPartition = new Map<number, number>();
    const unreadable: string[] = [];
    await readBucket(this.js, this.kv, (key, text) => {
      if (key === CHECKPOINT_KEY) single = Number(text);
      else if (key.startsWith(PARTITION_PREFIX)) byPartition.set(Number(key.slice(PARTITION_PREFIX.length)), Number(text));
      else if (!this.state.loadSnapshot(text)) unreadable.push(key);
    });
    if (unreadable.length > 0) {
      // Its commits before the checkpoint are in no snapshot: the log is replayed from its start (loaded snapshots skip what they hold).
      this.log.warn({ unreadable: unreadable.slice(0, 20), count: unreadable.length }, 'unreadable snapshots: replaying the whole log');
      return 0;
    }
    let from = Number.POSITIVE_INFINITY;
    for (let p = 0; p < this.partitions; p++) from = Math.min(from, byPartition.get(p) ?? single);
    return Number.isFinite(from) ? from : 0;
  }

  /**
   * Writes the changed aggregates and then `upTo`, the contiguous prefix of
   * the log they include, as the checkpoint of every partition none of whose
   * images was foreign here meanwhile (one released or adopted while the
   * snapshots were written counts as foreign). Returns the partitions written.
   */
  async write(upTo: number): Promise<number[]> {
    const keys = this.state.takeDirty();
    const foreign = this.state.foreignPartitions();
    try {
      await inParallel(keys, SNAPSHOT_WRITES_IN_FLIGHT, async (key) => {
        const snap = this.state.snapshotOf(key);
        if (snap) await putIfNewer(this.kv, key, snap.text, snap.seq, snapshotSeq, this.revisions);
      });
      for (const p of this.state.foreignPartitions()) foreign.add(p);
      const written = Array.from({ length: this.partitions }, (_, p) => p).filter((p) => !foreign.has(p));
      for (const p of written) await putIfNewer(this.kv, partitionCheckpointKey(p), String(upTo), upTo, Number, this.revisions);
      // Still written while it is true of every partition: an earlier version boots from it.
      if (written.length === this.partitions) await putIfNewer(this.kv, CHECKPOINT_KEY, String(upTo), upTo, Number, this.revisions);
      return written;
    } catch (e) {
      this.state.giveBack(keys);
      throw e;
    }
  }
}

const snapshotSeq = (text: string): number => {
  const s = SnapshotSchema.safeParse(safeJson(text));
  return s.success ? s.data.seq : 0;
};
