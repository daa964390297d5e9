import { z } from 'zod';
import { shapeOf, type AggregateKind, type Commit } from '../messages/wire.js';
import type { ImageView } from '../messages/image-record.js';
import type { DatastoreView } from '../messages/datastore.js';
import { DATASTORE, IMAGE, foldCommit, foldImageCommit } from '../machines/aggregates.js';
import type { ImageAggregate } from '../machines/image/decide.js';
import { safeJson } from '../platform/json.js';
import { RecentCommits, type ResidentDatastore, type ResidentImage } from './resident.js';
import { ImageStore } from './image-store.js';
import { foldForeign, foreignOf, filesOf, type ForeignImage } from './foreign-images.js';

/** What a command committed, for answering it again without deciding. */
export interface Committed {
  readonly kind: AggregateKind;
  readonly id: number;
  readonly seq: number;
  readonly fact: string;
  readonly state: string;
  /** Who sent the command (`actorKey`): an id seen again from someone else is a reuse, not a repeat. */
  readonly by: string;
}

/** The part of an actor a command id belongs to, as the fingerprint counts it. */
export const actorKey = (a: { uid: number; gid: number; name: string }): string => `${a.uid}/${a.gid}/${a.name}`;

const snapshotBase = { seq: z.number().int(), hash: z.string(), shape: z.string().optional() };
export const SnapshotSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('image'), ...snapshotBase, view: IMAGE.storedView }),
  z.object({ kind: z.literal('datastore'), ...snapshotBase, view: DATASTORE.storedView }),
]);
export type Snapshot = z.infer<typeof SnapshotSchema>;

/**
 * The fingerprint of the snapshot schema this code writes, kept in every
 * snapshot: one in this code's own shape is loaded as written (a boot over
 * 100,000 images spent 1.6 s in the schema), any other through the schema.
 */
export const SNAPSHOT_SHAPE = shapeOf(SnapshotSchema);

/** The snapshot in a stored text: as written when its shape is this code's, else through the schema. */
function readSnapshot(text: string): Snapshot | undefined {
  const raw = safeJson(text);
  if (typeof raw === 'object' && raw !== null && 'shape' in raw && raw.shape === SNAPSHOT_SHAPE && looksLikeSnapshot(raw)) return raw;
  const s = SnapshotSchema.safeParse(raw);
  return s.success ? s.data : undefined;
}

/** An image's stored snapshot as the image to decide on; undefined when it does not read or is not an image's. */
export function imageOfSnapshot(text: string): ResidentImage | undefined {
  const s = readSnapshot(text);
  return s?.kind === 'image' ? { agg: IMAGE.fromView(s.view), seq: s.seq, hash: s.hash } : undefined;
}

function looksLikeSnapshot(raw: object): raw is Snapshot {
  const s = raw as Record<string, unknown>;
  const view = s['view'];
  return (s['kind'] === 'image' || s['kind'] === 'datastore') && Number.isSafeInteger(s['seq']) && typeof s['hash'] === 'string' && typeof view === 'object' && view !== null && Number.isSafeInteger((view as Record<string, unknown>)['id']);
}

/** What the host's indexes read of an image: its datastore counts, its name, its nearest deadline. */
interface Indexed {
  readonly id: number;
  /** Neither INIT nor REMOVED: it counts in its datastore and holds its name. */
  readonly live: boolean;
  readonly datastoreId: number;
  readonly reservedMb: number;
  readonly uid: number;
  readonly name: string;
  /** The earliest deadline of its pending operation and its jobs, null when nothing runs. */
  readonly deadline: number | null;
  /** The files it holds in its datastore: its SOURCE and its increments' (a driver's reply may claim none of them for another image). */
  readonly files: readonly string[];
}

