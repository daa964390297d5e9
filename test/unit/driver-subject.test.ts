/**
 * The driver hosts' subject (imgr.drv-reply.<kind>.<id>): the intake takes
 * from it only driver replies and reports, as a fixed system actor, answered
 * only on the driver hosts' own inbox. Every command type the schema knows is
 * tried, so a type added later is refused there unless it is added on purpose.
 */
import { describe, expect, it } from 'vitest';
import { parseCommandMessage } from '../../src/intake/intake.js';
import { CommandSchema, DRIVER_ACTOR, DRIVER_COMMANDS, subjects } from '../../src/messages/wire.js';

/** What a driver host may send, written out: changing it is a decision, not a side effect. */
const ALLOWED = ['datastore.monitored', 'datastore.swept', 'driver.log', 'driver.reply'];

const ALL_TYPES = CommandSchema.options.map((o) => o.shape.type.value);
const mallory = { uid: 5, gid: 0, name: 'mallory', service: 'evil' };
const envelope = (commandId = 'imgr.reply-r1') => ({ commandId, correlationId: commandId, causationId: null, actor: mallory, at: 1 });
const reply = { type: 'driver.reply', imageId: 1, requestId: 'r1', action: 'CP', result: 'SUCCESS', info: '/srv/x raw' };
const parse = (subject: string, body: unknown) => parseCommandMessage(subject, JSON.stringify(body), 'internal');

describe("the driver hosts' subject", () => {
  it('allows exactly the driver replies and reports', () => {
    expect([...DRIVER_COMMANDS].sort()).toEqual(ALLOWED);
  });

  it('refuses every other command type the schema knows, before reading the rest of it', () => {
    expect(ALL_TYPES.length).toBeGreaterThan(20);
    for (const type of ALL_TYPES) {
      const r = parse(subjects.driverReply('image', 1), { envelope: envelope(), command: { type, imageId: 1, datastoreId: 1 }, replyTo: null });
      if (ALLOWED.includes(type)) expect(r.ok ? 'accepted' : r.rejection.code, type).not.toBe('CMD_ERR_NOT_DRIVER');
      else expect(r, type).toMatchObject({ ok: false, rejection: { code: 'CMD_ERR_NOT_DRIVER' } });
    }
    // A type nobody knows yet is refused as well.
    expect(parse(subjects.driverReply('image', 1), { envelope: envelope(), command: { type: 'image.grantAdmin', imageId: 1 } })).toMatchObject({ ok: false, rejection: { code: 'CMD_ERR_NOT_DRIVER' } });
  });

  it('takes a driver reply as the fixed system actor, whatever actor the message names', () => {
    const r = parse(subjects.driverReply('image', 1), { envelope: envelope(), command: reply, replyTo: null });
    if (!r.ok) throw new Error(r.rejection.message);
    expect(r.message.envelope.actor).toEqual(DRIVER_ACTOR);
  });

  it('answers only on the driver hosts\' own inbox: another role\'s inbox is refused and never answered', () => {
    const r = parse(subjects.driverReply('image', 1), { envelope: envelope(), command: reply, replyTo: '_INBOX.manager.stat.1' });
    expect(r).toMatchObject({ ok: false, rejection: { code: 'CMD_ERR_REPLY_TO' } });
    if (!r.ok) expect(r.partial.replyTo ?? null).toBeNull();
    const refused = parse(subjects.driverReply('image', 1), { envelope: envelope(), command: { type: 'image.delete', imageId: 1 }, replyTo: '_INBOX.manager.stat.1' });
    if (!refused.ok) expect(refused.partial.replyTo ?? null).toBeNull();
    expect(parse(subjects.driverReply('image', 1), { envelope: envelope(), command: reply, replyTo: '_INBOX.drivers.x.1' })).toMatchObject({ ok: true });
  });

  it("names its aggregate, and keeps imgr's reserved ids", () => {
    expect(parse(subjects.driverReply('image', 2), { envelope: envelope(), command: reply })).toMatchObject({ ok: false, rejection: { code: 'CMD_ERR_SUBJECT' } });
    expect(parse(subjects.driverReply('image', 1), { envelope: envelope('not-reserved'), command: reply })).toMatchObject({ ok: false, rejection: { code: 'CMD_ERR_SUBJECT' } });
  });

  it("leaves the manager's own subject as it was: any internal command, with its actor", () => {
    const r = parse(subjects.internal('image', 1), { envelope: envelope('imgr.clone-1'), command: { type: 'image.cloneStart', imageId: 1, clone: { kind: 'image', id: 2 } } });
    if (!r.ok) throw new Error(r.rejection.message);
    expect(r.message.envelope.actor).toEqual(mallory);
  });
});
