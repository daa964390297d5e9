import { z } from 'zod';
import type { AggregateKind, Commit } from '../messages/wire.js';
import type { ImageView } from '../messages/image-record.js';
import type { DatastoreView } from '../messages/datastore.js';
import { DATASTORE, IMAGE, foldCommit } from '../machines/aggregates.js';
import type { ImageAggregate } from '../machines/image/decide.js';
import { safeJson } from '../platform/json.js';
import { RecentCommits, type ResidentDatastore, type ResidentImage } from './resident.js';

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

const snapshotBase = { seq: z.number().int(), hash: z.string() };
export const SnapshotSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('image'), ...snapshotBase, view: IMAGE.storedView }),
  z.object({ kind: z.literal('datastore'), ...snapshotBase, view: DATASTORE.storedView }),
]);
export type Snapshot = z.infer<typeof SnapshotSchema>;

/**
 * Every aggregate as a compact record, the sequence and hash of its last
 * commit, the name indexes decisions read, and the commands recently
 * committed. It only folds commits; what reaches it and when is the host's.
 */
export class ResidentState {
  private readonly images = new Map<number, ResidentImage>();
  private readonly datastores = new Map<number, ResidentDatastore>();
  private readonly imageNames = new Map<string, number>();
  private readonly datastoreNames = new Map<string, number>();
  private readonly recent = new RecentCommits<Committed>(100_000);
  /** Datastore id → how many of its images live: membership counted from the images' own facts. */
  private readonly members = new Map<number, number>();
  /** Datastore id → image id → the space that image's creation holds (W38), from the images' own records. */
  private readonly reserved = new Map<number, Map<number, number>>();
  /** Keys (`image.<id>`, `datastore.<id>`) changed since the last checkpoint took them. */
  private readonly dirty = new Set<string>();

  image(id: number): ImageView | undefined {
    const r = this.images.get(id);
    return r ? IMAGE.toView(r.agg) : undefined;
  }

  datastore(id: number): DatastoreView | undefined {
    const r = this.datastores.get(id);
    return r ? DATASTORE.toView(r.agg) : undefined;
  }

  residentImage(id: number): ResidentImage | undefined {
    return this.images.get(id);
  }

  residentDatastore(id: number): ResidentDatastore | undefined {
    return this.datastores.get(id);
  }

  allImages(): IterableIterator<ResidentImage> {
    return this.images.values();
  }

  allDatastores(): IterableIterator<ResidentDatastore> {
    return this.datastores.values();
  }

  get sizes(): { images: number; datastores: number } {
    return { images: this.images.size, datastores: this.datastores.size };
  }

  /** Sequence and hash of the aggregate's last commit folded in (0 and "" before its first). */
  last(kind: AggregateKind, id: number): { seq: number; hash: string } {
    const r = kind === 'image' ? this.images.get(id) : this.datastores.get(id);
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
      const r = this.images.get(commit.id) ?? { agg: IMAGE.initial(commit.id), seq: 0, hash: '' };
      if (seq <= r.seq) return;
      const before = r.agg.record;
      this.count(r.agg, -1);
      r.agg = IMAGE.fromView(foldCommit(IMAGE.toView(r.agg), commit));
      this.count(r.agg, 1);
      r.seq = seq;
      r.hash = hash;
      this.images.set(commit.id, r);
      this.indexImageName(before.uid, before.name, r.agg);
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
    }
    this.dirty.add(`${commit.aggregate}.${commit.id}`);
    if (last) this.recent.set(commit.commandId, { kind: commit.aggregate, id: commit.id, seq, fact: last.type, state: last.state, by: actorKey(commit.actor) });
  }

  /** Takes an image out of (-1) or into (+1) its datastore's counts: membership and the space it holds. */
  private count(agg: ImageAggregate, sign: 1 | -1): void {
    if (agg.state === 'INIT' || agg.state === 'REMOVED') return;
    const ds = agg.record.datastore.id;
    const n = (this.members.get(ds) ?? 0) + sign;
    if (n > 0) this.members.set(ds, n);
    else this.members.delete(ds);
    if (agg.record.reservedMb <= 0) return;
    const held = this.reserved.get(ds) ?? new Map<number, number>();
    if (sign > 0) held.set(agg.record.id, agg.record.reservedMb);
    else held.delete(agg.record.id);
    if (held.size > 0) this.reserved.set(ds, held);
    else this.reserved.delete(ds);
  }

  private indexImageName(uid: number, name: string, agg: ImageAggregate): void {
    const oldKey = nameKey(uid, name);
    if (this.imageNames.get(oldKey) === agg.record.id) this.imageNames.delete(oldKey);
    if (agg.state !== 'REMOVED' && agg.state !== 'INIT') this.imageNames.set(nameKey(agg.record.uid, agg.record.name), agg.record.id);
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

  /** The stored form of one resident aggregate, keyed `image.<id>` or `datastore.<id>`. */
  snapshotOf(key: string): Snapshot | undefined {
    const [kind, idText] = key.split('.');
    const id = Number(idText);
    if (kind === 'image') {
      const r = this.images.get(id);
      return r && { kind: 'image', seq: r.seq, hash: r.hash, view: IMAGE.toView(r.agg) };
    }
    const r = this.datastores.get(id);
    return r && { kind: 'datastore', seq: r.seq, hash: r.hash, view: DATASTORE.toView(r.agg) };
  }

  /** Loads one stored snapshot; false when it does not read (the log after the checkpoint cannot replace it then). */
  loadSnapshot(text: string): boolean {
    const s = SnapshotSchema.safeParse(safeJson(text));
    if (!s.success) return false;
    if (s.data.kind === 'image') {
      const agg = IMAGE.fromView(s.data.view);
      const replaced = this.images.get(agg.record.id);
      if (replaced) this.count(replaced.agg, -1);
      this.count(agg, 1);
      this.images.set(agg.record.id, { agg, seq: s.data.seq, hash: s.data.hash });
      this.indexImageName(agg.record.uid, agg.record.name, agg);
    } else {
      const agg = DATASTORE.fromView(s.data.view);
      this.datastores.set(agg.record.id, { agg, seq: s.data.seq, hash: s.data.hash });
      if (agg.state !== 'REMOVED') this.datastoreNames.set(agg.record.name, agg.record.id);
    }
    return true;
  }
}

const nameKey = (uid: number, name: string): string => `${uid}\u0000${name}`;
