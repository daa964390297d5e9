import type { ImageView } from '../../src/messages/image-record.js';
import type { DatastoreView } from '../../src/messages/datastore.js';
import type { Commit } from '../../src/messages/wire.js';
import { ViewFold } from '../../src/machines/aggregates.js';

/** Views rebuilt from the log alone, the way a projection would: what every resident state must equal. */
export function viewsFromLog(log: readonly { commit: Commit }[]): { images: Map<number, ImageView>; datastores: Map<number, DatastoreView> } {
  const fold = new ViewFold();
  for (const { commit } of log) fold.add(commit);
  return fold;
}

/** Commands committed more than once (must be none). */
export function duplicateCommits(log: readonly { commit: Commit }[]): string[] {
  const seen = new Map<string, number>();
  for (const { commit } of log) seen.set(commit.commandId, (seen.get(commit.commandId) ?? 0) + 1);
  return [...seen].filter(([, n]) => n > 1).map(([id]) => id);
}
