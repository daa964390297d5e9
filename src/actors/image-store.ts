import { IMAGE } from '../machines/aggregates.js';
import { emptyImage } from '../machines/image/record.js';
import type { ImageAggregate } from '../machines/image/decide.js';
import { changedFields } from '../machines/shared/equal.js';
import type { ImageView } from '../messages/image-record.js';

/**
 * One image as the host keeps it. Hot: its aggregate, to decide and fold.
 * Idle: only what differs from an empty image, with its hash, as one JSON
 * string (about 350 bytes for a plain image instead of the 1–2 KB it takes
 * as objects). It is read back when the image is next used.
 */
class Slot {
  agg: ImageAggregate | null = null;
  hash = '';
  /** `{"h": hash, "d": fields that differ from an empty image}`; null while hot. */
  text: string | null = null;
  usedAt = 0;
  constructor(public seq: number) {}
}

export interface HotImage {
  readonly agg: ImageAggregate;
  readonly seq: number;
  readonly hash: string;
}

const blank = (id: number): ImageView => ({ ...emptyImage(id), state: 'INIT' });

/** Written from a view this host holds (parsed when it came in), so it is read back without parsing again. */
const pack = (view: ImageView, hash: string): string => JSON.stringify({ h: hash, d: changedFields(blank(view.id), view) });

function unpack(id: number, text: string): { view: ImageView; hash: string } {
  const { h, d } = JSON.parse(text) as { h: string; d: Partial<ImageView> };
  return { view: { ...blank(id), ...d }, hash: h };
}

/**
 * Every resident image, hot or idle: `compact` turns images unused for a
 * while into text, oldest first, a bounded number per call, so idle images
 * cost little memory whatever the pool.
 */
export class ImageStore {
  private readonly slots = new Map<number, Slot>();
  /** Hot images, least recently used first: what `compact` may pack. */
  private readonly hotSlots = new Map<number, Slot>();

  get size(): number {
    return this.slots.size;
  }

  has(id: number): boolean {
    return this.slots.has(id);
  }

  /** Whether the image is kept as objects (used within the idle time), not as text. */
  isHot(id: number): boolean {
    return this.hotSlots.has(id);
  }

  /** Sequence of the image's last commit folded in; 0 when it has none. */
  seq(id: number): number {
    return this.slots.get(id)?.seq ?? 0;
  }

  /** The image, hot from now on (a decision or a fold is about to use it). */
  hot(id: number, now: number): HotImage | undefined {
    const s = this.slots.get(id);
    if (!s) return undefined;
    if (!s.agg) {
      const idle = unpack(id, s.text ?? '');
      s.agg = IMAGE.fromView(idle.view);
      s.hash = idle.hash;
      s.text = null;
    }
    this.touch(id, s, now);
    return { agg: s.agg, seq: s.seq, hash: s.hash };
  }

  /** The image's view and hash, read without making it hot (queries, scans). */
  peek(id: number): { view: ImageView; seq: number; hash: string } | undefined {
    const s = this.slots.get(id);
    if (!s) return undefined;
    if (s.agg) return { view: IMAGE.toView(s.agg), seq: s.seq, hash: s.hash };
    return { ...unpack(id, s.text ?? ''), seq: s.seq };
  }

  /** Sets the image's state (a fold, a decision committed); it is hot. */
  set(id: number, agg: ImageAggregate, seq: number, hash: string, now: number): void {
    const s = this.slots.get(id) ?? new Slot(seq);
    s.agg = agg;
    s.seq = seq;
    s.hash = hash;
    s.text = null;
    this.slots.set(id, s);
    this.touch(id, s, now);
  }

  /**
   * A snapshot a checkpoint held (its view parsed by the caller), kept idle
   * at once: a boot loads the whole pool, and objects kept until a later
   * compaction would outlive the boot in the old generation.
   */
  load(view: ImageView, seq: number, hash: string): void {
    const s = this.slots.get(view.id) ?? new Slot(seq);
    s.agg = null;
    s.hash = '';
    s.seq = seq;
    s.text = pack(view, hash);
    this.slots.set(view.id, s);
    this.hotSlots.delete(view.id);
  }

  delete(id: number): void {
    this.slots.delete(id);
    this.hotSlots.delete(id);
  }

  ids(): IterableIterator<number> {
    return this.slots.keys();
  }

  /**
   * Turns up to `max` images unused since `idleSince` into text, least
   * recently used first; returns how many it turned.
   */
  compact(idleSince: number, max: number): number {
    let n = 0;
    for (const [id, s] of this.hotSlots) {
      if (n >= max || s.usedAt > idleSince) break;
      if (s.agg) s.text = pack(IMAGE.toView(s.agg), s.hash);
      s.agg = null;
      s.hash = '';
      this.hotSlots.delete(id);
      n += 1;
    }
    return n;
  }

  /** Hot images (not kept as text). */
  get hotCount(): number {
    return this.hotSlots.size;
  }

  private touch(id: number, s: Slot, now: number): void {
    s.usedAt = now;
    // Re-inserted: the map stays in order of last use.
    this.hotSlots.delete(id);
    this.hotSlots.set(id, s);
  }
}
