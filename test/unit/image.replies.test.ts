/**
 * Spec §6.3, driver replies and save-as completion: every cell, with the
 * W11 fix (replies count only when they match the pending request id).
 */
import { describe, expect, it } from 'vitest';
import type { ImageFact } from '../../src/messages/image-facts.js';
import type { CommandInput } from '../../src/messages/wire.js';
import type { ImageShape } from '../support/image-states.js';
import { event, given, history, replay } from '../support/image-spec.js';
import { acquire, allocateBackup, imageIn, readyWithSnapshots, registerFromPath, registerReady, replyTo, timeoutOf, TWO_SNAPSHOTS } from '../support/image-states.js';
import { IMAGE_DS } from '../support/fixtures.js';
import { aggregateOf, decideImage } from '../../src/machines/image/decide.js';
import { emptyImage } from '../../src/machines/image/record.js';

const ID = 5;
const ORIGIN = 3;
const snapList = TWO_SNAPSHOTS;

/** Each scenario brings image 5 into LOCKED with one kind of operation pending. */
const locked = {
  CP: (s: ImageShape = {}) => history(ID, registerFromPath(s)),
  MKFS: (s: ImageShape = {}) =>
    history(ID, event({ type: 'image.allocate', imageId: ID, datastoreId: 1, template: { NAME: 'blank', TYPE: 'DATABLOCK', SIZE: '100', PERSISTENT: s.persistent ? 'YES' : 'NO' } })),
  CLONE: (s: ImageShape = {}) => {
    const origin = replay(history(ORIGIN, registerReady({ id: ORIGIN, persistent: false })));
    return history(
      ID,
      event({ type: 'image.clone', imageId: ID, originId: ORIGIN, name: 'copy', datastoreId: 1, persistent: s.persistent ?? false }, { ctx: { origin } }),
    );
  },
  SAVE_AS: () =>
    history(
      ID,
      event({ type: 'image.allocateSaveAs', imageId: ID, name: 'saved', vmId: 20, diskId: 0, originImageId: ORIGIN, imageType: 'OS', sizeMb: 10, diskFormat: 'qcow2' }),
    ),
  SNAP: (op: 'image.snapshotDelete' | 'image.snapshotRevert' | 'image.snapshotFlatten', s: ImageShape = {}) => {
    const facts = readyWithSnapshots(s);
    return [...facts, given(facts).when(event({ type: op, imageId: ID, snapshotId: 0 })).then({ state: 'LOCKED' })];
  },
  FINC: () =>
    history(
      ID,
      allocateBackup(),
      event({ type: 'image.addIncrement', imageId: ID, source: 'bk1', sizeMb: 2 }),
      event({ type: 'image.addIncrement', imageId: ID, source: 'bk2', sizeMb: 3 }),
      event({ type: 'image.flattenIncrements', imageId: ID, keepLast: 2 }),
    ),
};
const withVm = (facts: ImageFact[]): ImageFact[] => [...facts, given(facts).when(acquire(ID, 10)).then({})];
const mkfsDone = (facts: ImageFact[]): ImageFact[] => [...facts, given(facts).when(replyTo('SUCCESS', '/ds/1/saved')).then({})];

