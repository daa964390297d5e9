/**
 * Datastore membership without a list (pool-size independence): the host
 * counts a datastore's live images from the images' own facts, as they are
 * folded in and as snapshots load, so DS_ERR_NOT_EMPTY needs no image list
 * carried by datastore facts.
 */
import { describe, expect, it } from 'vitest';
import { ResidentState } from '../../src/actors/resident-state.js';
import { decideImage, initialImage, viewOf, type ImageAggregate } from '../../src/machines/image/decide.js';
import { decisionContext } from '../../src/machines/image/events.js';
import { ImageCommandSchema, type ImageCommandInput } from '../../src/messages/image-commands.js';
import type { Commit } from '../../src/messages/wire.js';
import { ADMIN, T0 } from '../support/fixtures.js';

const dsInfo = (id: number, availableMb: number | null = null) => ({ id, name: `ds${id}`, type: 'IMAGE_DS' as const, dsMad: 'dummy', tmMad: 'shared', diskType: 'FILE', driver: '', persistentOnly: false, availableMb, bridgeList: '', keepLast: null });
let n = 0;
function commitOf(agg: ImageAggregate, input: ImageCommandInput, datastoreId: number, availableMb: number | null = null): { commit: Commit; next: ImageAggregate } {
  n += 1;
  const meta = { commandId: `m-${n}`, at: T0 + n, actor: ADMIN };
  const d = decideImage(agg, { ...ImageCommandSchema.parse(input), meta, ctx: decisionContext({ datastore: dsInfo(datastoreId, availableMb) }) });
  if (!d.ok) throw new Error(d.rejection.message);
  return { commit: { v: 1, aggregate: 'image', id: agg.record.id, commandId: meta.commandId, correlationId: meta.commandId, causationId: null, actor: ADMIN, at: meta.at, prev: '', facts: [d.fact] }, next: d.next };
}
const register = (id: number, datastoreId: number) =>
  commitOf(initialImage(id), { type: 'image.allocate', imageId: id, datastoreId, template: { NAME: `i${id}`, SOURCE: `/s/${id}`, SIZE: '1', FORMAT: 'raw' } }, datastoreId);

