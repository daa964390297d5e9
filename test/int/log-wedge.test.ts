/**
 * The log cannot wedge an aggregate. A message on an aggregate's subject
 * that is no commit (`null`, as an answer once wrote there for a read-only
 * asker; any other junk) cannot be removed: the log is immutable. It is
 * counted as a step of the aggregate's sequence, parked once by each
 * reactor for an operator to see, and the aggregate's commands go on being
 * decided: before, every next command of that image conflicted until its
 * retries ran out (ConflictsExhaustedError … 20 tries), for ever.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstream } from '@nats-io/jetstream';
import { startSystem, type TestSystem } from '../support/system.js';
import { eventually } from '../support/eventually.js';
import { subjects } from '../../src/messages/wire.js';
import { listParked } from '../../src/audit/parked.js';

let sys: TestSystem;
let ds: number;
beforeAll(async () => {
  sys = await startSystem();
  ds = await sys.admin.nextId('datastore');
  await sys.admin.send({ type: 'datastore.create', datastoreId: ds, template: { NAME: 'wedge', DS_MAD: 'dummy', TM_MAD: 'dummy' } });
});
afterAll(async () => sys.stop());

/** Appends junk where only imgr's manager may write (the one way left for it to get there). */
async function junk(subject: string, body: string): Promise<number> {
  return (await jetstream(await sys.nats.connect('manager')).publish(subject, body)).seq;
}

describe('an unreadable message on an aggregate subject', () => {
  it.each([
    ['null', 'null'],
    ['not JSON', '{"facts": ['],
    ['a commit of another aggregate', JSON.stringify({ aggregate: 'datastore', id: 1, facts: [] })],
  ])('(%s) is a step of the image, and its next commands are decided', async (_what, body) => {
    const id = await sys.admin.nextId('image');
    await sys.admin.send({ type: 'image.allocate', imageId: id, datastoreId: ds, template: { NAME: `w-${id}`, PATH: '/tmp/x', SIZE: '1' } });
    await eventually(() => sys.manager.host.image(id)?.state === 'READY', 'READY');
    const seq = await junk(subjects.event('image', id), body);
    // Whether the tail or the conflict's catch-up reads it first, the next command lands.
    const disabled = await sys.admin.send({ type: 'image.disable', imageId: id }, { timeoutMs: 10_000 });
    expect(disabled).toMatchObject({ status: 'accepted', state: 'DISABLED' });
    expect((await sys.admin.send({ type: 'image.enable', imageId: id })).status).toBe('accepted');
    expect(sys.manager.host.image(id)?.state).toBe('READY');
    // Parked once by each reactor, with why.
    const parked = await eventually(async () => {
      const p = (await listParked(await sys.nats.connect('auditor'))).filter((x) => x.seq === seq);
      return p.length >= 2 ? p : false;
    }, 'the unreadable message parked');
    expect(parked.map((p) => p.reactor).sort()).toEqual(['imgr-dispatch', 'imgr-process']);
    expect(parked.every((p) => p.error.startsWith('unreadable commit:') && p.subject === subjects.event('image', id))).toBe(true);
  });

  it('on a datastore is a step too', async () => {
    const other = await sys.admin.nextId('datastore');
    await sys.admin.send({ type: 'datastore.create', datastoreId: other, template: { NAME: `wedge-${other}`, DS_MAD: 'dummy', TM_MAD: 'dummy' } });
    await junk(subjects.event('datastore', other), 'null');
    expect(await sys.admin.send({ type: 'datastore.delete', datastoreId: other }, { timeoutMs: 10_000 })).toMatchObject({ status: 'accepted' });
  });

  it('before an image exists does not stop its creation', async () => {
    const id = await sys.admin.nextId('image');
    await junk(subjects.event('image', id), 'null');
    await sys.admin.send({ type: 'image.allocate', imageId: id, datastoreId: ds, template: { NAME: `w-${id}`, PATH: '/tmp/x', SIZE: '1' } });
    await eventually(() => sys.manager.host.image(id)?.state === 'READY', 'READY');
  });

});