function indexedOf(agg: ImageAggregate): Indexed {
  const r = agg.record;
  let deadline = r.pending ? r.pending.deadline : null;
  for (const j of r.jobs) if (deadline === null || j.deadline < deadline) deadline = j.deadline;
  return { id: r.id, live: agg.state !== 'INIT' && agg.state !== 'REMOVED', datastoreId: r.datastore.id, reservedMb: r.reservedMb, uid: r.uid, name: r.name, deadline, files: heldFiles(r.source, r.increments.map((i) => i.source)) };
}

const indexedOfForeign = (id: number, f: ForeignImage): Indexed => ({ id, live: f.live, datastoreId: f.datastoreId, reservedMb: f.reservedMb, uid: f.uid, name: f.name, deadline: null, files: heldFiles(f.source, f.increments) });

const heldFiles = (source: string, increments: readonly string[]): string[] => [source, ...increments].filter((p) => p !== '');

const sameIndexed = (a: Indexed, b: Indexed): boolean =>
  a.live === b.live && a.datastoreId === b.datastoreId && a.reservedMb === b.reservedMb && a.uid === b.uid && a.name === b.name && a.deadline === b.deadline &&
  a.files.length === b.files.length && a.files.every((f, i) => f === b.files[i]);

/**
 * Every aggregate, the sequence and hash of its last commit, the name
 * indexes decisions read, the datastores' counts of their images, the
 * deadlines the watchdog enforces, and the commands recently committed.
 * Images are kept hot while used and as compact text when idle
 * (ImageStore); the indexes never need an idle image read back. It only
 * folds commits; what reaches it and when is the host's.
 */
export class ResidentState {
  private readonly images = new ImageStore();
  private readonly datastores = new Map<number, ResidentDatastore>();
  private readonly imageNames = new Map<string, number>();
  private readonly datastoreNames = new Map<string, number>();
  private readonly recent = new RecentCommits<Committed>(100_000);
  /** Datastore id → how many of its images live: membership counted from the images' own facts. */
  private readonly members = new Map<number, number>();
  /** Datastore id → image id → the space that image's creation holds (W38), from the images' own records. */
  private readonly reserved = new Map<number, Map<number, number>>();
  /** `<datastore id> <file>` → the live images that hold that file (SOURCE, increments): what a driver's reply may not claim. */
  private readonly fileHolders = new Map<string, number[]>();
  /** Image id → the earliest deadline of what runs on it: the watchdog reads these, not the pool. */
  private readonly deadlines = new Map<number, number>();
  /** Keys (`image.<id>`, `datastore.<id>`) changed since the last checkpoint took them. */
  private readonly dirty = new Set<string>();
  /** Images of partitions another manager holds: only what the indexes need (ForeignImage). */
  private readonly foreign = new Map<number, ForeignImage>();
  /** Partition → how many of its images are foreign here: a checkpoint of that partition waits until none is. */
  private readonly foreignIn = new Map<number, number>();
  /** Images being taken over: their commits wait here until the image is loaded (`adopt`). */
  private readonly adopting = new Map<number, { seq: number; commit: Extract<Commit, { aggregate: 'image' }> | null; hash: string }[]>();
  /** Whether a new image is this manager's to keep (its partition is held here). */
  private holding: (imageId: number) => boolean = () => true;

  constructor(
    private readonly now: () => number = Date.now,
    /** The command partition of an image (partitionOf); one partition when the store has none. */
    private readonly partitionOf: (imageId: number) => number = () => 0,
  ) {}

  /** Which images this manager keeps from now on; the others' commits only move its indexes (ForeignImage). */
  hold(holding: (imageId: number) => boolean): void {
    this.holding = holding;
  }

  image(id: number): ImageView | undefined {
    return this.images.peek(id)?.view;
  }

  /** Whether the image is kept here (not another partition's). */
  resident(id: number): boolean {
    return this.images.has(id);
  }

  /** Whether the image is resident and was used within the idle time (not yet packed as text). */
  hot(id: number): boolean {
    return this.images.isHot(id);
  }

