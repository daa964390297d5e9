/**
 * Whole operations decided by the machines: what a clone or a creation asks
 * of other aggregates in the same commit (joined effects), when a reservation
 * ends, what a BACKUP or RESTORE reply means, and when a chain is flattened.
 */
import { describe, expect, it } from 'vitest';
import { DS_FOLDER, event, given, history, replay } from '../support/image-spec.js';
import { allocateBackup, registerReady } from '../support/image-states.js';
import { ADMIN, BACKUP_DS, IMAGE_DS, USER } from '../support/fixtures.js';
import type { DatastoreInfo } from '../../src/messages/datastore-info.js';
import type { ImageFact } from '../../src/messages/image-facts.js';
import { joinedCommand, followUpCommand } from '../../src/machines/effect-commands.js';
import { isJoined } from '../../src/messages/effects.js';

const ID = 5;
const ORIGIN = 3;
const ROOMY: DatastoreInfo = { ...IMAGE_DS, availableMb: 1000 };
const allocate = (template: Record<string, string>, datastore: DatastoreInfo = ROOMY, o: { skip?: boolean; admin?: boolean } = {}) =>
  event(
    { type: 'image.allocate', imageId: ID, datastoreId: datastore.id, template, skipCapacityCheck: o.skip ?? false },
    { ctx: { datastore }, actor: o.admin === false ? USER : ADMIN },
  );
const kinds = (f: ImageFact) => f.effects.map((e) => e.kind);

describe('§13.1 capacity on every allocation (W38)', () => {
  it('given 1,000 MB available, when a 1,001 MB disk is registered, then Not enough space in datastore', () =>
    given([], ID).when(allocate({ NAME: 'big', PATH: '/tmp/a', SIZE: '1001' })).thenRejects('DS_ERR_NO_SPACE', 'Not enough space in datastore'));
  it('given a size learnt by STAT, the STAT size is what is checked', () =>
    given([], ID)
      .when(event({ type: 'image.allocate', imageId: ID, datastoreId: 1, template: { NAME: 'statted', PATH: '/tmp/a' } }, { ctx: { datastore: { ...ROOMY, availableMb: 5 }, statSizeMb: 6 } }))
      .thenRejects('DS_ERR_NO_SPACE', 'Not enough space in datastore'));
  it('given no monitor yet or the check off (availableMb null), nothing is refused and nothing reserved', () => {
    const f = given([], ID).when(allocate({ NAME: 'free', PATH: '/tmp/a', SIZE: '999999' }, IMAGE_DS)).thenState('LOCKED');
    expect(kinds(f)).not.toContain('datastore.reserveSpace');
    expect(f.changes.reservedMb).toBe(0);
  });
  it('when a copy starts, its space is reserved in the same commit (a joined effect) and recorded on the image', () => {
    const f = given([], ID).when(allocate({ NAME: 'sized', PATH: '/tmp/a', SIZE: '800' })).thenState('LOCKED');
    const reserve = f.effects.find((e) => e.kind === 'datastore.reserveSpace');
    expect(reserve).toEqual({ kind: 'datastore.reserveSpace', datastoreId: 1, imageId: ID, sizeMb: 800, skipCapacityCheck: false });
    expect(reserve && isJoined(reserve) && joinedCommand(reserve)).toMatchObject({ type: 'datastore.reserve', datastoreId: 1, imageId: ID, sizeMb: 800 });
    expect(f.changes.reservedMb).toBe(800);
  });
  it('a SOURCE registration (READY at once) is checked but holds nothing', () => {
    given([], ID).when(allocate({ NAME: 'pre', SOURCE: '/d/pre', FORMAT: 'raw', SIZE: '2000' })).thenRejects('DS_ERR_NO_SPACE', 'Not enough space in datastore');
    const f = given([], ID).when(allocate({ NAME: 'pre', SOURCE: '/d/pre', FORMAT: 'raw', SIZE: '20' })).thenState('READY');
    expect(kinds(f)).not.toContain('datastore.reserveSpace');
  });
  it('an administrator may skip the check (the reservation says so); anybody else is refused', () => {
    const f = given([], ID).when(allocate({ NAME: 'skip', PATH: '/tmp/a', SIZE: '5000' }, ROOMY, { skip: true })).thenState('LOCKED');
    expect(f.effects).toContainEqual(expect.objectContaining({ kind: 'datastore.reserveSpace', skipCapacityCheck: true }));
    given([], ID)
      .when(allocate({ NAME: 'skip', PATH: '/tmp/a', SIZE: '5' }, ROOMY, { skip: true, admin: false }))
      .thenRejects('AUTH_ERR_SKIP_CAPACITY', 'User [7] : Not authorized to skip the datastore capacity check.');
  });
});

