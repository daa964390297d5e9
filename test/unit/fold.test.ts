/**
 * The host folds an image's commit into its aggregate directly; that must be
 * exactly the fold of its view (principle 2: views from facts alone), for
 * every state an image reaches and commits of several facts.
 */
import { describe, expect, it } from 'vitest';
import { IMAGE, foldCommit, foldImageCommit } from '../../src/machines/aggregates.js';
import { IMAGE_STATES } from '../../src/messages/states.js';
import type { Commit } from '../../src/messages/wire.js';
import type { ImageFact } from '../../src/messages/image-facts.js';
import { imageIn, readyWithSnapshots } from '../support/image-states.js';
import { ADMIN } from '../support/fixtures.js';

const commitOf = (id: number, facts: ImageFact[]): Extract<Commit, { aggregate: 'image' }> => ({
  v: 1, aggregate: 'image', id, commandId: 'c', correlationId: 'c', causationId: null, actor: ADMIN, at: 1, prev: '', facts,
});

describe('folding an image commit into its aggregate', () => {
  const histories: [string, ImageFact[]][] = [...IMAGE_STATES.map((s): [string, ImageFact[]] => [s, imageIn(s)]), ['READY with snapshots', readyWithSnapshots()]];
  it.each(histories)('equals folding its view, fact by fact and as one commit: %s', (_name, facts) => {
    let agg = IMAGE.initial(5);
    let view = IMAGE.toView(agg);
    for (const f of facts) {
      agg = foldImageCommit(agg, commitOf(5, [f]));
      view = foldCommit(view, commitOf(5, [f]));
      expect(IMAGE.toView(agg)).toEqual(view);
    }
    if (facts.length > 0) expect(IMAGE.toView(foldImageCommit(IMAGE.initial(5), commitOf(5, facts)))).toEqual(view);
  });
});