describe('membership counted from image facts', () => {
  it('counts each live image once in its datastore, however many commits it has, and snapshots count alike', () => {
    const state = new ResidentState();
    let seq = 0;
    const a = register(1, 10);
    state.apply(++seq, a.commit, 'h');
    state.apply(++seq, register(2, 10).commit, 'h');
    state.apply(++seq, register(3, 20).commit, 'h');
    // More commits of image 1 (and one folded twice) move nothing.
    const disabled = commitOf(a.next, { type: 'image.disable', imageId: 1 }, 10);
    state.apply(++seq, disabled.commit, 'h');
    state.apply(seq, disabled.commit, 'h');
    expect([state.imagesIn(10), state.imagesIn(20), state.imagesIn(30)]).toEqual([2, 1, 0]);
    // A snapshot of an image already resident replaces it, it does not add to it.
    expect(state.loadSnapshot(JSON.stringify({ kind: 'image', seq: 99, hash: 'h', view: viewOf(disabled.next) }))).toBe(true);
    expect(state.loadSnapshot(JSON.stringify({ kind: 'image', seq: 99, hash: 'h', view: viewOf(register(4, 30).next) }))).toBe(true);
    expect([state.imagesIn(10), state.imagesIn(20), state.imagesIn(30)]).toEqual([2, 1, 1]);
  });

  it('stops counting an image once it is gone', () => {
    const state = new ResidentState();
    const r = register(5, 10);
    state.apply(1, r.commit, 'h');
    const deleting = commitOf(r.next, { type: 'image.delete', imageId: 5 }, 10);
    state.apply(2, deleting.commit, 'h');
    // DELETE still holds its file in the datastore: the datastore is not empty until the driver's RM.
    expect(deleting.next.state).toBe('DELETE');
    expect(state.imagesIn(10)).toBe(1);
    const gone = { ...viewOf(deleting.next), state: 'REMOVED' as const };
    expect(state.loadSnapshot(JSON.stringify({ kind: 'image', seq: 3, hash: 'h', view: gone }))).toBe(true);
    expect(state.imagesIn(10)).toBe(0);
  });

  it('counts the space creations hold (W38) from the images alike: held while LOCKED, given back by the fact that leaves it', () => {
    const state = new ResidentState();
    const copy = (id: number, sizeMb: number) =>
      commitOf(initialImage(id), { type: 'image.allocate', imageId: id, datastoreId: 10, template: { NAME: `c${id}`, PATH: `/tmp/${id}`, SIZE: String(sizeMb) } }, 10, 1000);
    const a = copy(1, 300);
    const b = copy(2, 200);
    state.apply(1, a.commit, 'h');
    state.apply(2, b.commit, 'h');
    expect(state.reservedIn(10)).toBe(500);
    expect(state.reservationsIn(10)).toEqual([{ imageId: 1, sizeMb: 300 }, { imageId: 2, sizeMb: 200 }]);
    const requestId = a.next.record.pending?.requestId ?? '';
    const done = commitOf(a.next, { type: 'driver.reply', imageId: 1, requestId, action: 'CP', result: 'SUCCESS', info: 'dummy_path raw' }, 10, 1000);
    expect(done.next.state).toBe('READY');
    state.apply(3, done.commit, 'h');
    state.apply(3, done.commit, 'h');
    expect(state.reservationsIn(10)).toEqual([{ imageId: 2, sizeMb: 200 }]);
    // A snapshot replacing the image counts what it holds, not twice.
    expect(state.loadSnapshot(JSON.stringify({ kind: 'image', seq: 4, hash: 'h', view: viewOf(b.next) }))).toBe(true);
    expect(state.reservedIn(10)).toBe(200);
    const deleted = commitOf(b.next, { type: 'image.delete', imageId: 2, force: true }, 10, 1000);
    state.apply(5, deleted.commit, 'h');
    expect(state.reservedIn(10)).toBe(0);
    expect(state.reservationsIn(10)).toEqual([]);
  });
});

describe('the files each live image holds, per datastore (#27: what a driver reply may not claim)', () => {
  it('follows registrations, deletions, snapshots and other partitions, without a scan', () => {
    const state = new ResidentState();
    let seq = 0;
    const a = register(1, 10);
    state.apply(++seq, a.commit, 'h');
    state.apply(++seq, register(2, 10).commit, 'h');
    expect(state.fileHolder(10, '/s/1', 99)).toBe(1);
    // Its own file is not another's; another datastore's path is nobody's here.
    expect(state.fileHolder(10, '/s/1', 1)).toBeUndefined();
    expect(state.fileHolder(20, '/s/1', 99)).toBeUndefined();
    // Being deleted, it still holds its file; once its RM answered, the file is nobody's.
    const deleting = commitOf(a.next, { type: 'image.delete', imageId: 1 }, 10);
    state.apply(++seq, deleting.commit, 'h');
    expect(state.fileHolder(10, '/s/1', 99)).toBe(1);
    const rm = deleting.next.record.pending;
    const gone = commitOf(deleting.next, { type: 'driver.reply', imageId: 1, requestId: rm?.requestId ?? '', action: 'RM', result: 'SUCCESS', info: '' }, 10);
    state.apply(++seq, gone.commit, 'h');
    expect(gone.next.state).toBe('REMOVED');
    expect(state.fileHolder(10, '/s/1', 99)).toBeUndefined();
    expect(state.fileHolder(10, '/s/2', 99)).toBe(2);
    // A snapshot loaded in its place replaces what the index knew.
    expect(state.loadSnapshot(JSON.stringify({ kind: 'image', seq: 99, hash: 'h', view: viewOf(register(3, 10).next) }))).toBe(true);
    expect(state.fileHolder(10, '/s/3', 99)).toBe(3);
    // An image of a partition held elsewhere still holds its files here.
    const other = new ResidentState();
    other.hold(() => false);
    other.apply(1, register(4, 10).commit, 'h');
    expect(other.isForeign(4)).toBe(true);
    expect(other.fileHolder(10, '/s/4', 99)).toBe(4);
  });
});