describe('a reservation ends when its creation does', () => {
  const locked = () => history(ID, allocate({ NAME: 'sized', PATH: '/tmp/a', SIZE: '800' }));
  const requestId = (facts: ImageFact[]) => replay(facts)?.pending?.requestId ?? '';
  const reply = (facts: ImageFact[], result: 'SUCCESS' | 'FAILURE') =>
    event({ type: 'driver.reply', imageId: ID, requestId: requestId(facts), action: 'CP', result, info: result === 'SUCCESS' ? '/ds/1/s raw' : 'no' });
  for (const [how, ev, state] of [
    ['the copy succeeds', (f: ImageFact[]) => reply(f, 'SUCCESS'), 'READY'],
    ['the copy fails', (f: ImageFact[]) => reply(f, 'FAILURE'), 'ERROR'],
    ['the copy times out', (f: ImageFact[]) => event({ type: 'driver.timeout', imageId: ID, requestId: requestId(f) }), 'ERROR'],
  ] as const) {
    it(`when ${how}, the fact gives the space back (→ ${state}) in itself: no follow-up on the datastore`, () => {
      const facts = locked();
      const f = given(facts).when(ev(facts)).thenState(state);
      expect(f.changes.reservedMb).toBe(0);
      expect(kinds(f)).not.toContain('datastore.releaseSpace');
      expect(replay([...facts, f])?.reservedMb).toBe(0);
    });
  }
  it('the image holds the space for as long as it stays LOCKED', () => {
    const facts = locked();
    expect(replay(facts)).toMatchObject({ state: 'LOCKED', reservedMb: 800 });
  });
  it('a later fact of the image gives nothing back twice', () => {
    const facts = locked();
    const ready = given(facts).when(reply(facts, 'SUCCESS')).thenState('READY');
    const f = given([...facts, ready]).when(event({ type: 'image.disable', imageId: ID })).thenState('DISABLED');
    expect(f.changes.reservedMb).toBeUndefined();
  });
  it('an earlier version\'s release effect still maps to its settle command (commits of older logs)', () =>
    expect(followUpCommand({ kind: 'datastore.releaseSpace', datastoreId: 1, imageId: ID })?.command).toEqual({ type: 'datastore.settle', datastoreId: 1, imageId: ID }));
});

describe('§7.4 clone as one operation', () => {
  const origin = (o: Parameters<typeof registerReady>[0] = {}) => replay(history(ORIGIN, registerReady({ id: ORIGIN, ...o })));
  const clone = (datastore: DatastoreInfo, originView = origin()) =>
    given([], ID).when(event({ type: 'image.clone', imageId: ID, originId: ORIGIN, name: 'copy', datastoreId: datastore.id }, { ctx: { datastore, origin: originView } }));
  it('the new image asks, in the same commit, for its origin to be held and its space to be reserved', () => {
    const f = clone(ROOMY).thenState('LOCKED');
    const hold = f.effects.find((e) => e.kind === 'image.holdCloneSource');
    expect(hold).toEqual({ kind: 'image.holdCloneSource', originId: ORIGIN, clone: { kind: 'image', id: ID } });
    expect(hold && isJoined(hold) && joinedCommand(hold)).toEqual({ type: 'image.cloneStart', imageId: ORIGIN, clone: { kind: 'image', id: ID } });
    expect(f.effects).toContainEqual(expect.objectContaining({ kind: 'datastore.reserveSpace', sizeMb: 10 }));
  });
  it('§7.4 step 7: the target must have room for the origin size', () =>
    clone({ ...ROOMY, availableMb: 9 }).thenRejects('DS_ERR_NO_SPACE', 'Not enough space in datastore'));
  for (const state of ['DISABLED', 'USED_PERS', 'ERROR', 'LOCKED'] as const) {
    it(`§7.4 step 10: an origin in ${state} is refused with the state named`, () => {
      const o = origin();
      clone(ROOMY, o && { ...o, state }).thenRejects('IMG_ERR_CLONE_STATE', `Cannot clone image in state: ${state}`);
    });
  }
});

