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
  const operationsByAction: Record<string, number> = {};
  let reservedMb = 0;
  let reserving = 0;
  for (const v of images) {
    if (v.datastore.id !== datastoreId || v.state === 'REMOVED') continue;
    imagesByState[v.state] = (imagesByState[v.state] ?? 0) + 1;
    if (v.pending) operationsByAction[v.pending.action] = (operationsByAction[v.pending.action] ?? 0) + 1;
    if (v.reservedMb > 0) {
      reservedMb += v.reservedMb;
      reserving += 1;
    }
  }
  const sorted = (r: Record<string, number>): Record<string, number> => Object.fromEntries(Object.entries(r).sort(([a], [b]) => a.localeCompare(b)));
  return { imagesByState: sorted(imagesByState), operationsByAction: sorted(operationsByAction), reservedMb, reserving };
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
            pending: c.pending ? { requestId: `r-${c.id}`, action: c.id % 2 === 0 ? 'CP' : 'CLONE', issuedAt: 0, deadline: 1 } : null,
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
    expect(s.of(7)).toEqual({ imagesByState: { READY: 1 }, operationsByAction: {}, reservedMb: 0, reserving: 0 });
    expect(s.change(v('READY'), v('REMOVED'))).toEqual([7]);
    expect(s.of(7)).toEqual({ imagesByState: {}, operationsByAction: {}, reservedMb: 0, reserving: 0 });
  });

  it('stays the same size whatever runs on the datastore (10,000 creations in flight once made its view larger than a NATS message)', () => {
    const s = new DatastoreSummaries();
    const creating = (id: number): ImageView => ({
      ...emptyImage(id),
      datastore: { id: 7, name: '', type: 'IMAGE_DS', dsMad: 'fs' },
      state: 'LOCKED',
      pending: { requestId: `r-${id}`, action: 'CP', issuedAt: 0, deadline: 1 },
      reservedMb: 5,
    });
    s.change(undefined, creating(0));
    const one = JSON.stringify(s.of(7)).length;
    for (let id = 1; id < 10_000; id++) s.change(undefined, creating(id));
    expect(s.of(7)).toEqual({ imagesByState: { LOCKED: 10_000 }, operationsByAction: { CP: 10_000 }, reservedMb: 50_000, reserving: 10_000 });
    expect(JSON.stringify(s.of(7)).length).toBeLessThan(one + 20);
  });
});