describe('§6.3 row LOCKED', () => {
  it('CP+: SOURCE and FORMAT set, unlock → READY, monitor', () => {
    const f = given(locked.CP()).when(replyTo('SUCCESS', '/ds/1/abc qcow2')).thenState('READY');
    expect(f.changes).toMatchObject({ source: '/ds/1/abc', format: 'qcow2', pending: null });
    expect(f.effects).toContainEqual({ kind: 'datastore.monitor', datastoreId: 1 });
  });
  it('CP−: → ERROR with the message and the driver info, monitor', () => {
    const f = given(locked.CP()).when(replyTo('FAILURE', 'no space left', { at: Date.UTC(2026, 7, 20, 10, 58, 25) })).thenState('ERROR');
    expect(f.changes.error).toBe('Thu Aug 20 10:58:25 2026 : Error copying image in the datastore: no space left');
    expect(f.effects).toContainEqual({ kind: 'datastore.monitor', datastoreId: 1 });
  });
  it('CP− whose info starts with "-" appends nothing', () => {
    const f = given(locked.CP()).when(replyTo('FAILURE', '-')).thenState('ERROR');
    expect(f.changes.error).toMatch(/ : Error copying image in the datastore$/);
  });
  it('CP+ without FORMAT: W32 → ERROR and SOURCE is not set', () => {
    const f = given(locked.CP()).when(replyTo('SUCCESS', '/ds/1/abc')).thenState('ERROR');
    expect(f.changes.error).toMatch(/CP operation succeeded but image FORMAT was not returned\.$/);
    expect(f.changes.source).toBeUndefined();
  });
  it('CP+ with "-" as output: W32 → ERROR, not SOURCE="-"', () => {
    const f = given(locked.CP()).when(replyTo('SUCCESS', '-')).thenState('ERROR');
    expect(f.changes.source).toBeUndefined();
    expect(f.changes.error).toMatch(/returned no SOURCE: "-"/);
  });
  it('CLONE+: SOURCE set, CLONING_ID cleared, origin released, monitor', () => {
    const facts = locked.CLONE();
    expect(replay(facts)?.cloningId).toBe(ORIGIN);
    const f = given(facts).when(replyTo('SUCCESS', '/ds/1/copy')).thenState('READY');
    expect(f.changes).toMatchObject({ source: '/ds/1/copy', cloningId: -1 });
    expect(f.changes.format).toBeUndefined();
    expect(f.effects).toEqual([
      { kind: 'image.releaseCloneSource', originId: ORIGIN, clone: { kind: 'image', id: ID } },
      { kind: 'datastore.monitor', datastoreId: 1 },
    ]);
  });
  it('CLONE+ with a format sets it', () => {
    const f = given(locked.CLONE()).when(replyTo('SUCCESS', '/ds/1/copy qcow2')).thenState('READY');
    expect(f.changes.format).toBe('qcow2');
  });
  it('CLONE−: → ERROR, origin released, no monitor', () => {
    const f = given(locked.CLONE()).when(replyTo('FAILURE', 'read error')).thenState('ERROR');
    expect(f.changes.error).toMatch(/ : Error cloning from Image 3: read error$/);
    expect(f.changes.cloningId).toBe(-1);
    expect(f.effects).toEqual([{ kind: 'image.releaseCloneSource', originId: ORIGIN, clone: { kind: 'image', id: ID } }]);
  });
  it('MKFS+: SOURCE set, unlock, monitor', () => {
    const f = given(locked.MKFS()).when(replyTo('SUCCESS', '/ds/1/blank')).thenState('READY');
    expect(f.changes.source).toBe('/ds/1/blank');
  });
  it('MKFS+ for save-as: stays LOCKED, FORMAT from the VM disk, transfer starts', () => {
    const f = given(locked.SAVE_AS()).when(replyTo('SUCCESS', '/ds/1/saved')).thenState('LOCKED');
    expect(f.changes).toMatchObject({ source: '/ds/1/saved', format: 'qcow2' });
    expect(f.effects).toContainEqual({ kind: 'vm.saveAsTransfer', vmId: 20, diskId: 0, imageId: ID, source: '/ds/1/saved' });
  });
  it('MKFS−: → ERROR with the message, monitor', () => {
    const f = given(locked.MKFS()).when(replyTo('FAILURE', 'mkfs failed')).thenState('ERROR');
    expect(f.changes.error).toMatch(/ : Error creating datablock: mkfs failed$/);
  });
  it('MKFS− for save-as: the VM save-as state is cleared', () => {
    const f = given(locked.SAVE_AS()).when(replyTo('FAILURE', 'x')).thenState('ERROR');
    expect(f.effects).toContainEqual({ kind: 'vm.saveAsCleared', vmId: 20, diskId: 0, imageId: ID });
    expect(f.changes.saveAs).toBeNull();
  });
  it('RM+ / RM−: n/a: no RM is pending in LOCKED, so an RM reply is recorded and ignored', () => {
    const facts = locked.CP();
    for (const result of ['SUCCESS', 'FAILURE'] as const) {
      given(facts)
        .when(event({ type: 'driver.reply', imageId: ID, requestId: 'other', action: 'RM', result, info: '' }))
        .then({ type: 'image.replyIgnored', state: 'LOCKED', changes: {} });
    }
  });
  it('SNAP+ (delete): unlock, snapshot removed, quota released, target cleared', () => {
    const f = given(locked.SNAP('image.snapshotDelete')).when(replyTo('SUCCESS', '-')).thenState('READY');
    expect(f.changes.targetSnapshot).toBe(-1);
    expect(f.changes.snapshots?.list.map((x) => x.id)).toEqual([1]);
    expect(f.effects).toContainEqual({ kind: 'quota.change', uid: 0, gid: 0, datastoreId: 1, images: 0, sizeMb: -3 });
  });
  it('SNAP+ (revert): the target becomes active and SIZE follows it', () => {
    const f = given(locked.SNAP('image.snapshotRevert')).when(replyTo('SUCCESS', '-')).thenState('READY');
    expect(f.changes.snapshots?.list.find((x) => x.active)?.id).toBe(0);
    expect(f.changes.size).toBe(3);
    expect(f.effects).toContainEqual({ kind: 'quota.change', uid: 0, gid: 0, datastoreId: 1, images: 0, sizeMb: -7 });
  });
  it('SNAP+ (flatten): all snapshots gone, W29 SIZE is the flattened snapshot size', () => {
    const f = given(locked.SNAP('image.snapshotFlatten')).when(replyTo('SUCCESS', '-')).thenState('READY');
    expect(f.changes.snapshots?.list).toEqual([]);
    expect(f.changes.size).toBe(3);
    expect(f.effects).toContainEqual({ kind: 'quota.change', uid: 0, gid: 0, datastoreId: 1, images: 0, sizeMb: -7 });
  });
  it('SNAP+ (flatten) with a size reported by the driver uses it (W29)', () => {
    const f = given(locked.SNAP('image.snapshotFlatten')).when(replyTo('SUCCESS', '12')).thenState('READY');
    expect(f.changes.size).toBe(12);
  });
  it('SNAP− (delete): unlock with an error message, snapshots unchanged', () => {
    const f = given(locked.SNAP('image.snapshotDelete')).when(replyTo('FAILURE', 'busy')).thenState('READY');
    expect(f.changes.error).toMatch(/ : Error removing snapshot 0 from image 5: busy$/);
    expect(f.changes.snapshots).toBeUndefined();
    expect(f.changes.targetSnapshot).toBe(-1);
  });
  it('SNAP− (revert, flatten): their own messages', () => {
    expect(given(locked.SNAP('image.snapshotRevert')).when(replyTo('FAILURE', 'x')).thenState('READY').changes.error).toMatch(
      / : Error reverting image 5 to snapshot 0: x$/,
    );
    expect(given(locked.SNAP('image.snapshotFlatten')).when(replyTo('FAILURE', 'x')).thenState('READY').changes.error).toMatch(
      / : Error flattening image snapshot: x$/,
    );
  });
  it('FINC+: increments rewritten, SIZE is their sum, the VM flag cleared', () => {
    const facts = locked.FINC();
    expect(replay(facts)?.increments.map((i) => i.id)).toEqual([0, 1, 2]);
    const f = given(facts).when(replyTo('SUCCESS', '13 1:bk01,2:bk2')).thenState('READY');
    expect(f.changes.increments).toEqual([
      expect.objectContaining({ id: 1, type: 'FULL', parentId: -1, size: 13, source: 'bk01' }),
      expect.objectContaining({ id: 2, type: 'INCREMENT', parentId: 1, size: 3, source: 'bk2' }),
    ]);
    expect(f.changes.size).toBe(16);
    expect(f.effects).toContainEqual({ kind: 'vm.flattenDone', vmId: 9, imageId: ID });
  });
  it('FINC+ with a malformed chain: W17 applies nothing', () => {
    const f = given(locked.FINC()).when(replyTo('SUCCESS', '13 1:bk01,zz')).thenState('READY');
    expect(f.changes.increments).toBeUndefined();
    expect(f.changes.error).toMatch(/Error flattening backup increments: malformed chain element "zz"/);
    expect(f.effects).toEqual([{ kind: 'vm.flattenDone', vmId: 9, imageId: ID }]);
  });
  it('FINC−: unlock with the message, the VM flag cleared', () => {
    const f = given(locked.FINC()).when(replyTo('FAILURE', 'restic failed')).thenState('READY');
    expect(f.changes.error).toMatch(/ : Error flattening backup increments: restic failed$/);
    expect(f.effects).toEqual([{ kind: 'vm.flattenDone', vmId: 9, imageId: ID }]);
  });
  it('SAVE+: SAVE_AS_HOT removed, unlock → READY', () => {
    const f = given(mkfsDone(locked.SAVE_AS())).when(event({ type: 'image.saveAsDone', imageId: ID, success: true })).thenState('READY');
    expect(f.changes.template).not.toHaveProperty('SAVE_AS_HOT');
    expect(f.changes.saveAs).toBeNull();
  });
  it('SAVE−: SAVE_AS_HOT removed, → ERROR', () => {
    const f = given(mkfsDone(locked.SAVE_AS())).when(event({ type: 'image.saveAsDone', imageId: ID, success: false })).thenState('ERROR');
    expect(f.changes.template).not.toHaveProperty('SAVE_AS_HOT');
  });
  it('SAVE before the transfer started is ignored', () =>
    given(locked.SAVE_AS()).when(event({ type: 'image.saveAsDone', imageId: ID, success: true })).then({ type: 'image.commandIgnored', state: 'LOCKED' }));
});