describe('BACKUP and RESTORE replies, decided by the image they read', () => {
  const backupCmd = (chain: boolean) =>
    event({ type: 'image.backup', imageId: ID, backupDatastoreId: 100, backupImageId: 9, vmId: 4, incremental: true, chain }, { ctx: { datastore: BACKUP_DS }, commandId: `backup-${chain}` });
  const source = () => history(ID, registerReady({ format: 'qcow2' }), backupCmd(false));
  const reply = (action: 'BACKUP' | 'RESTORE', result: 'SUCCESS' | 'FAILURE', info: string, requestId = 'backup-false') =>
    event({ type: 'driver.reply', imageId: ID, requestId, action, result, info });

  it('a backup request is a job on the image, which stays as it was', () => {
    const facts = source();
    expect(replay(facts)?.jobs).toEqual([expect.objectContaining({ action: 'BACKUP', backupImageId: 9, chain: false, incremental: true, vmId: 4 })]);
    expect(replay(facts)?.state).toBe('READY');
  });
  it('its SUCCESS creates the backup image (an effect the process manager turns into image.allocateBackup)', () => {
    const f = given(source()).when(reply('BACKUP', 'SUCCESS', 'bk-1 64 raw')).then({ type: 'image.backedUp', state: 'READY' });
    expect(f.changes.jobs).toEqual([]);
    const [effect] = f.effects;
    expect(effect).toMatchObject({ kind: 'image.createBackup', imageId: 9, datastoreId: 100, vmId: 4, source: 'bk-1', sizeMb: 64, format: 'raw', incremental: true });
    expect(effect && followUpCommand(effect)?.command).toMatchObject({ type: 'image.allocateBackup', imageId: 9, source: 'bk-1' });
  });
  it('in a chain, the SUCCESS extends the backup image instead', () => {
    const facts = history(ID, registerReady(), backupCmd(true));
    const f = given(facts).when(reply('BACKUP', 'SUCCESS', 'bk-2 8 raw', 'backup-true')).then({ type: 'image.backedUp' });
    expect(f.effects).toEqual([{ kind: 'image.extendBackup', imageId: 9, source: 'bk-2', sizeMb: 8 }]);
  });
  it('a FAILURE, a malformed success or a timeout ends the job with nothing created', () => {
    given(source()).when(reply('BACKUP', 'FAILURE', 'disk full')).then({ type: 'image.jobFailed', effects: [], detail: { reason: 'disk full', action: 'BACKUP' } });
    given(source()).when(reply('BACKUP', 'SUCCESS', 'only-a-path')).then({ type: 'image.jobFailed', effects: [] });
    given(source()).when(event({ type: 'driver.timeout', imageId: ID, requestId: 'backup-false' })).then({ type: 'image.jobFailed', effects: [] });
  });
  it('a reply for no job of the image is ignored', () =>
    given(source()).when(reply('BACKUP', 'SUCCESS', 'x 1 raw', 'someone-else')).then({ type: 'image.replyIgnored', effects: [] }));

  const backupImage = () => history(ID, allocateBackup({ source: 'b', diskIds: [0, 1], owner: { uid: 7, gid: 100, uname: 'alice', gname: 'users' } }));
  const restoreCmd = event({ type: 'image.restore', imageId: ID, datastoreId: 1, options: { name: 'back' } }, { ctx: { datastore: IMAGE_DS }, actor: USER, commandId: 'restore-1' });
  // A restore stages its disks in <BASE_PATH>/.restore/<request> of the backup datastore.
  const staged = `${DS_FOLDER}/.restore/restore-1`;
  it('a RESTORE SUCCESS registers each printed disk under the ids the host took, as the user who restored', () => {
    const facts = [...backupImage(), given(backupImage()).when(restoreCmd).then({ type: 'image.restoreRequested' })];
    const ev = event(
      { type: 'driver.reply', imageId: ID, requestId: restoreCmd.meta.commandId, action: 'RESTORE', result: 'SUCCESS', info: `${staged}/disk0:64 ${staged}/disk1:8` },
      { ctx: { newImageIds: [40, 41] } },
    );
    const f = given(facts).when(ev).then({ type: 'image.restored', state: 'READY', detail: { images: '40 41' } });
    expect(f.effects).toEqual([
      { kind: 'image.registerRestored', imageId: 40, datastoreId: 1, template: { NAME: 'back-disk-0', PATH: `${staged}/disk0`, SIZE: '64', TYPE: 'OS', FROM_BACKUP_DS: '100' }, owner: { uid: 7, gid: 100, name: 'alice' } },
      { kind: 'image.registerRestored', imageId: 41, datastoreId: 1, template: { NAME: 'back-disk-1', PATH: `${staged}/disk1`, SIZE: '8', TYPE: 'DATABLOCK', FROM_BACKUP_DS: '100' }, owner: { uid: 7, gid: 100, name: 'alice' } },
    ]);
    const first = f.effects[0];
    expect(first && followUpCommand(first)).toMatchObject({ command: { type: 'image.allocate', imageId: 40, datastoreId: 1 }, actor: { uid: 7, gid: 100, name: 'alice' } });
    // Answered: the same reply again matches no job, so it can never create twice.
    given([...facts, f]).when(ev).then({ type: 'image.replyIgnored', effects: [] });
  });
  it('#27: a restored disk outside its restore\'s staging folder (another image\'s SOURCE, a host file) registers nothing', () => {
    const facts = [...backupImage(), given(backupImage()).when(restoreCmd).then({ type: 'image.restoreRequested' })];
    for (const file of [`${DS_FOLDER}/alice`, '/etc/shadow', `${DS_FOLDER}/.restore/other/disk0`, `${staged}/../../alice`, `${staged}/sub/disk0`]) {
      const ev = event({ type: 'driver.reply', imageId: ID, requestId: restoreCmd.meta.commandId, action: 'RESTORE', result: 'SUCCESS', info: `${staged}/disk0:1 ${file}:1` }, { ctx: { newImageIds: [40, 41] } });
      const f = given(facts).when(ev).then({ type: 'image.jobFailed', effects: [] });
      expect(f.detail['reason'], file).toContain('is not a file of its staging folder');
    }
  });
  it('without ids for every disk, the restore fails instead of guessing', () => {
    const facts = [...backupImage(), given(backupImage()).when(restoreCmd).then({ type: 'image.restoreRequested' })];
    given(facts)
      .when(event({ type: 'driver.reply', imageId: ID, requestId: restoreCmd.meta.commandId, action: 'RESTORE', result: 'SUCCESS', info: `${staged}/d0:1 ${staged}/d1:1` }, { ctx: { newImageIds: [40] } }))
      .then({ type: 'image.jobFailed', effects: [] });
  });
});

