/**
 * Group commit of creations into one datastore: creations that queue while
 * a group commits form the next group; a creation joins a group only once its
 * image's earlier commands are done; a group is a turn of the datastore's
 * mailbox, so the datastore's other commands keep their order with it.
 */
import { describe, expect, it } from 'vitest';
import { AllocationGroups, type GroupMember } from '../../src/actors/allocation-groups.js';
import { Mailboxes } from '../../src/actors/mailbox.js';
import { CommandMessageSchema, type Outcome } from '../../src/messages/wire.js';
import { NO_LOOKUPS } from '../../src/actors/lookups.js';

const msg = (imageId: number) =>
  CommandMessageSchema.parse({
    envelope: { commandId: `c-${imageId}`, correlationId: `c-${imageId}`, causationId: null, actor: { uid: 0, gid: 0, name: 'oneadmin' }, at: 1 },
    command: { type: 'image.allocate', imageId, datastoreId: 7, template: { NAME: `i${imageId}`, PATH: '/p', SIZE: '1' } },
  });
const answer = (m: GroupMember): Outcome => ({ status: 'accepted', commandId: m.msg.envelope.commandId, aggregate: 'image', id: 0, fact: 'image.registered', state: 'LOCKED', seq: 1 });

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve = (): void => undefined;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

describe('allocation groups', () => {
  it('creations queued while a group commits are the next group, decided together', async () => {
    const boxes = new Mailboxes();
    const groups: number[][] = [];
    const gate = deferred();
    const g = new AllocationGroups(boxes, async (_ds, members) => {
      groups.push(members.map((m) => Number(m.msg.envelope.commandId.slice(2))));
      if (groups.length === 1) await gate.promise;
      for (const m of members) m.resolve(answer(m));
    });
    const first = g.submit('image.1', 7, msg(1), NO_LOOKUPS);
    await new Promise((r) => setImmediate(r));
    const rest = [2, 3, 4].map((id) => g.submit(`image.${id}`, 7, msg(id), NO_LOOKUPS));
    await new Promise((r) => setImmediate(r));
    expect(groups).toEqual([[1]]);
    gate.resolve();
    const outcomes = await Promise.all([first, ...rest]);
    expect(groups).toEqual([[1], [2, 3, 4]]);
    expect(outcomes.map((o) => o.commandId)).toEqual(['c-1', 'c-2', 'c-3', 'c-4']);
    expect(g.size).toBe(0);
  });

  it("a creation waits for its image's earlier commands before it joins a group, and the image's later ones wait for it", async () => {
    const boxes = new Mailboxes();
    const seen: string[] = [];
    const earlier = deferred();
    const g = new AllocationGroups(boxes, (_ds, members) => {
      seen.push(`group ${members.map((m) => m.msg.envelope.commandId).join(',')}`);
      for (const m of members) m.resolve(answer(m));
      return Promise.resolve();
    });
    const before = boxes.run('image.5', async () => {
      await earlier.promise;
      seen.push('earlier on image 5');
    });
    const five = g.submit('image.5', 7, msg(5), NO_LOOKUPS);
    const six = g.submit('image.6', 7, msg(6), NO_LOOKUPS);
    const after = boxes.run('image.5', () => {
      seen.push('later on image 5');
      return Promise.resolve();
    });
    await six;
    expect(seen).toEqual(['group c-6']);
    earlier.resolve();
    await Promise.all([before, five, after]);
    expect(seen).toEqual(['group c-6', 'earlier on image 5', 'group c-5', 'later on image 5']);
  });

  it("is a turn of the datastore's mailbox: the datastore's commands before and after keep their places", async () => {
    const boxes = new Mailboxes();
    const seen: string[] = [];
    const g = new AllocationGroups(boxes, (_ds, members) => {
      seen.push(`group of ${members.length}`);
      for (const m of members) m.resolve(answer(m));
      return Promise.resolve();
    });
    const gate = deferred();
    const before = boxes.run('datastore.7', async () => {
      await gate.promise;
      seen.push('datastore command before');
    });
    const creations = [1, 2].map((id) => g.submit(`image.${id}`, 7, msg(id), NO_LOOKUPS));
    await new Promise((r) => setImmediate(r));
    const after = boxes.run('datastore.7', () => {
      seen.push('datastore command after');
      return Promise.resolve();
    });
    gate.resolve();
    await Promise.all([before, ...creations, after]);
    expect(seen).toEqual(['datastore command before', 'group of 2', 'datastore command after']);
  });

  it('a group that fails fails each of its creations, and the next group still runs', async () => {
    const boxes = new Mailboxes();
    let calls = 0;
    const g = new AllocationGroups(boxes, (_ds, members) => {
      calls += 1;
      if (calls === 1) return Promise.reject(new Error('NATS went away'));
      for (const m of members) m.resolve(answer(m));
      return Promise.resolve();
    });
    await expect(g.submit('image.1', 7, msg(1), NO_LOOKUPS)).rejects.toThrow('NATS went away');
    await expect(g.submit('image.2', 7, msg(2), NO_LOOKUPS)).resolves.toMatchObject({ commandId: 'c-2' });
  });

  it('takes at most its limit into one group', async () => {
    const boxes = new Mailboxes();
    const sizes: number[] = [];
    const gate = deferred();
    const g = new AllocationGroups(
      boxes,
      async (_ds, members) => {
        sizes.push(members.length);
        if (sizes.length === 1) await gate.promise;
        for (const m of members) m.resolve(answer(m));
      },
      3,
    );
    const first = g.submit('image.0', 7, msg(0), NO_LOOKUPS);
    await new Promise((r) => setImmediate(r));
    const rest = Array.from({ length: 7 }, (_, i) => g.submit(`image.${i + 1}`, 7, msg(i + 1), NO_LOOKUPS));
    await new Promise((r) => setImmediate(r));
    gate.resolve();
    await Promise.all([first, ...rest]);
    expect(sizes).toEqual([1, 3, 3, 1]);
  });
});