  /** The partitions with an image known here only as foreign: no checkpoint of theirs can be written here. */
  foreignPartitions(): Set<number> {
    return new Set(this.foreignIn.keys());
  }

  /** Whether the image is another partition's, known here only by what the indexes need. */
  isForeign(id: number): boolean {
    return this.foreign.has(id) || this.adopting.has(id);
  }

  datastore(id: number): DatastoreView | undefined {
    const r = this.datastores.get(id);
    return r ? DATASTORE.toView(r.agg) : undefined;
  }

  /** The image to decide on: hot from now on. */
  residentImage(id: number): ResidentImage | undefined {
    const h = this.images.hot(id, this.now());
    return h && { agg: h.agg, seq: h.seq, hash: h.hash };
  }

  residentDatastore(id: number): ResidentDatastore | undefined {
    return this.datastores.get(id);
  }

  /** Every image, idle ones read without making them hot (a scan: tests and sweeps, never per command). */
  *allImages(): IterableIterator<ResidentImage> {
    for (const id of [...this.images.ids()]) {
      const p = this.images.peek(id);
      if (p) yield { agg: IMAGE.fromView(p.view), seq: p.seq, hash: p.hash };
    }
  }

  /** The images with a pending operation or a job whose deadline is at or before `now`. */
  *deadlinesDue(now: number): IterableIterator<ImageAggregate> {
    for (const [id, deadline] of [...this.deadlines]) {
      if (deadline > now) continue;
      const p = this.images.peek(id);
      if (p) yield IMAGE.fromView(p.view);
    }
  }

  allDatastores(): IterableIterator<ResidentDatastore> {
    return this.datastores.values();
  }

  get sizes(): { images: number; datastores: number; imagesHot: number; imagesForeign: number } {
    return { images: this.images.size, datastores: this.datastores.size, imagesHot: this.images.hotCount, imagesForeign: this.foreign.size + this.adopting.size };
  }

  /** Sequence of the aggregate's last commit folded in (0 before its first); reads no idle image. */
  lastSeq(kind: AggregateKind, id: number): number {
    if (kind === 'datastore') return this.datastores.get(id)?.seq ?? 0;
    return this.images.seq(id) || this.foreign.get(id)?.seq || this.adopting.get(id)?.at(-1)?.seq || 0;
  }

  /** Sequence and hash of the aggregate's last commit folded in (0 and "" before its first). */
  last(kind: AggregateKind, id: number): { seq: number; hash: string } {
    if (kind === 'image') {
      const h = this.residentImage(id);
      return { seq: h?.seq ?? 0, hash: h?.hash ?? '' };
    }
    const r = this.datastores.get(id);
    return { seq: r?.seq ?? 0, hash: r?.hash ?? '' };
  }

  imageNamed(uid: number, name: string): number | null {
    return this.imageNames.get(nameKey(uid, name)) ?? null;
  }

  /** How many images live in the datastore (neither INIT nor REMOVED). */
  imagesIn(datastoreId: number): number {
    return this.members.get(datastoreId) ?? 0;
  }

  /** The space the datastore's images being created hold (W38). */
  reservedIn(datastoreId: number): number {
    let mb = 0;
    for (const n of this.reserved.get(datastoreId)?.values() ?? []) mb += n;
    return mb;
  }

  /** Which of the datastore's images hold space, and how much (bounded by the creations running, not by the pool). */
  reservationsIn(datastoreId: number): { imageId: number; sizeMb: number }[] {
    return [...(this.reserved.get(datastoreId) ?? [])].map(([imageId, sizeMb]) => ({ imageId, sizeMb })).sort((a, b) => a.imageId - b.imageId);
  }

  datastoreNamed(name: string): number | null {
    return this.datastoreNames.get(name) ?? null;
  }

  /** The commit a command produced, if it was folded in recently. */
  committed(commandId: string): Committed | undefined {
    return this.recent.get(commandId);
  }