describe('§7.3 KEEP_LAST is the machine\'s rule', () => {
  const chain = (datastore: DatastoreInfo, increments: number) => {
    const steps = [allocateBackup({ source: 'b0' })];
    for (let i = 1; i < increments; i++) steps.push(event({ type: 'image.addIncrement', imageId: ID, source: `b${i}`, sizeMb: 1 }, { ctx: { datastore } }));
    return history(ID, ...steps);
  };
  const keep2: DatastoreInfo = { ...BACKUP_DS, keepLast: 2 };
  it('an increment that makes the chain longer than KEEP_LAST asks for a flatten down to it', () => {
    const f = given(chain(keep2, 2)).when(event({ type: 'image.addIncrement', imageId: ID, source: 'b2', sizeMb: 1 }, { ctx: { datastore: keep2 } })).then({ type: 'image.incrementAdded' });
    expect(f.effects).toContainEqual({ kind: 'image.flattenIncrements', imageId: ID, keepLast: 2 });
  });
  it('within KEEP_LAST, or without it, nothing is flattened', () => {
    const within = given(chain(keep2, 1)).when(event({ type: 'image.addIncrement', imageId: ID, source: 'b1', sizeMb: 1 }, { ctx: { datastore: keep2 } })).then({ type: 'image.incrementAdded' });
    expect(kinds(within)).not.toContain('image.flattenIncrements');
    const unset = given(chain(BACKUP_DS, 3)).when(event({ type: 'image.addIncrement', imageId: ID, source: 'b3', sizeMb: 1 }, { ctx: { datastore: BACKUP_DS } })).then({ type: 'image.incrementAdded' });
    expect(kinds(unset)).not.toContain('image.flattenIncrements');
  });
});
