/**
 * The datastore summaries the projector keeps image by image equal a count
 * over the whole pool after any sequence of image changes.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { DatastoreSummaries, type DatastoreSummary } from '../../src/projections/summary.js';
import { emptyImage } from '../../src/machines/image/record.js';
import type { ImageView } from '../../src/messages/image-record.js';
import { IMAGE_STATES } from '../../src/messages/states.js';

/** The definition: count the pool. */
function recount(images: Iterable<ImageView>, datastoreId: number): DatastoreSummary {
  const imagesByState: Record<string, number> = {};
  const pendingOperations: DatastoreSummary['pendingOperations'] = [];
  const reservations: DatastoreSummary['reservations'] = [];
  for (const v of images) {
    if (v.datastore.id !== datastoreId || v.state === 'REMOVED') continue;
    imagesByState[v.state] = (imagesByState[v.state] ?? 0) + 1;
    if (v.pending) pendingOperations.push({ imageId: v.id, action: v.pending.action, requestId: v.pending.requestId, deadline: v.pending.deadline });
    if (v.reservedMb > 0) reservations.push({ imageId: v.id, sizeMb: v.reservedMb });
  }
  pendingOperations.sort((a, b) => a.imageId - b.imageId);
  reservations.sort((a, b) => a.imageId - b.imageId);
  return { imagesByState, pendingOperations, reservations };
}

const STATES = [...IMAGE_STATES, 'REMOVED'] as const;
const change = fc.record({
  id: fc.integer({ min: 0, max: 15 }),
  datastore: fc.integer({ min: 1, max: 3 }),
  state: fc.constantFrom(...STATES),
  pending: fc.boolean(),
  reservedMb: fc.constantFrom(0, 0, 5, 800),
});

describe('datastore summaries, image by image', () => {
  it('equal a recount of the pool after every change', () => {
    fc.assert(
      fc.property(fc.array(change, { maxLength: 80 }), (changes) => {
        const summaries = new DatastoreSummaries();
        const pool = new Map<number, ImageView>();
        for (const c of changes) {
          const before = pool.get(c.id);
          // An image keeps its datastore for life.
          const ds = before?.datastore.id ?? c.datastore;
          const after: ImageView = {
            ...emptyImage(c.id),
            datastore: { id: ds, name: '', type: 'IMAGE_DS', dsMad: 'fs' },
            state: c.state,
            pending: c.pending ? { requestId: `r-${c.id}`, action: 'CP', issuedAt: 0, deadline: 1 } : null,
            reservedMb: c.reservedMb,
          };
          summaries.change(before, after);
          if (after.state === 'REMOVED') pool.delete(c.id);
          else pool.set(c.id, after);
          for (const d of [1, 2, 3]) expect(summaries.of(d)).toEqual(recount(pool.values(), d));
        }
      }),
    );
  });
  it('names the datastores whose summary changed', () => {
    const s = new DatastoreSummaries();
    const v = (state: ImageView['state']): ImageView => ({ ...emptyImage(1), datastore: { id: 7, name: '', type: 'IMAGE_DS', dsMad: 'fs' }, state });
    expect(s.change(undefined, v('LOCKED'))).toEqual([7]);
    expect(s.change(v('LOCKED'), v('READY'))).toEqual([7]);
    expect(s.of(7)).toEqual({ imagesByState: { READY: 1 }, pendingOperations: [], reservations: [] });
    expect(s.change(v('READY'), v('REMOVED'))).toEqual([7]);
    expect(s.of(7)).toEqual({ imagesByState: {}, pendingOperations: [], reservations: [] });
  });
});
