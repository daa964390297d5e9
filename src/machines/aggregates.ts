import type { z } from 'zod';
import { StoredImageViewSchema, type ImageView } from '../messages/image-record.js';
import { DatastoreViewSchema, type DatastoreFact, type DatastoreView } from '../messages/datastore.js';
import type { ImageFact } from '../messages/image-facts.js';
import type { Commit } from '../messages/wire.js';
import { aggregateOf, decideImage, evolveImage, initialImage, viewOf, type ImageAggregate } from './image/decide.js';
import { decideDatastore, evolveDatastore, initialDatastore, type DatastoreAggregate } from './datastore/decide.js';
import type { ImageEvent } from './image/events.js';
import type { DatastoreEvent } from './datastore/events.js';

/**
 * Everything one kind of aggregate is, in one place: its first state, how a
 * command is decided, how a fact evolves its view, how a view is stored and
 * read back. The aggregate host, the projector, time travel and the test
 * helpers all use these, so image and datastore are not forked in each.
 */
export interface AggregateDefinition<A, V, F, E> {
  readonly initial: (id: number) => A;
  readonly decide: (agg: A, event: E) => { readonly ok: boolean };
  readonly evolve: (view: V | null, fact: F) => V;
  readonly toView: (agg: A) => V;
  readonly fromView: (view: V) => A;
  /** How a stored view (KV snapshot or projection) is read, older shapes included. */
  readonly storedView: z.ZodType<V>;
}

export const IMAGE = {
  initial: initialImage,
  decide: decideImage,
  evolve: evolveImage,
  toView: viewOf,
  fromView: aggregateOf,
  storedView: StoredImageViewSchema,
} satisfies AggregateDefinition<ImageAggregate, ImageView, ImageFact, ImageEvent>;

export const DATASTORE = {
  initial: initialDatastore,
  decide: decideDatastore,
  evolve: evolveDatastore,
  toView: (a: DatastoreAggregate): DatastoreView => ({ ...a.record, state: a.state }),
  fromView: (v: DatastoreView): DatastoreAggregate => {
    const { state, ...record } = v;
    return { state, record };
  },
  storedView: DatastoreViewSchema,
} satisfies AggregateDefinition<DatastoreAggregate, DatastoreView, DatastoreFact, DatastoreEvent>;

type ImageCommit = Extract<Commit, { aggregate: 'image' }>;
type DatastoreCommit = Extract<Commit, { aggregate: 'datastore' }>;

/** A commit folded into the view before it (null: the aggregate's first commit), with `evolve` alone (principle 2). */
export function foldCommit(before: ImageView | null, commit: ImageCommit): ImageView;
export function foldCommit(before: DatastoreView | null, commit: DatastoreCommit): DatastoreView;
export function foldCommit(before: ImageView | DatastoreView | null, commit: Commit): ImageView | DatastoreView {
  if (commit.aggregate === 'image') return commit.facts.reduce<ImageView | null>((v, f) => IMAGE.evolve(v, f), before as ImageView | null) ?? IMAGE.toView(IMAGE.initial(commit.id));
  return commit.facts.reduce<DatastoreView | null>((v, f) => DATASTORE.evolve(v, f), before as DatastoreView | null) ?? DATASTORE.toView(DATASTORE.initial(commit.id));
}

/**
 * An image's commit folded into its aggregate: the same as folding its view
 * (`foldCommit`), with one copy of the record per fact instead of three (a
 * boot folds every commit of the log).
 */
export function foldImageCommit(agg: ImageAggregate, commit: ImageCommit): ImageAggregate {
  let { state, record } = agg;
  for (const f of commit.facts) {
    const next: Record<string, unknown> = { ...record };
    for (const [k, v] of Object.entries(f.changes)) if (v !== undefined) next[k] = v;
    record = next as typeof record;
    state = f.state;
  }
  return { state, record };
}

/** Views of every aggregate, folded from commits in log order. */
export class ViewFold {
  readonly images = new Map<number, ImageView>();
  readonly datastores = new Map<number, DatastoreView>();

  add(commit: Commit): ImageView | DatastoreView {
    if (commit.aggregate === 'image') {
      const v = foldCommit(this.images.get(commit.id) ?? null, commit);
      this.images.set(commit.id, v);
      return v;
    }
    const v = foldCommit(this.datastores.get(commit.id) ?? null, commit);
    this.datastores.set(commit.id, v);
    return v;
  }
}
