/**
 * A manager keeps resident only the images of its partitions; of the others
 * it keeps what its indexes need, folded from their facts alone. Whatever an
 * image goes through, a manager that holds it and one that does not have the
 * same indexes (datastore counts, reservations, names, files a sweep must
 * leave), and an image given up and taken back is the image.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ResidentState } from '../../src/actors/resident-state.js';
import { decideImage, initialImage, type ImageAggregate } from '../../src/machines/image/decide.js';
import type { Commit } from '../../src/messages/wire.js';
import { eventsFor } from '../support/image-alphabet.js';
import { ADMIN } from '../support/fixtures.js';

/** Commits of image 5 for a run of events drawn from the alphabet (refused ones leave no commit). */
function commitsOf(picks: readonly number[]): { commits: Commit[]; agg: ImageAggregate } {
  let agg = initialImage(5);
  const commits: Commit[] = [];
  for (const pick of picks) {
    const events = eventsFor(agg);
    const ev = events[pick % events.length];
    if (!ev) continue;
    const d = decideImage(agg, ev);
    if (!d.ok) continue;
    agg = d.next;
    commits.push({ v: 1, aggregate: 'image', id: 5, commandId: ev.meta.commandId, correlationId: 'c', causationId: null, actor: ADMIN, at: ev.meta.at, prev: '', facts: [d.fact] });
  }
  return { commits, agg };
}

const indexes = (s: ResidentState) => ({
  members: [s.imagesIn(1), s.imagesIn(2)],
  reserved: [s.reservationsIn(1), s.reservationsIn(2)],
  names: s.imageNamed(ADMIN.uid, 'img') ?? s.imageNamed(0, 'img'),
  files: [[...s.namedFiles(1)].sort(), [...s.namedFiles(2)].sort()],
  last: s.lastSeq('image', 5),
});

describe('images of partitions a manager does not hold', () => {
  it('move the same indexes as resident ones, whatever the image goes through', () => {
    fc.assert(
      fc.property(fc.array(fc.nat(200), { maxLength: 40 }), (picks) => {
        const { commits } = commitsOf(picks);
        const holder = new ResidentState(() => 0);
        const other = new ResidentState(() => 0);
        other.hold(() => false);
        commits.forEach((c, i) => {
          holder.apply(i + 1, c, 'h');
          other.apply(i + 1, c, 'h');
        });
        expect(indexes(other)).toEqual(indexes(holder));
        expect(other.resident(5)).toBe(false);
        expect(other.image(5)).toBeUndefined();
        if (commits.length > 0) expect(other.isForeign(5)).toBe(true);
      }),
    );
  });

  it('given up, then taken back (with the commits that came meanwhile), is the image again', () => {
    fc.assert(
      fc.property(fc.array(fc.nat(200), { minLength: 1, maxLength: 40 }), fc.nat(40), (picks, cut) => {
        const { commits } = commitsOf(picks);
        if (commits.length === 0) return;
        const split = Math.min(cut, commits.length);
        const reference = new ResidentState(() => 0);
        const moving = new ResidentState(() => 0);
        commits.slice(0, split).forEach((c, i) => {
          reference.apply(i + 1, c, 'h');
          moving.apply(i + 1, c, 'h');
        });
        // The partition goes to another manager: the image is given up.
        moving.hold(() => false);
        moving.release(() => true);
        expect(moving.resident(5)).toBe(false);
        // It comes back: loaded as it stood at the cut, while later commits arrive and wait.
        const loaded = reference.residentImage(5);
        moving.hold(() => true);
        moving.beginAdopting([5]);
        commits.slice(split).forEach((c, i) => {
          reference.apply(split + i + 1, c, 'h');
          moving.apply(split + i + 1, c, 'h');
        });
        if (loaded) moving.adopt(5, loaded);
        else moving.abandon(5);
        expect(moving.image(5)).toEqual(reference.image(5));
        expect(indexes(moving)).toEqual(indexes(reference));
      }),
    );
  });

  it('a partition with a foreign image is named until the image is taken back, which its next checkpoint writes', () => {
    const { commits, agg } = commitsOf([0, 1, 2]);
    const other = new ResidentState(() => 0, (id) => id % 2);
    other.hold(() => false);
    commits.forEach((c, i) => other.apply(i + 1, c, 'h'));
    expect(other.residentImage(5)).toBeUndefined();
    expect([...other.foreignPartitions()]).toEqual([1]);
    other.takeDirty();
    other.hold(() => true);
    other.beginAdopting([5]);
    expect([...other.foreignPartitions()]).toEqual([1]);
    other.adopt(5, { agg, seq: commits.length, hash: 'x' });
    expect([...other.foreignPartitions()]).toEqual([]);
    expect(other.residentImage(5)?.agg).toEqual(agg);
    expect(other.takeDirty()).toEqual(['image.5']);
  });
});