  /** Folds a commit in; one already folded (same or older sequence) changes nothing. */
  apply(seq: number, commit: Commit, hash: string): void {
    const last = commit.facts[commit.facts.length - 1];
    if (commit.aggregate === 'image') {
      const id = commit.id;
      if (seq <= this.lastSeq('image', id)) return;
      const waiting = this.adopting.get(id);
      if (waiting) {
        waiting.push({ seq, commit, hash });
        if (last) this.recent.set(commit.commandId, { kind: 'image', id, seq, fact: last.type, state: last.state, by: actorKey(commit.actor) });
        return;
      }
      if (this.images.has(id) || (!this.foreign.has(id) && this.holding(id))) {
        const before = this.images.hot(id, this.now())?.agg ?? IMAGE.initial(id);
        const after = foldImageCommit(before, commit);
        this.images.set(id, after, seq, hash, this.now());
        const was = indexedOf(before);
        const is = indexedOf(after);
        // Most commits (an acquire, a release) move nothing the indexes hold.
        if (!sameIndexed(was, is)) this.index(was, is);
        this.dirty.add(`image.${id}`);
      } else {
        // Another manager's: only what the indexes need; its holder checkpoints it.
        const before = this.foreign.get(id);
        const after = foldForeign(before, seq, commit.facts);
        this.setForeign(id, after);
        this.index(before && indexedOfForeign(id, before), indexedOfForeign(id, after));
      }
    } else {
      const r = this.datastores.get(commit.id) ?? { agg: DATASTORE.initial(commit.id), seq: 0, hash: '' };
      if (seq <= r.seq) return;
      const beforeName = r.agg.record.name;
      r.agg = DATASTORE.fromView(foldCommit(DATASTORE.toView(r.agg), commit));
      r.seq = seq;
      r.hash = hash;
      this.datastores.set(commit.id, r);
      if (this.datastoreNames.get(beforeName) === commit.id) this.datastoreNames.delete(beforeName);
      if (r.agg.state !== 'REMOVED' && r.agg.record.name !== '') this.datastoreNames.set(r.agg.record.name, commit.id);
      this.dirty.add(`datastore.${commit.id}`);
    }
    if (last) this.recent.set(commit.commandId, { kind: commit.aggregate, id: commit.id, seq, fact: last.type, state: last.state, by: actorKey(commit.actor) });
  }

  /**
   * A message on an aggregate's subject that is no commit (the log is
   * immutable: it stays there) is a step of that subject's sequence all the
   * same. The next append must expect it, else every command of the
   * aggregate would conflict until its retries ran out. Nothing else of the
   * aggregate changes.
   */
  stepOver(kind: AggregateKind, id: number, seq: number): void {
    if (seq <= this.lastSeq(kind, id)) return;
    if (kind === 'datastore') {
      const r = this.datastores.get(id) ?? { agg: DATASTORE.initial(id), seq: 0, hash: '' };
      r.seq = seq;
      this.datastores.set(id, r);
      this.dirty.add(`datastore.${id}`);
      return;
    }
    const waiting = this.adopting.get(id);
    if (waiting) {
      waiting.push({ seq, commit: null, hash: '' });
      return;
    }
    if (this.images.has(id) || (!this.foreign.has(id) && this.holding(id))) {
      const h = this.images.hot(id, this.now());
      this.images.set(id, h?.agg ?? IMAGE.initial(id), seq, h?.hash ?? '', this.now());
      this.dirty.add(`image.${id}`);
    } else {
      const before = this.foreign.get(id);
      this.setForeign(id, { ...(before ?? foldForeign(undefined, seq, [])), seq });
    }
  }

  /** The live image other than `except` that holds `file` in the datastore (its SOURCE or an increment's), if any. */
  fileHolder(datastoreId: number, file: string, except: number): number | undefined {
    return this.fileHolders.get(fileKey(datastoreId, file))?.find((id) => id !== except);
  }

