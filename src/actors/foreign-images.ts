import type { ImageAggregate } from '../machines/image/decide.js';
import type { ImageFact } from '../messages/image-facts.js';

/**
 * What a manager keeps of an image of a partition it does not hold: what
 * its indexes need (the datastore's counts, the owner's names, the files a
 * sweep must not reclaim), folded from the image's facts alone. The image
 * itself lives with the manager that holds its partition.
 */
export interface ForeignImage {
  readonly seq: number;
  /** Neither INIT nor REMOVED. */
  readonly live: boolean;
  readonly datastoreId: number;
  readonly reservedMb: number;
  readonly uid: number;
  readonly name: string;
  readonly source: string;
  readonly path: string;
  /** The sources of its increments (backup chains). */
  readonly increments: readonly string[];
}

const NOBODY: ForeignImage = { seq: 0, live: false, datastoreId: -1, reservedMb: 0, uid: -1, name: '', source: '', path: '', increments: [] };

/** An image's commit folded into what a manager keeps of it (principle 2: facts say what changed). */
export function foldForeign(before: ForeignImage | undefined, seq: number, facts: readonly ImageFact[]): ForeignImage {
  let f = before ?? NOBODY;
  for (const fact of facts) {
    const c = fact.changes;
    f = {
      seq,
      live: fact.state !== 'INIT' && fact.state !== 'REMOVED',
      datastoreId: c.datastore?.id ?? f.datastoreId,
      reservedMb: c.reservedMb ?? f.reservedMb,
      uid: c.uid ?? f.uid,
      name: c.name ?? f.name,
      source: c.source ?? f.source,
      path: c.path ?? f.path,
      increments: c.increments ? c.increments.map((i) => i.source) : f.increments,
    };
  }
  return f;
}

/** What a manager keeps of an image it gives up. */
export function foreignOf(agg: ImageAggregate, seq: number): ForeignImage {
  const r = agg.record;
  return {
    seq,
    live: agg.state !== 'INIT' && agg.state !== 'REMOVED',
    datastoreId: r.datastore.id,
    reservedMb: r.reservedMb,
    uid: r.uid,
    name: r.name,
    source: r.source,
    path: r.path,
    increments: r.increments.map((i) => i.source),
  };
}

/** The files an image names in its datastore, which a sweep leaves alone. */
export const filesOf = (f: Pick<ForeignImage, 'source' | 'path' | 'increments'>): string[] => [f.source, f.path, ...f.increments].filter((p) => p !== '');
