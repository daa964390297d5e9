/**
 * Identity only within its grant: nobody reaches gid 0 (the administrators'
 * group) or uid 0 (oneadmin) without `admin`, and `admin` is exactly gid 0;
 * a delegate vouches only for the uids and gids it was granted, and for
 * uid 0 or gid 0 only if it is an administrator itself; the VM service's
 * grant comes from the authenticated principal, never from the message.
 */
import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { actorOf } from '../../src/intake/grants.js';
import { parseCommandMessage } from '../../src/intake/intake.js';
import { PrincipalSchema, readPrincipals, parseRanges, type Principal } from '../../src/platform/principals.js';
import { loadPrincipals } from '../../src/platform/principals-file.js';
import type { Actor } from '../../src/messages/envelope.js';

const principal = (p: Partial<Principal> & Pick<Principal, 'uid' | 'gid'>): Principal => ({ admin: false, delegate: false, uids: [], gids: [], vmService: false, ...p });
const PORTAL = principal({ uid: 10, gid: 100, delegate: true, uids: [[1000, 1999]], gids: [[100, 199]] });
const SERVICE = principal({ uid: 0, gid: 0, admin: true, delegate: true, uids: [[0, 99_999]], gids: [[0, 99_999]] });
const claim = (uid: number, gid: number, name = 'carol'): Actor => ({ uid, gid, name, service: 'whatever' });

describe('the principals schema: gid 0 and admin agree', () => {
  it.each([
    [{ uid: 5, gid: 0 }, "gid 0 is the administrators' group: only a principal added with --admin (admin: true) is in it"],
    [{ uid: 5, gid: 100, admin: true }, "admin means membership of the administrators' group: its gid must be 0, not 100"],
    [{ uid: 0, gid: 100 }, 'uid 0 is oneadmin: only an administrator (admin: true) may be it'],
    [{ uid: 5, gid: 100, uids: [[1, 9]] }, 'uids and gids are the grant of a delegate: it needs delegate: true (--delegate)'],
    [{ uid: 5, gid: 100, delegate: true, uids: [[1000, 1999]], gids: [[0, 199]] }, 'only an administrator may vouch for uid 0 or gid 0: its grant must leave them out'],
    [{ uid: 5, gid: 100, delegate: true, uids: [[0, 1999]], gids: [[100, 199]] }, 'only an administrator may vouch for uid 0 or gid 0: its grant must leave them out'],
  ])('%o is refused', (entry, why) => {
    const r = PrincipalSchema.safeParse(entry);
    expect(r.success).toBe(false);
    expect(r.error?.issues.map((i) => i.message)).toEqual([why]);
  });

  it('consistent entries pass; an entry written before grants existed has none', () => {
    expect(PrincipalSchema.parse({ uid: 0, gid: 0, admin: true })).toEqual({ uid: 0, gid: 0, admin: true, delegate: false, uids: [], gids: [], vmService: false });
    expect(PrincipalSchema.parse({ uid: 10, gid: 100, delegate: true })).toMatchObject({ uids: [], gids: [] });
    expect(PrincipalSchema.parse({ uid: 0, gid: 0, admin: true, delegate: true, uids: [[0, 10]], gids: [[0, 10]] })).toMatchObject({ uids: [[0, 10]] });
  });

  it('ranges as the CLI takes them', () => {
    expect(parseRanges('1000-1999,3000')).toEqual([[1000, 1999], [3000, 3000]]);
    for (const bad of ['9-1', '', 'a-b', '1-', '-1', '1--2']) expect(parseRanges(bad), bad).toBeUndefined();
  });

  it('a registry is read entry by entry: an inconsistent entry is refused with why, the others stand', () => {
    const read = readPrincipals({ oneadmin: { uid: 0, gid: 0, admin: true }, eve: { uid: 11, gid: 0, admin: false }, bob: { uid: 8, gid: 100 } });
    expect(Object.keys(read?.principals ?? {})).toEqual(['oneadmin', 'bob']);
    expect(read?.refused).toEqual({ eve: "gid 0 is the administrators' group: only a principal added with --admin (admin: true) is in it" });
    expect(readPrincipals('nonsense')).toBeUndefined();
  });

  it('a principals file with such an entry is refused by name, unless that entry is the one being replaced', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'imgr-principals-')), 'principals.json');
    writeFileSync(file, JSON.stringify({ oneadmin: { uid: 0, gid: 0, admin: true }, eve: { uid: 11, gid: 100, admin: true } }));
    expect(() => loadPrincipals(file)).toThrow(`${file}: principal eve: admin means membership of the administrators' group: its gid must be 0, not 100. Fix the entry in the file, or replace it`);
    expect(Object.keys(loadPrincipals(file, { replacing: 'eve' }))).toEqual(['oneadmin']);
  });
});