  /** Takes an image's files out of (-1) or into (+1) the index of who holds what. */
  private holdFiles(image: Indexed, sign: 1 | -1): void {
    if (!image.live) return;
    for (const f of image.files) {
      const key = fileKey(image.datastoreId, f);
      const held = (this.fileHolders.get(key) ?? []).filter((id) => id !== image.id);
      if (sign > 0) held.push(image.id);
      if (held.length > 0) this.fileHolders.set(key, held);
      else this.fileHolders.delete(key);
    }
  }

  /** Moves an image from what the indexes knew of it to what it is now. */
  private index(before: Indexed | undefined, after: Indexed): void {
    if (before) {
      this.holdFiles(before, -1);
      this.count(before, -1);
      if (this.imageNames.get(nameKey(before.uid, before.name)) === before.id) this.imageNames.delete(nameKey(before.uid, before.name));
    }
    this.count(after, 1);
    this.holdFiles(after, 1);
    if (after.live) this.imageNames.set(nameKey(after.uid, after.name), after.id);
    if (after.deadline !== null) this.deadlines.set(after.id, after.deadline);
    else this.deadlines.delete(after.id);
  }

  /** Takes an image out of (-1) or into (+1) its datastore's counts: membership and the space it holds. */
  private count(image: Indexed, sign: 1 | -1): void {
    if (!image.live) return;
    const ds = image.datastoreId;
    const n = (this.members.get(ds) ?? 0) + sign;
    if (n > 0) this.members.set(ds, n);
    else this.members.delete(ds);
    if (image.reservedMb <= 0) return;
    const held = this.reserved.get(ds) ?? new Map<number, number>();
    if (sign > 0) held.set(image.id, image.reservedMb);
    else held.delete(image.id);
    if (held.size > 0) this.reserved.set(ds, held);
    else this.reserved.delete(ds);
  }

  /**
   * Gives up the resident images `which` selects (their partition went to
   * another manager, or one loaded for a moment went idle): each keeps only
   * what the indexes need. Its changes since the last checkpoint are not
   * written from here: while it is foreign here its partition gets no
   * checkpoint from this manager (Checkpoints). Returns how many it gave up.
   */
  release(which: (imageId: number) => boolean, among: Iterable<number> = this.images.ids()): number {
    let n = 0;
    for (const id of [...among]) {
      if (!which(id)) continue;
      const p = this.images.peek(id);
      if (!p) continue;
      const agg = IMAGE.fromView(p.view);
      this.images.delete(id);
      this.setForeign(id, foreignOf(agg, p.seq));
      this.deadlines.delete(id);
      this.dirty.delete(`image.${id}`);
      n += 1;
    }
    return n;
  }

  private setForeign(id: number, f: ForeignImage): void {
    if (!this.foreign.has(id)) {
      const p = this.partitionOf(id);
      this.foreignIn.set(p, (this.foreignIn.get(p) ?? 0) + 1);
    }
    this.foreign.set(id, f);
  }

  private deleteForeign(id: number): void {
    if (!this.foreign.delete(id)) return;
    const p = this.partitionOf(id);
    const n = (this.foreignIn.get(p) ?? 0) - 1;
    if (n > 0) this.foreignIn.set(p, n);
    else this.foreignIn.delete(p);
  }

  /** The images of other partitions `which` selects: what a manager taking their partition loads. */
  foreignIds(which: (imageId: number) => boolean): number[] {
    return [...this.foreign.keys()].filter(which);
  }

  /** From now on these foreign images' commits wait for `adopt` (or `abandon`) instead of moving the indexes. */
  beginAdopting(ids: readonly number[]): void {
    for (const id of ids) if (this.foreign.has(id) && !this.adopting.has(id)) this.adopting.set(id, []);
  }

