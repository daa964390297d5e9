import type { ImageView } from '../../src/messages/image-record.js';
import type { DatastoreView } from '../../src/messages/datastore.js';
import type { Commit } from '../../src/messages/wire.js';
import { evolveImage } from '../../src/machines/image/decide.js';
import { evolveDatastore } from '../../src/machines/datastore/decide.js';

/** Views rebuilt from the log alone, the way a projection would: what every resident state must equal. */
export function viewsFromLog(log: readonly { commit: Commit }[]): { images: Map<number, ImageView>; datastores: Map<number, DatastoreView> } {
  const images = new Map<number, ImageView>();
  const datastores = new Map<number, DatastoreView>();
  for (const { commit } of log) {
    if (commit.aggregate === 'image') {
      const v = commit.facts.reduce<ImageView | null>((acc, f) => evolveImage(acc, f), images.get(commit.id) ?? null);
      if (v) images.set(commit.id, v);
    } else {
      const v = commit.facts.reduce<DatastoreView | null>((acc, f) => evolveDatastore(acc, f), datastores.get(commit.id) ?? null);
      if (v) datastores.set(commit.id, v);
    }
  }
  return { images, datastores };
}

/** Commands committed more than once (must be none). */
export function duplicateCommits(log: readonly { commit: Commit }[]): string[] {
  const seen = new Map<string, number>();
  for (const { commit } of log) seen.set(commit.commandId, (seen.get(commit.commandId) ?? 0) + 1);
  return [...seen].filter(([, n]) => n > 1).map(([id]) => id);
}