describe('§6.3 rows LOCKED_USED / LOCKED_USED_PERS: the waiting VMs are told', () => {
  for (const persistent of [false, true]) {
    const s = persistent ? 'LOCKED_USED_PERS' : 'LOCKED_USED';
    const used = persistent ? 'USED_PERS' : 'USED';
    describe(s, () => {
      const ready = { kind: 'vm.diskReady', imageId: ID, vmIds: [10] };
      const failed = { kind: 'vm.diskFailed', imageId: ID, vmIds: [10] };
      it(`CP+ → ${used}, VMs notified ready`, () => {
        const facts = withVm(locked.CP({ persistent }));
        expect(replay(facts)?.state).toBe(s);
        expect(given(facts).when(replyTo('SUCCESS', '/ds/1/x raw')).thenState(used).effects).toContainEqual(ready);
      });
      it('CP− → ERROR, VMs notified failed', () =>
        expect(given(withVm(locked.CP({ persistent }))).when(replyTo('FAILURE', 'e')).thenState('ERROR').effects).toContainEqual(failed));
      it(`CLONE+ → ${used}`, () =>
        expect(given(withVm(locked.CLONE({ persistent }))).when(replyTo('SUCCESS', '/ds/1/x')).thenState(used).effects).toContainEqual(ready));
      it('CLONE− → ERROR, VMs notified failed', () =>
        expect(given(withVm(locked.CLONE({ persistent }))).when(replyTo('FAILURE', 'e')).thenState('ERROR').effects).toContainEqual(failed));
      it(`MKFS+ → ${used}`, () =>
        expect(given(withVm(locked.MKFS({ persistent }))).when(replyTo('SUCCESS', '/ds/1/x')).thenState(used).effects).toContainEqual(ready));
      it('MKFS− → ERROR, VMs notified failed', () =>
        expect(given(withVm(locked.MKFS({ persistent }))).when(replyTo('FAILURE', 'e')).thenState('ERROR').effects).toContainEqual(failed));
      it('RM± n/a: ignored', () =>
        given(withVm(locked.CP({ persistent })))
          .when(event({ type: 'driver.reply', imageId: ID, requestId: 'x', action: 'RM', result: 'SUCCESS', info: '' }))
          .then({ type: 'image.replyIgnored', state: s }));
      if (persistent) {
        it(`SNAP+ → ${used}`, () => {
          const facts = withVm(locked.SNAP('image.snapshotDelete', { persistent }));
          expect(given(facts).when(replyTo('SUCCESS', '-')).thenState(used).effects).toContainEqual(ready);
        });
        it(`SNAP− → ${used} with an error message`, () => {
          const f = given(withVm(locked.SNAP('image.snapshotRevert', { persistent }))).when(replyTo('FAILURE', 'e')).thenState(used);
          expect(f.changes.error).toMatch(/Error reverting image 5 to snapshot 0: e/);
        });
      } else {
        it('SNAP± n/a: a non-persistent image never holds snapshots (VM pushes are ignored)', () =>
          given(imageIn('USED'))
            .when(event({ type: 'image.setSnapshots', imageId: ID, snapshots: snapList }))
            .then({ type: 'image.commandIgnored', changes: {} }));
      }
      it('FINC± n/a: BACKUP images are never acquired', () => {
        const facts = locked.FINC();
        const name = replay(facts)?.name ?? '';
        expect(name).toMatch(/^9 \d\d-Aug \d\d\.\d\d\.\d\d #5$/);
        given(facts).when(acquire(ID, 10)).thenRejects('IMG_ERR_ACQUIRE_TYPE', `Image 5 (${name}) of type BACKUP cannot be used as DISK.`);
      });
      it(`SAVE+ → ${used}, VMs notified ready; SAVE− → ERROR, notified failed`, () => {
        const facts = withVm(mkfsDone(locked.SAVE_AS()));
        expect(replay(facts)?.state).toBe('LOCKED_USED');
        expect(given(facts).when(event({ type: 'image.saveAsDone', imageId: ID, success: true })).thenState('USED').effects).toContainEqual(ready);
        expect(given(facts).when(event({ type: 'image.saveAsDone', imageId: ID, success: false })).thenState('ERROR').effects).toContainEqual(failed);
      });
    });
  }
});

describe('§6.3 row DELETE', () => {
  it('RM+: the record is dropped (D3) with datastore, quota and monitor effects', () => {
    const f = given(imageIn('DELETE')).when(replyTo('SUCCESS', '')).then({ type: 'image.removed', state: 'REMOVED' });
    expect(f.effects).toEqual([
      { kind: 'datastore.imageRemoved', datastoreId: 1, imageId: ID },
      { kind: 'quota.change', uid: 0, gid: 0, datastoreId: 1, images: -1, sizeMb: -10 },
      { kind: 'datastore.monitor', datastoreId: 1 },
    ]);
  });
  it('RM−: → ERROR; W3 the message names the source and keeps the driver info', () => {
    const f = given(imageIn('DELETE')).when(replyTo('FAILURE', 'permission denied')).thenState('ERROR');
    expect(f.changes.error).toMatch(
      / : Error removing image from datastore\. Retry the operation or manually remove image source \/var\/lib\/one\/datastores\/1\/src-5 and run the delete --force operation to completely delete the image: permission denied$/,
    );
  });
  it('RM− of a forced delete behaves as RM+', () => {
    const facts = history(ID, registerReady(), event({ type: 'image.delete', imageId: ID, force: true }));
    given(facts).when(replyTo('FAILURE', 'gone')).then({ type: 'image.removed', state: 'REMOVED' });
  });
  it('W4: force belongs to one delete; a later plain delete does not inherit it', () => {
    const forced = history(ID, registerReady(), event({ type: 'image.delete', imageId: ID, force: true }), replyTo('FAILURE', 'x', {}));
    expect(replay(forced)?.state).toBe('REMOVED');
    const facts = history(ID, registerReady(), event({ type: 'image.delete', imageId: ID, force: true }), event({ type: 'image.delete', imageId: ID }));
    given(facts).when(replyTo('FAILURE', 'x')).thenState('ERROR');
  });
  it('CP+ after a forced delete (W5): the copied file is removed, not orphaned', () => {
    const facts = history(ID, registerFromPath(), event({ type: 'image.delete', imageId: ID, force: true }));
    const f = given(facts).when(replyTo('SUCCESS', '/ds/1/late raw')).thenState('DELETE');
    expect(f.changes.source).toBe('/ds/1/late');
    expect(f.effects).toContainEqual(expect.objectContaining({ kind: 'driver.request', action: 'RM' }));
  });
  it('CP− after a forced delete: nothing stored, the record goes', () => {
    const facts = history(ID, registerFromPath(), event({ type: 'image.delete', imageId: ID, force: true }));
    given(facts).when(replyTo('FAILURE', 'x')).then({ type: 'image.removed', state: 'REMOVED' });
  });
  it('CLONE± after a forced delete: W5 releases the origin only when the copy ended', () => {
    const facts = history(ID, ...[]).concat(locked.CLONE());
    const deleted = [...facts, given(facts).when(event({ type: 'image.delete', imageId: ID, force: true })).then({ state: 'DELETE', effects: [] })];
    const ok = given(deleted).when(replyTo('SUCCESS', '/ds/1/copy')).thenState('DELETE');
    expect(ok.effects).toContainEqual({ kind: 'image.releaseCloneSource', originId: ORIGIN, clone: { kind: 'image', id: ID } });
    const ko = given(deleted).when(replyTo('FAILURE', 'x')).thenState('REMOVED');
    expect(ko.effects).toContainEqual({ kind: 'image.releaseCloneSource', originId: ORIGIN, clone: { kind: 'image', id: ID } });
  });
  it('MKFS after a forced delete: the reference ignored it (W5); now the new file is removed', () => {
    const facts = locked.MKFS();
    const deleted = [...facts, given(facts).when(event({ type: 'image.delete', imageId: ID, force: true })).then({ state: 'DELETE' })];
    given(deleted).when(replyTo('SUCCESS', '/ds/1/blank')).thenState('DELETE');
    given(deleted).when(replyTo('FAILURE', 'x')).thenState('REMOVED');
  });
  it('save-as MKFS+ after a forced delete starts no transfer', () => {
    const facts = locked.SAVE_AS();
    const deleted = [...facts, given(facts).when(event({ type: 'image.delete', imageId: ID, force: true })).then({ state: 'DELETE' })];
    const f = given(deleted).when(replyTo('SUCCESS', '/ds/1/saved')).thenState('DELETE');
    expect(f.effects.map((e) => e.kind)).not.toContain('vm.saveAsTransfer');
    expect(f.effects).toContainEqual({ kind: 'vm.saveAsCleared', vmId: 20, diskId: 0, imageId: ID });
  });
  it('W6: a forced delete during a snapshot operation waits for it, then removes', () => {
    const facts = locked.SNAP('image.snapshotFlatten');
    const deleted = [...facts, given(facts).when(event({ type: 'image.delete', imageId: ID, force: true })).then({ state: 'DELETE', effects: [] })];
    const f = given(deleted).when(replyTo('SUCCESS', '-')).thenState('DELETE');
    expect(f.effects).toContainEqual(expect.objectContaining({ kind: 'driver.request', action: 'RM' }));
  });
  it('W6: a forced delete during a save-as transfer supersedes the transfer', () => {
    const facts = mkfsDone(locked.SAVE_AS());
    const f = given(facts).when(event({ type: 'image.delete', imageId: ID, force: true })).thenState('DELETE');
    expect(f.effects).toContainEqual({ kind: 'vm.saveAsCleared', vmId: 20, diskId: 0, imageId: ID });
    expect(f.effects).toContainEqual(expect.objectContaining({ kind: 'driver.request', action: 'RM' }));
  });
  it('SNAP, FINC, SAVE replies are not expected in DELETE: recorded and ignored', () => {
    for (const action of ['SNAP_DELETE', 'INCREMENT_FLATTEN', 'CP', 'CLONE', 'MKFS'] as const) {
      given(imageIn('DELETE'))
        .when(event({ type: 'driver.reply', imageId: ID, requestId: 'stale', action, result: 'SUCCESS', info: '/x raw' }))
        .then({ type: 'image.replyIgnored', state: 'DELETE', changes: {} });
    }
    given(imageIn('DELETE')).when(event({ type: 'image.saveAsDone', imageId: ID, success: true })).then({ type: 'image.commandIgnored', state: 'DELETE' });
  });
});

describe('§6.3 row "any other state": W11, replies must match the pending request', () => {
  const columns = ['CP', 'CLONE', 'MKFS', 'RM', 'SNAP_DELETE', 'SNAP_REVERT', 'SNAP_FLATTEN', 'INCREMENT_FLATTEN'] as const;
  for (const s of ['READY', 'USED', 'DISABLED', 'ERROR', 'CLONE', 'USED_PERS'] as const) {
    it(`${s}: every reply, success or failure, is recorded as ignored and changes nothing`, () => {
      for (const action of columns) {
        for (const result of ['SUCCESS', 'FAILURE'] as const) {
          const f = given(imageIn(s))
            .when(event({ type: 'driver.reply', imageId: ID, requestId: 'late-1', action, result, info: '/late raw' }))
            .then({ type: 'image.replyIgnored', state: s, changes: {} });
          expect(f.detail['reason']).toMatch(/^no pending request matches/);
        }
      }
    });
  }
  it('the reference example: a late CP+ no longer turns ERROR into READY', () => {
    const facts = imageIn('ERROR');
    given(facts).when(event({ type: 'driver.reply', imageId: ID, requestId: 'cmd-old', action: 'CP', result: 'SUCCESS', info: '/x raw' })).thenState('ERROR');
  });
  it('a duplicate of an already applied reply is ignored', () => {
    const facts = locked.CP();
    const pending = replay(facts)?.pending;
    const reply = event({ type: 'driver.reply', imageId: ID, requestId: pending?.requestId ?? '', action: 'CP', result: 'SUCCESS', info: '/ds/1/a raw' });
    const applied = given(facts).when(reply).thenState('READY');
    given([...facts, applied]).when(reply).then({ type: 'image.replyIgnored', state: 'READY' });
  });
  it('a reply with the right id but another action is ignored', () => {
    const facts = locked.CP();
    const id = replay(facts)?.pending?.requestId ?? '';
    given(facts).when(event({ type: 'driver.reply', imageId: ID, requestId: id, action: 'MKFS', result: 'SUCCESS', info: '/a' })).then({ type: 'image.replyIgnored' });
  });
  it('§10: a late success for a removed image records the orphaned source for the reaper', () => {
    // The copy timed out (the image remembers the request it abandoned), then the image was removed.
    const copying = locked.CP();
    const running = replay(copying)?.pending?.requestId ?? '';
    const failed = given(copying).when(timeoutOf).thenState('ERROR');
    expect(failed.changes.abandoned).toEqual([{ requestId: running, action: 'CP' }]);
    const removed = given([...copying, failed]).when(event({ type: 'image.delete', imageId: ID })).then({ state: 'REMOVED' });
    const f = given([...copying, failed, removed])
      .when(event({ type: 'driver.reply', imageId: ID, requestId: running, action: 'CP', result: 'SUCCESS', info: '/ds/1/orphan raw' }))
      .then({ type: 'image.replyIgnored', state: 'REMOVED' });
    expect(f.effects).toEqual([{ kind: 'datastore.orphanSource', datastoreId: IMAGE_DS.id, imageId: ID, source: '/ds/1/orphan' }]);
  });
  it('#27: a late success naming a file outside the folder, or another image\'s, reclaims nothing', () => {
    const copying = locked.CP();
    const running = replay(copying)?.pending?.requestId ?? '';
    const failed = given(copying).when(timeoutOf).thenState('ERROR');
    const removed = given([...copying, failed]).when(event({ type: 'image.delete', imageId: ID })).then({ state: 'REMOVED' });
    const held = { ctx: { storage: { folder: '/ds/1', claimed: { '/ds/1/alice': 2 } } } };
    for (const source of ['/etc/passwd', '/ds/2/x', '/ds/1/sub/x', '/ds/1/alice']) {
      given([...copying, failed, removed])
        .when(event({ type: 'driver.reply', imageId: ID, requestId: running, action: 'CP', result: 'SUCCESS', info: `${source} raw` }, held))
        .then({ type: 'image.replyIgnored', state: 'REMOVED', effects: [] });
    }
  });

  it('a reply naming a request the image never asked for changes nothing and reclaims nothing, in every state', () => {
    const stranger = event({ type: 'driver.reply', imageId: ID, requestId: 'imgr.forged-1', action: 'CP', result: 'SUCCESS', info: '/etc/passwd raw' });
    for (const s of ['READY', 'LOCKED', 'ERROR', 'DISABLED', 'DELETE', 'USED_PERS'] as const) {
      const f = given(imageIn(s)).when(stranger).then({ type: 'image.replyIgnored', state: s, changes: {}, effects: [] });
      expect(f.detail['reason'], s).toMatch(/^no pending request matches .*never asked for request imgr\.forged-1$/);
    }
    const facts = imageIn('ERROR');
    const removed = given(facts).when(event({ type: 'image.delete', imageId: ID })).then({ state: 'REMOVED' });
    given([...facts, removed]).when(stranger).then({ type: 'image.replyIgnored', state: 'REMOVED', changes: {}, effects: [] });
  });
});

describe('W1/W2: timeouts', () => {
  it('an expired CP moves the image to ERROR with a message naming the action', () => {
    const facts = locked.CP();
    const p = replay(facts)?.pending;
    expect(p?.deadline).toBe((p?.issuedAt ?? 0) + 3600 * 1000);
    const f = given(facts).when(timeoutOf).thenState('ERROR');
    expect(f.changes.error).toMatch(/ : Driver action CP timed out after 3600 s \(request cmd-\d+\)$/);
    expect(f.changes.pending).toBeNull();
  });
  it('an expired CLONE releases the origin; LOCKED_USED VMs are told it failed', () => {
    const f = given(withVm(locked.CLONE())).when(timeoutOf).thenState('ERROR');
    expect(f.effects).toEqual([
      { kind: 'image.releaseCloneSource', originId: ORIGIN, clone: { kind: 'image', id: ID } },
      { kind: 'vm.diskFailed', imageId: ID, vmIds: [10] },
    ]);
  });
  it('W16: an expired INCREMENT_FLATTEN clears the VM flag', () =>
    expect(given(locked.FINC()).when(timeoutOf).thenState('ERROR').effects).toEqual([{ kind: 'vm.flattenDone', vmId: 9, imageId: ID }]));
  it('an expired RM moves DELETE to ERROR', () => given(imageIn('DELETE')).when(timeoutOf).thenState('ERROR'));
  it('the policy in the decision context sets the deadline', () => {
    const ev = event(
      { type: 'image.allocate', imageId: ID, datastoreId: 1, template: { NAME: 'x', PATH: '/a', SIZE: '1' } },
      { ctx: { timeouts: { ...{ CP: 5, MKFS: 1, CLONE: 1, RM: 1, STAT: 1, SNAP_DELETE: 1, SNAP_REVERT: 1, SNAP_FLATTEN: 1, INCREMENT_FLATTEN: 1, RESTORE: 1, MONITOR: 1, BACKUP: 1 } } } },
    );
    const f = given([]).when(ev).thenState('LOCKED');
    expect(f.changes.pending?.deadline).toBe(ev.meta.at + 5000);
  });
  it('a timeout for a request that already completed is ignored', () => {
    const facts = locked.CP();
    const stale = timeoutOf(given(facts).aggregate);
    const done = given(facts).when(replyTo('SUCCESS', '/ds/1/a raw')).then({});
    given([...facts, done]).when(stale).then({ type: 'image.replyIgnored', state: 'READY' });
  });
  it('after a failed VM put a locked image in ERROR, the pending reply still lands its data but unlocks nothing', () => {
    const facts = withVm(locked.CP({ persistent: true }));
    const rel = given(facts).when(event({ type: 'image.release', imageId: ID, vmId: 10, failed: true })).thenState('ERROR');
    const f = given([...facts, rel]).when(replyTo('SUCCESS', '/ds/1/a raw')).thenState('ERROR');
    expect(f.changes.source).toBe('/ds/1/a');
  });
});

describe('driver log lines (driver-contract §7)', () => {
  const lines: CommandInput = { type: 'driver.log', imageId: ID, requestId: 'r-1', action: 'CP', lines: [{ severity: 'I', text: 'cp: copying' }, { severity: 'E', text: 'slow disk' }] };
  const log = event(lines);
  it('are recorded on the image for the request it runs, changing nothing', () => {
    const copying = locked.CP();
    const running = replay(copying)?.pending?.requestId ?? '';
    const f = given(copying).when(event({ ...lines, requestId: running })).then({ type: 'image.driverLogged', state: 'LOCKED', changes: {}, effects: [] });
    expect(f.detail).toMatchObject({ requestId: running, action: 'CP', lines: 'I cp: copying\nE slow disk' });
  });
  it('are recorded for a request that ended without its reply (its lines may come after its timeout)', () => {
    const copying = locked.CP();
    const running = replay(copying)?.pending?.requestId ?? '';
    const failed = given(copying).when(timeoutOf).thenState('ERROR');
    given([...copying, failed]).when(event({ ...lines, requestId: running })).then({ type: 'image.driverLogged', state: 'ERROR', changes: {}, effects: [] });
  });
  it('naming a request the image never asked for, are ignored in every state', () => {
    for (const s of ['READY', 'LOCKED', 'ERROR', 'DELETE', 'USED_PERS'] as const) {
      const f = given(imageIn(s)).when(log).then({ type: 'image.replyIgnored', state: s, changes: {}, effects: [] });
      expect(f.detail, s).toMatchObject({ requestId: 'r-1', kind: 'log CP' });
      expect(f.detail['lines'], s).toBeUndefined();
    }
  });
  it('are refused for an image that never existed', () => given(imageIn('INIT')).when(log).thenRejects('IMG_ERR_NOT_FOUND', 'Error getting image [5].'));
});

describe('ERROR with its copy still running (found by the invariant property)', () => {
  it('disabling abandons the request, and its late reply changes nothing', () => {
    const pathReg = event({ type: 'image.allocate', imageId: 5, datastoreId: 1, template: { NAME: 'p', PATH: '/tmp/a', SIZE: '10', PERSISTENT: 'YES' } });
    const facts = history(5, pathReg, event({ type: 'image.acquire', imageId: 5, vmId: 3, mode: 'deploy' }), event({ type: 'image.release', imageId: 5, vmId: 3, failed: true }));
    const running = replay(facts)?.pending?.requestId ?? '';
    expect(running).not.toBe('');
    const disabled = given(facts).when(event({ type: 'image.disable', imageId: 5 })).then({ type: 'image.disabled', state: 'DISABLED', changes: { pending: null } });
    expect(disabled.detail).toEqual({ abandoned: running });
    const late = decideImage(aggregateOf({ ...(replay([...facts, disabled]) ?? emptyImage(5)), state: 'DISABLED' }), event({ type: 'driver.reply', imageId: 5, requestId: running, action: 'CP', result: 'SUCCESS', info: '/ds/1/img raw' }));
    expect(late.ok ? late.next.state : 'DISABLED').toBe('DISABLED');
    expect(late.ok ? late.next.record.pending : null).toBeNull();
  });
});

describe('#27: a driver host is trusted with its datastore\'s own files only', () => {
  // Every way a reported SOURCE may leave the datastore's folder (/ds/1), or name another image's file.
  const OUTSIDE = ['/etc/passwd', '/ds/2/x', '/ds/10/x', '/ds/1', '/ds/1/', '/ds/1/sub/x', '/ds/1/../2/x', '/ds/1/.', '/ds/1/..', 'relative', '/ds/1x/y'];
  const claimed = { ctx: { storage: { folder: '/ds/1', claimed: { '/ds/1/alice': 2, '/ds/1/alice.snap': 2, '/ds/1/inc': 4 } } } };
  const creations = [
    ['CP', () => locked.CP(), (s: string) => `${s} raw`],
    ['CLONE', () => locked.CLONE(), (s: string) => s],
    ['MKFS', () => locked.MKFS(), (s: string) => s],
    ['save-as MKFS', () => locked.SAVE_AS(), (s: string) => s],
  ] as const;
  for (const [name, facts, info] of creations) {
    it(`${name}: a SOURCE outside the folder leaves the image in ERROR with why, no SOURCE, no RM`, () => {
      for (const source of OUTSIDE) {
        const f = given(facts()).when(replyTo('SUCCESS', info(source))).thenState('ERROR');
        expect(f.changes.source, source).toBeUndefined();
        expect(f.changes.error, source).toMatch(/operation succeeded but its SOURCE was refused: .* is not a file directly in datastore 1's folder \/ds\/1/);
        expect(f.effects.some((e) => e.kind === 'driver.request'), source).toBe(false);
      }
    });
    it(`${name}: another live image's SOURCE, increment or snapshot folder is refused`, () => {
      for (const [source, owner] of [['/ds/1/alice', 2], ['/ds/1/alice.snap', 2], ['/ds/1/inc', 4]] as const) {
        const f = given(facts()).when(replyTo('SUCCESS', info(source), claimed)).thenState('ERROR');
        expect(f.changes.source).toBeUndefined();
        expect(f.changes.error).toContain(`"${source}" is a file of image ${owner}`);
      }
      // A file of the folder that nobody holds is the image's.
      given(facts()).when(replyTo('SUCCESS', info('/ds/1/new'), claimed)).then({ type: 'image.driverSucceeded' });
    });
    it(`${name}: without the datastore's folder (the datastore is gone) no SOURCE is taken`, () => {
      given(facts()).when(replyTo('SUCCESS', info('/ds/1/new'), { ctx: { storage: null } })).thenState('ERROR');
    });
  }
  it('a CLONE refused still releases its origin', () => {
    const f = given(locked.CLONE()).when(replyTo('SUCCESS', '/ds/1/alice', claimed)).thenState('ERROR');
    expect(f.effects).toContainEqual({ kind: 'image.releaseCloneSource', originId: ORIGIN, clone: { kind: 'image', id: ID } });
  });
  it('deleted while copying: a refused SOURCE is not removed (no RM of another image\'s file, nor outside the folder)', () => {
    const facts = history(ID, registerFromPath(), event({ type: 'image.delete', imageId: ID, force: true }));
    for (const [source, o] of [['/etc/passwd', {}], ['/ds/1/alice', claimed]] as const) {
      const f = given(facts).when(replyTo('SUCCESS', `${source} raw`, o)).then({ type: 'image.removed', state: 'REMOVED' });
      expect(f.effects.some((e) => e.kind === 'driver.request')).toBe(false);
    }
  });
  it('a dummy datastore\'s fixed "dummy_path" is taken from dummy drivers only', () => {
    const dummy = { ...IMAGE_DS, dsMad: 'dummy' };
    const facts = history(ID, event({ type: 'image.allocate', imageId: ID, datastoreId: 1, template: { NAME: 'blank', TYPE: 'DATABLOCK', SIZE: '1' } }, { ctx: { datastore: dummy } }));
    given(facts).when(replyTo('SUCCESS', 'dummy_path')).then({ type: 'image.driverSucceeded', state: 'READY' });
    given(locked.MKFS()).when(replyTo('SUCCESS', 'dummy_path')).thenState('ERROR');
  });
});
