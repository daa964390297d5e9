import type { KV } from '@nats-io/kv';
import type { JetStreamClient } from '@nats-io/jetstream';
import type { Logger } from '../platform/logger.js';
import { safeJson } from '../platform/json.js';
import { putIfNewer, readBucket } from '../store/kv.js';
import { SnapshotSchema, type ResidentState } from './resident-state.js';
import { inParallel } from '../platform/parallel.js';

const CHECKPOINT_KEY = 'checkpoint';
/**
 * Snapshot writes a checkpoint keeps in flight. The first checkpoint after a
 * boot over a pool writes every aggregate: all at once, 100,000 requests
 * flooded the connection, commands waited behind them, the checkpoint timed
 * out, gave its keys back and flooded again at the next interval.
 */
const SNAPSHOT_WRITES_IN_FLIGHT = 256;

/**
 * The resident state's checkpoints in KV `imgr_snapshots`: every aggregate
 * changed since the last one, then the checkpoint sequence; a restart
 * replays only the log after it. Managers share the bucket, so no write
 * replaces a snapshot of a later sequence and the checkpoint only grows: then
 * every aggregate's snapshot includes its commits up to the checkpoint
 * whoever wrote it, and any manager may boot from it (the checkpoint a
 * lagging manager wrote used to hide the commits it had not seen behind
 * another's newer checkpoint).
 */
export class Checkpoints {
  /** KV revisions this host last wrote, for compare-and-set writes. */
  private readonly revisions = new Map<string, number>();

  constructor(
    private readonly js: JetStreamClient,
    private readonly kv: KV,
    private readonly state: ResidentState,
    private readonly log: Logger,
  ) {}

  /** Loads every snapshot into the state; returns the checkpoint sequence (0 when there is none). */
  async load(): Promise<number> {
    let checkpoint = 0;
    const unreadable: string[] = [];
    await readBucket(this.js, this.kv, (key, text) => {
      if (key === CHECKPOINT_KEY) checkpoint = Number(text);
      else if (!this.state.loadSnapshot(text)) unreadable.push(key);
    });
    if (unreadable.length > 0) {
      // Its commits before the checkpoint are in no snapshot: the log is replayed from its start (loaded snapshots skip what they hold).
      this.log.warn({ unreadable: unreadable.slice(0, 20), count: unreadable.length }, 'unreadable snapshots: replaying the whole log');
      return 0;
    }
    return Number.isFinite(checkpoint) ? checkpoint : 0;
  }

  /** Writes the changed aggregates and then `upTo`, the contiguous prefix of the log they include. */
  async write(upTo: number): Promise<number> {
    const keys = this.state.takeDirty();
    try {
      await inParallel(keys, SNAPSHOT_WRITES_IN_FLIGHT, async (key) => {
        const snap = this.state.snapshotOf(key);
        if (snap) await putIfNewer(this.kv, key, snap.text, snap.seq, snapshotSeq, this.revisions);
      });
      await putIfNewer(this.kv, CHECKPOINT_KEY, String(upTo), upTo, Number, this.revisions);
    } catch (e) {
      this.state.giveBack(keys);
      throw e;
    }
    return upTo;
  }
}

const snapshotSeq = (text: string): number => {
  const s = SnapshotSchema.safeParse(safeJson(text));
  return s.success ? s.data.seq : 0;
};