describe('actorOf: who a command is from', () => {
  it('a principal that does not delegate acts only as itself', () => {
    const alice = principal({ uid: 7, gid: 100, uname: 'alice' });
    expect(actorOf('alice', alice, claim(7, 100, 'whoever'))).toEqual({ ok: true, actor: { uid: 7, gid: 100, name: 'alice', service: 'alice' } });
    expect(actorOf('alice', alice, claim(0, 0, 'oneadmin'))).toEqual({ ok: false, rejection: { code: 'CMD_ERR_ACTOR', message: 'Actor oneadmin (uid 0, gid 0) is not the authenticated principal alice' } });
  });

  it('a delegate acts for users inside its grant; the record names the delegate', () => {
    expect(actorOf('portal', PORTAL, claim(1500, 150))).toEqual({ ok: true, actor: { uid: 1500, gid: 150, name: 'carol', service: 'portal' } });
    expect(actorOf('portal', PORTAL, claim(10, 100, 'portal'))).toMatchObject({ ok: true, actor: { uid: 10, gid: 100 } });
  });

  it('the attack: a delegate that is not an administrator claims "carol, gid 0" and is refused, naming its grant', () => {
    expect(actorOf('portal', PORTAL, claim(1500, 0))).toEqual({
      ok: false,
      rejection: { code: 'CMD_ERR_ACTOR_GRANT', message: 'Actor carol (uid 1500, gid 0) is outside the grant of principal portal: it may act for uids 1000-1999 in gids 100-199, and never for uid 0 or gid 0 (it is not an administrator)' },
    });
    expect(actorOf('portal', PORTAL, claim(0, 150, 'oneadmin'))).toMatchObject({ ok: false, rejection: { code: 'CMD_ERR_ACTOR_GRANT' } });
    // Even with a grant that (against the schema) covers 0: group 0 is an administrator's to vouch for.
    const loose: Principal = { ...PORTAL, uids: [[0, 1999]], gids: [[0, 199]] };
    expect(actorOf('portal', loose, claim(1500, 0))).toMatchObject({ ok: false, rejection: { code: 'CMD_ERR_ACTOR_GRANT' } });
  });

  it('a claim outside the ranges is refused', () => {
    const r = actorOf('portal', PORTAL, claim(2000, 150));
    expect(!r.ok && r.rejection.message).toBe('Actor carol (uid 2000, gid 150) is outside the grant of principal portal: it may act for uids 1000-1999 in gids 100-199, and never for uid 0 or gid 0 (it is not an administrator)');
    expect(actorOf('portal', PORTAL, claim(1500, 200))).toMatchObject({ ok: false, rejection: { code: 'CMD_ERR_ACTOR_GRANT' } });
  });

  it('a delegate granted nothing vouches for nobody but itself', () => {
    const bare = principal({ uid: 10, gid: 100, delegate: true });
    expect(actorOf('portal', bare, claim(10, 100, 'portal'))).toMatchObject({ ok: true });
    expect(actorOf('portal', bare, claim(11, 100))).toEqual({ ok: false, rejection: { code: 'CMD_ERR_ACTOR_GRANT', message: 'Actor carol (uid 11, gid 100) is outside the grant of principal portal: it was granted no users (it acts only as itself), and never for uid 0 or gid 0 (it is not an administrator)' } });
  });

  it('an administrator that delegates vouches for group 0 within its ranges', () => {
    expect(actorOf('service', SERVICE, claim(0, 0, 'oneadmin'))).toMatchObject({ ok: true, actor: { uid: 0, gid: 0 } });
    expect(actorOf('service', SERVICE, claim(100_000, 0))).toMatchObject({ ok: false, rejection: { code: 'CMD_ERR_ACTOR_GRANT' } });
  });

  it('the VM service grant comes from the principal alone: a message that claims it gets nothing', () => {
    const forged = { ...claim(1500, 150), vmService: true };
    const r = actorOf('portal', PORTAL, forged);
    expect(r.ok && r.actor).toEqual({ uid: 1500, gid: 150, name: 'carol', service: 'portal' });
    expect(actorOf('scheduler', { ...PORTAL, vmService: true }, claim(1500, 150))).toMatchObject({ ok: true, actor: { vmService: true, service: 'scheduler' } });
  });
});

describe('parseCommandMessage: the grant applies to what arrives', () => {
  const message = (actor: Actor) =>
    JSON.stringify({
      envelope: { commandId: 'c-1', correlationId: 'c-1', causationId: null, actor, at: 1 },
      command: { type: 'datastore.create', datastoreId: 77, template: { NAME: 'root', DS_MAD: 'fs', TM_MAD: 'shared', SAFE_DIRS: '/' } },
      replyTo: null,
    });

  it('"carol, gid 0" through a delegate that is not an administrator never reaches the machine', () => {
    const parsed = parseCommandMessage('imgr.cmd.portal.datastore.77', message(claim(1500, 0)), 'public', undefined, () => PORTAL);
    expect(parsed).toMatchObject({ ok: false, rejection: { code: 'CMD_ERR_ACTOR_GRANT' } });
  });

  it('the authenticated actor carries the VM grant only from the principal', () => {
    const forged = parseCommandMessage('imgr.cmd.portal.datastore.77', message({ ...claim(1500, 150), vmService: true }), 'public', undefined, () => PORTAL);
    expect(forged.ok && forged.message.envelope.actor).toEqual({ uid: 1500, gid: 150, name: 'carol', service: 'portal' });
  });

  it('a principal whose registry entry is refused is refused, with why', () => {
    const parsed = parseCommandMessage('imgr.cmd.eve.datastore.77', message(claim(11, 0, 'eve')), 'public', undefined, () => ({ refused: "gid 0 is the administrators' group" }));
    expect(parsed).toMatchObject({ ok: false, rejection: { code: 'CMD_ERR_PRINCIPAL_REFUSED', message: "Principal eve is refused by imgr: gid 0 is the administrators' group" } });
  });
});