  /** A foreign image loaded (its snapshot and the commits after it): kept here from now on, with the commits that waited. */
  adopt(id: number, image: ResidentImage): void {
    const waiting = this.adopting.get(id) ?? [];
    this.adopting.delete(id);
    const before = this.foreign.get(id);
    this.deleteForeign(id);
    this.images.set(id, image.agg, image.seq, image.hash, this.now());
    this.index(before && indexedOfForeign(id, before), indexedOf(image.agg));
    // Its snapshot may be older than what was loaded: the next checkpoint writes it before its partition's.
    this.dirty.add(`image.${id}`);
    for (const w of waiting) this.replay(id, w);
  }

  /** An image that could not be loaded stays foreign, with the commits that waited folded in. */
  abandon(id: number): void {
    const waiting = this.adopting.get(id) ?? [];
    this.adopting.delete(id);
    for (const w of waiting) this.replay(id, w);
  }

  /** A commit that waited for an adoption; null for a message that was not one (stepOver). */
  private replay(id: number, w: { seq: number; commit: Extract<Commit, { aggregate: 'image' }> | null; hash: string }): void {
    if (w.commit) this.apply(w.seq, w.commit, w.hash);
    else this.stepOver('image', id, w.seq);
  }

  /** The files the datastore's images name (resident and foreign): what a sweep leaves alone. A scan, once per monitor period. */
  namedFiles(datastoreId: number): Set<string> {
    const named = new Set<string>();
    for (const id of [...this.images.ids()]) {
      const v = this.images.peek(id)?.view;
      if (!v || v.state === 'REMOVED' || v.datastore.id !== datastoreId) continue;
      for (const f of filesOf({ source: v.source, path: v.path, increments: v.increments.map((i) => i.source) })) named.add(f);
    }
    for (const f of this.foreign.values()) if (f.live && f.datastoreId === datastoreId) for (const file of filesOf(f)) named.add(file);
    return named;
  }

  /** Packs up to `max` images unused for `idleMs` (ImageStore.compact). */
  compact(idleMs: number, max: number): number {
    return this.images.compact(this.now() - idleMs, max);
  }

  /** The changed keys, handed to a checkpoint; `giveBack` returns them when it failed. */
  takeDirty(): string[] {
    const keys = [...this.dirty];
    this.dirty.clear();
    return keys;
  }

  giveBack(keys: readonly string[]): void {
    for (const k of keys) this.dirty.add(k);
  }

  /** The stored form of one resident aggregate, keyed `image.<id>` or `datastore.<id>`, as JSON text. */
  snapshotOf(key: string): { seq: number; text: string } | undefined {
    const [kind, idText] = key.split('.');
    const id = Number(idText);
    if (kind === 'image') {
      const p = this.images.peek(id);
      return p && { seq: p.seq, text: JSON.stringify({ kind: 'image', seq: p.seq, hash: p.hash, shape: SNAPSHOT_SHAPE, view: p.view } satisfies Snapshot) };
    }
    const r = this.datastores.get(id);
    return r && { seq: r.seq, text: JSON.stringify({ kind: 'datastore', seq: r.seq, hash: r.hash, shape: SNAPSHOT_SHAPE, view: DATASTORE.toView(r.agg) } satisfies Snapshot) };
  }

  /** Loads one stored snapshot; false when it does not read (the log after the checkpoint cannot replace it then). */
  loadSnapshot(text: string): boolean {
    const s = readSnapshot(text);
    if (!s) return false;
    if (s.kind === 'image') {
      const view = s.view;
      const replaced = this.images.peek(view.id);
      this.images.load(view, s.seq, s.hash);
      this.index(replaced && indexedOf(IMAGE.fromView(replaced.view)), indexedOf(IMAGE.fromView(view)));
      return true;
    }
    const agg = DATASTORE.fromView(s.view);
    this.datastores.set(agg.record.id, { agg, seq: s.seq, hash: s.hash });
    if (agg.state !== 'REMOVED') this.datastoreNames.set(agg.record.name, agg.record.id);
    return true;
  }
}

const nameKey = (uid: number, name: string): string => `${uid}\u0000${name}`;
const fileKey = (datastoreId: number, file: string): string => `${datastoreId}\u0000${file}`;
