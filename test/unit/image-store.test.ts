/**
 * Idle images cost little memory (pool-size independence of the manager's
 * memory): an image unused for a while is kept as deflated snapshot text and
 * read back, unchanged, when it is used again; the host's indexes (names,
 * datastore counts, deadlines) never need an idle image read back.
 */
import { describe, expect, it } from 'vitest';
import { ImageStore } from '../../src/actors/image-store.js';
import { ResidentState, SNAPSHOT_SHAPE } from '../../src/actors/resident-state.js';
import { decideImage, initialImage, viewOf, type ImageAggregate } from '../../src/machines/image/decide.js';
import { decisionContext } from '../../src/machines/image/events.js';
import { ImageCommandSchema, type ImageCommandInput } from '../../src/messages/image-commands.js';
import type { Commit } from '../../src/messages/wire.js';
import { ADMIN, T0 } from '../support/fixtures.js';

const ds = { id: 10, name: 'ds10', type: 'IMAGE_DS' as const, dsMad: 'dummy', tmMad: 'shared', diskType: 'FILE', driver: '', persistentOnly: false, availableMb: 1000, bridgeList: '', keepLast: null };
let n = 0;
function step(agg: ImageAggregate, input: ImageCommandInput): { commit: Commit; next: ImageAggregate } {
  n += 1;
  const meta = { commandId: `s-${n}`, at: T0 + n, actor: ADMIN };
  const d = decideImage(agg, { ...ImageCommandSchema.parse(input), meta, ctx: decisionContext({ datastore: ds }) });
  if (!d.ok) throw new Error(d.rejection.message);
  return { commit: { v: 1, aggregate: 'image', id: agg.record.id, commandId: meta.commandId, correlationId: meta.commandId, causationId: null, actor: ADMIN, at: meta.at, prev: '', facts: [d.fact] }, next: d.next };
}
const copying = (id: number, sizeMb = 100) => step(initialImage(id), { type: 'image.allocate', imageId: id, datastoreId: 10, template: { NAME: `img-${id}`, PATH: `/tmp/${id}`, SIZE: String(sizeMb) } });
const ready = (id: number) => step(initialImage(id), { type: 'image.allocate', imageId: id, datastoreId: 10, template: { NAME: `img-${id}`, SOURCE: `/s/${id}`, FORMAT: 'raw', SIZE: '1' } });

describe('the image store', () => {
  it('packs an image idle long enough and reads it back unchanged', () => {
    const store = new ImageStore();
    const a = copying(1).next;
    store.set(1, a, 7, 'h'.repeat(64), 1_000);
    expect(store.compact(999, 10)).toBe(0);
    expect(store.compact(1_000, 10)).toBe(1);
    expect(store.hotCount).toBe(0);
    expect(store.peek(1)).toEqual({ view: viewOf(a), seq: 7, hash: 'h'.repeat(64) });
    // A peek reads it without making it hot; using it does.
    expect(store.hotCount).toBe(0);
    expect(store.hot(1, 2_000)).toEqual({ agg: a, seq: 7, hash: 'h'.repeat(64) });
    expect(store.hotCount).toBe(1);
  });

  it('packs the least recently used first, at most as many as asked, and never one used since', () => {
    const store = new ImageStore();
    for (const id of [1, 2, 3, 4]) store.set(id, ready(id).next, id, 'h', 100 + id);
    store.hot(1, 200);
    expect(store.compact(150, 2)).toBe(2);
    // 2 and 3 went first; 1 was used at 200.
    expect(store.compact(150, 10)).toBe(1);
    expect(store.hotCount).toBe(1);
    expect(store.peek(1)?.seq).toBe(1);
  });

  it('keeps a loaded snapshot idle until it is used, and what it was loaded from replaces what it held', () => {
    const store = new ImageStore();
    const a = ready(5).next;
    store.set(5, a, 1, 'old', 0);
    const later = step(a, { type: 'image.disable', imageId: 5 }).next;
    store.load(viewOf(later), 3, 'x');
    expect(store.hotCount).toBe(0);
    expect(store.hot(5, 1)).toEqual({ agg: later, seq: 3, hash: 'x' });
  });
});

describe('the resident state with idle images packed', () => {
  it('keeps names, datastore counts, reservations and deadlines through packing, reading back and snapshots', () => {
    let now = 0;
    const state = new ResidentState(() => now);
    const busy = copying(1, 300);
    state.apply(1, busy.commit, 'h1');
    state.apply(2, ready(2).commit, 'h2');
    const deadline = busy.next.record.pending?.deadline ?? 0;
    const indexes = () => ({
      members: state.imagesIn(10),
      reserved: state.reservationsIn(10),
      names: [state.imageNamed(ADMIN.uid, 'img-1'), state.imageNamed(ADMIN.uid, 'img-2')],
      due: [...state.deadlinesDue(deadline)].map((a) => a.record.id),
      notYet: [...state.deadlinesDue(deadline - 1)].length,
    });
    const expected = { members: 2, reserved: [{ imageId: 1, sizeMb: 300 }], names: [1, 2], due: [1], notYet: 0 };
    expect(indexes()).toEqual(expected);
    now = 60_000;
    expect(state.compact(30_000, 100)).toBe(2);
    expect(state.sizes.imagesHot).toBe(0);
    expect(indexes()).toEqual(expected);
    // The copy ends: folding reads the packed image back; the space and the deadline go.
    const done = step(busy.next, { type: 'driver.reply', imageId: 1, requestId: busy.next.record.pending?.requestId ?? '', action: 'CP', result: 'SUCCESS', info: '/d/1 raw' });
    state.apply(3, done.commit, 'h3');
    expect(state.image(1)).toEqual(viewOf(done.next));
    expect(indexes()).toEqual({ ...expected, reserved: [], due: [] });
    // A checkpoint's snapshot of a packed image loads into another state with the same indexes.
    now = 120_000;
    state.compact(30_000, 100);
    const other = new ResidentState(() => now);
    for (const key of ['image.1', 'image.2']) {
      const snap = state.snapshotOf(key);
      expect(snap && other.loadSnapshot(snap.text)).toBe(true);
    }
    expect(other.image(1)).toEqual(viewOf(done.next));
    expect([other.imagesIn(10), other.reservationsIn(10), other.imageNamed(ADMIN.uid, 'img-2'), other.lastSeq('image', 1)]).toEqual([2, [], 2, 3]);
  });

  it('loads a snapshot in this code\'s own shape as written, any other through the schema', () => {
    const state = new ResidentState(() => 0);
    state.apply(1, ready(3).commit, 'h');
    const snap = state.snapshotOf('image.3');
    if (!snap) throw new Error('no snapshot');
    const stored = JSON.parse(snap.text) as { shape: string; view: Record<string, unknown> };
    expect(stored.shape).toBe(SNAPSHOT_SHAPE);
    // A field the schema does not know survives only the fast path.
    const extra = (shape: string | undefined) => JSON.stringify({ ...stored, shape, view: { ...stored.view, retired: 1 } });
    const fast = new ResidentState(() => 0);
    expect(fast.loadSnapshot(extra(SNAPSHOT_SHAPE))).toBe(true);
    expect(fast.image(3)).toHaveProperty('retired', 1);
    const checked = new ResidentState(() => 0);
    expect(checked.loadSnapshot(extra('older'))).toBe(true);
    expect(checked.image(3)).not.toHaveProperty('retired');
    expect(checked.image(3)).toEqual(state.image(3));
    // A broken one with this code's shape is still refused.
    expect(new ResidentState(() => 0).loadSnapshot(JSON.stringify({ ...stored, seq: 'x' }))).toBe(false);
  });
});
