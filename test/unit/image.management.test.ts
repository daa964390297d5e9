/**
 * Spec §6.1, management commands: every cell of the table, for every state.
 * Cells the spec marks as weak points assert the fixed behaviour.
 */
import { describe, expect, it } from 'vitest';
import { IMAGE_STATES, type ImageState } from '../../src/messages/states.js';
import { event, given, givenAggregate, history } from '../support/image-spec.js';
import { allocateBackup, imageIn, readyWithSnapshots, registerFromPath, registerReady, replyTo } from '../support/image-states.js';
import { aggregateOf } from '../../src/machines/image/decide.js';
import { replay } from '../support/image-spec.js';
import { BACKUP_DS } from '../support/fixtures.js';

const ID = 5;
const cmd = {
  delete: (force = false) => event({ type: 'image.delete', imageId: ID, force }),
  enable: () => event({ type: 'image.enable', imageId: ID }),
  disable: () => event({ type: 'image.disable', imageId: ID }),
  persistent: (persistent: boolean) => event({ type: 'image.setPersistent', imageId: ID, persistent }),
  cloneStart: () => event({ type: 'image.cloneStart', imageId: ID, clone: { kind: 'image', id: 77 } }),
  snapDelete: () => event({ type: 'image.snapshotDelete', imageId: ID, snapshotId: 0 }),
  finc: () => event({ type: 'image.flattenIncrements', imageId: ID, keepLast: 2 }, { ctx: { datastore: BACKUP_DS } }),
  chtype: (t: string) => event({ type: 'image.chtype', imageId: ID, imageType: t }),
};
const NOT_FOUND = ['IMG_ERR_NOT_FOUND', 'Error getting image [5].'] as const;

/** An ERROR image that still has its SOURCE (RM failed), so that recovery is possible. */
const errorWithSource = () =>
  history(ID, registerReady(), event({ type: 'image.delete', imageId: ID }), replyTo('FAILURE', 'busy'));

/** A BACKUP image record placed in any state, for the FINC column's state checks. */
function backupIn(state: ImageState) {
  const facts = history(
    ID,
    allocateBackup({ source: 'b-1' }),
  );
  const view = replay(facts);
  if (view === null) throw new Error('no backup');
  return givenAggregate({ ...aggregateOf(view), state });
}

describe('§6.1 DEL', () => {
  it('INIT: the image does not exist', () => given(imageIn('INIT')).when(cmd.delete()).thenRejects(...NOT_FOUND));
  it('READY: proceeds (D1): SOURCE set → DELETE with [RM]', () => {
    const f = given(imageIn('READY')).when(cmd.delete()).thenState('DELETE');
    expect(f.changes.pending?.action).toBe('RM');
    expect(f.effects).toContainEqual(expect.objectContaining({ kind: 'driver.request', action: 'RM', imageId: ID }));
  });
  it('READY held by VMs (not BACKUP): E1', () => {
    // A DISABLED image with VMs enabled again keeps them (W9: derived), so READY+VMs only exists for BACKUP.
    const g = backupIn('READY');
    g.when(cmd.delete()).thenState('DELETE');
    givenAggregate({ ...g.aggregate, record: { ...g.aggregate.record, type: 'OS' } })
      .when(cmd.delete())
      .thenRejects('IMG_ERR_DELETE_VMS', 'Cannot delete image. There are 1 VMs using it.');
  });
  it('USED: E1', () =>
    given(imageIn('USED')).when(cmd.delete()).thenRejects('IMG_ERR_DELETE_VMS', 'Cannot delete image. There are 1 VMs using it.'));
  it('USED by clone operations only: W7 reports the clone operations', () => {
    const facts = history(ID, registerReady({ persistent: false }), cmd.cloneStart());
    given(facts).when(cmd.delete()).thenRejects('IMG_ERR_DELETE_CLONES', 'Cannot delete image. There are 1 active clone operations.');
  });
  it('DISABLED: proceeds (D1)', () => given(imageIn('DISABLED')).when(cmd.delete()).thenState('DELETE'));
  it('LOCKED without force: E8', () =>
    given(imageIn('LOCKED'))
      .when(cmd.delete())
      .thenRejects(
        'IMG_ERR_DELETE_LOCKED',
        'Image locked, use --force flag to remove the image. Force delete may leave some files on Datastore',
      ));
  it('LOCKED with force: W5 waits for the running CP instead of orphaning its file', () => {
    const f = given(imageIn('LOCKED')).when(cmd.delete(true)).then({ state: 'DELETE', type: 'image.deleteRequested' });
    expect(f.changes.deleting).toEqual({ force: true });
    expect(f.changes.pending).toBeUndefined();
    expect(f.effects).toEqual([]);
  });
  it('ERROR with no SOURCE: removed at once (D1)', () => {
    const f = given(imageIn('ERROR')).when(cmd.delete()).then({ state: 'REMOVED', type: 'image.removed' });
    expect(f.effects).toContainEqual({ kind: 'datastore.imageRemoved', datastoreId: 1, imageId: ID });
    expect(f.effects).toContainEqual({ kind: 'quota.change', uid: 0, gid: 0, datastoreId: 1, images: -1, sizeMb: -10 });
  });
  it('ERROR with SOURCE: proceeds to DELETE', () => given(errorWithSource()).when(cmd.delete()).thenState('DELETE'));
  it('CLONE: E2', () =>
    given(imageIn('CLONE')).when(cmd.delete()).thenRejects('IMG_ERR_DELETE_CLONES', 'Cannot delete image. There are 1 active clone operations.'));
  it('DELETE: RM is re-sent with a new request id', () => {
    const facts = imageIn('DELETE');
    const before = replay(facts)?.pending?.requestId;
    const f = given(facts).when(cmd.delete()).thenState('DELETE');
    expect(f.changes.pending?.requestId).toBeDefined();
    expect(f.changes.pending?.requestId).not.toBe(before);
  });
  it('USED_PERS: E1', () =>
    given(imageIn('USED_PERS')).when(cmd.delete()).thenRejects('IMG_ERR_DELETE_VMS', 'Cannot delete image. There are 1 VMs using it.'));
  for (const s of ['LOCKED_USED', 'LOCKED_USED_PERS'] as const) {
    it(`${s}: needs force (E8), then E1`, () => {
      given(imageIn(s))
        .when(cmd.delete())
        .thenRejects('IMG_ERR_DELETE_LOCKED', 'Image locked, use --force flag to remove the image. Force delete may leave some files on Datastore');
      given(imageIn(s)).when(cmd.delete(true)).thenRejects('IMG_ERR_DELETE_VMS', 'Cannot delete image. There are 1 VMs using it.');
    });
  }
});

describe('§6.1 EN', () => {
  it('INIT', () => given(imageIn('INIT')).when(cmd.enable()).thenRejects(...NOT_FOUND));
  it('READY: no change', () => given(imageIn('READY')).when(cmd.enable()).then({ state: 'READY', type: 'image.enabled', changes: {} }));
  it('DISABLED → READY', () => given(imageIn('DISABLED')).when(cmd.enable()).thenState('READY'));
  it('ERROR: unlock → READY and W13 clears the error', () => {
    const facts = errorWithSource();
    expect(replay(facts)?.error).toMatch(/^Thu Aug 20 \d\d:\d\d:\d\d 2026 : Error removing image/);
    const f = given(facts).when(cmd.enable()).thenState('READY');
    expect(f.changes.error).toBeNull();
  });
  it('ERROR without content: W8 refuses to declare it ready', () =>
    given(imageIn('ERROR'))
      .when(cmd.enable())
      .thenRejects('IMG_ERR_ENABLE_NO_CONTENT', 'Could not enable image: Image has no content (SOURCE is empty); delete it and register it again.'));
  for (const s of ['USED', 'LOCKED', 'CLONE', 'DELETE', 'USED_PERS', 'LOCKED_USED', 'LOCKED_USED_PERS'] as const) {
    it(`${s}: E3 with the exact state name (W27)`, () =>
      given(imageIn(s)).when(cmd.enable()).thenRejects('IMG_ERR_ENABLE_STATE', `Could not enable image: Image cannot be in state ${s}.`));
  }
  it('BACKUP images cannot be enabled or disabled', () => {
    backupIn('READY').when(cmd.enable()).thenRejects('IMG_ERR_BACKUP_ENABLE', 'Could not enable image: Backup images cannot be enabled or disabled.');
    backupIn('READY').when(cmd.disable()).thenRejects('IMG_ERR_BACKUP_DISABLE', 'Could not disable image: Backup images cannot be enabled or disabled.');
  });
});

describe('§6.1 DIS', () => {
  it('INIT', () => given(imageIn('INIT')).when(cmd.disable()).thenRejects(...NOT_FOUND));
  it('READY → DISABLED', () => given(imageIn('READY')).when(cmd.disable()).thenState('DISABLED'));
  it('DISABLED: no change', () => given(imageIn('DISABLED')).when(cmd.disable()).then({ state: 'DISABLED', changes: {} }));
  it('ERROR → DISABLED', () => given(imageIn('ERROR')).when(cmd.disable()).thenState('DISABLED'));
  for (const s of ['USED', 'LOCKED', 'CLONE', 'DELETE', 'USED_PERS', 'LOCKED_USED', 'LOCKED_USED_PERS'] as const) {
    it(`${s}: E3`, () =>
      given(imageIn(s)).when(cmd.disable()).thenRejects('IMG_ERR_DISABLE_STATE', `Could not disable image: Image cannot be in state ${s}.`));
  }
});

describe('§6.1 PERS', () => {
  it('INIT', () => given(imageIn('INIT')).when(cmd.persistent(true)).thenRejects(...NOT_FOUND));
  for (const s of ['READY', 'DISABLED', 'ERROR'] as const) {
    it(`${s}: ok, state unchanged`, () => {
      const f = given(imageIn(s, { persistent: false })).when(cmd.persistent(true)).then({ state: s, type: 'image.persistenceChanged' });
      expect(f.changes.persistent).toBe(true);
    });
  }
  // W28: persistence only changes on idle images; the reference allowed LOCKED and DELETE.
  for (const s of ['USED', 'LOCKED', 'CLONE', 'DELETE', 'USED_PERS', 'LOCKED_USED', 'LOCKED_USED_PERS'] as const) {
    it(`${s}: E3`, () => {
      const facts = imageIn(s);
      const want = !(replay(facts)?.persistent ?? false);
      const [code, word] = want ? (['IMG_ERR_PERSISTENT_STATE', 'persistent'] as const) : (['IMG_ERR_NONPERSISTENT_STATE', 'non-persistent'] as const);
      given(facts).when(cmd.persistent(want)).thenRejects(code, `Could not make image ${word}: Image cannot be in state ${s}.`);
    });
  }
  it('W28: asking for the current value on a LOCKED image is refused too, not a silent success', () =>
    given(imageIn('LOCKED', { persistent: false }))
      .when(cmd.persistent(false))
      .thenRejects('IMG_ERR_NONPERSISTENT_STATE', 'Could not make image non-persistent: Image cannot be in state LOCKED.'));
  it('E7: an image with snapshots cannot become non-persistent', () => {
    const facts = readyWithSnapshots();
    given(facts).when(cmd.persistent(false)).thenRejects('IMG_ERR_NONPERSISTENT_SNAPSHOTS', 'Could not make image non-persistent: Image has snapshots.');
  });
});

describe('§6.1 CLN (clone start on the origin)', () => {
  it('INIT', () => given(imageIn('INIT')).when(cmd.cloneStart()).thenRejects(...NOT_FOUND));
  it('READY persistent → CLONE (+cl)', () => {
    const f = given(imageIn('READY', { persistent: true })).when(cmd.cloneStart()).thenState('CLONE');
    expect(f.changes.clones).toEqual([77]);
  });
  it('READY non-persistent → USED (+cl)', () => given(imageIn('READY', { persistent: false })).when(cmd.cloneStart()).thenState('USED'));
  it('USED: = (+cl)', () => {
    const f = given(imageIn('USED')).when(cmd.cloneStart()).thenState('USED');
    expect(f.changes.clones).toEqual([77]);
  });
  it('CLONE: = (+cl)', () => {
    const f = given(imageIn('CLONE')).when(cmd.cloneStart()).thenState('CLONE');
    expect(f.changes.clones).toEqual([50, 77]);
  });
  for (const s of ['DISABLED', 'LOCKED', 'ERROR', 'DELETE', 'USED_PERS', 'LOCKED_USED', 'LOCKED_USED_PERS'] as const) {
    it(`${s}: E4`, () => given(imageIn(s)).when(cmd.cloneStart()).thenRejects('IMG_ERR_CLONE_START_STATE', 'Cannot clone image in current state'));
  }
});

describe('§6.1 SNAP', () => {
  it('INIT', () => given(imageIn('INIT')).when(cmd.snapDelete()).thenRejects(...NOT_FOUND));
  it('READY: → LOCKED with TARGET_SNAPSHOT and [SNAP_DELETE]', () => {
    const facts = readyWithSnapshots();
    const f = given(facts).when(cmd.snapDelete()).thenState('LOCKED');
    expect(f.changes.targetSnapshot).toBe(0);
    expect(f.effects).toContainEqual(expect.objectContaining({ kind: 'driver.request', action: 'SNAP_DELETE' }));
  });
  for (const s of ['USED', 'DISABLED', 'LOCKED', 'ERROR', 'CLONE', 'DELETE', 'USED_PERS', 'LOCKED_USED', 'LOCKED_USED_PERS'] as const) {
    it(`${s}: E5`, () => given(imageIn(s)).when(cmd.snapDelete()).thenRejects('IMG_ERR_SNAP_DELETE_STATE', `Cannot delete snapshot in state ${s}`));
  }
  it('E5 texts for revert and flatten', () => {
    given(imageIn('USED')).when(event({ type: 'image.snapshotRevert', imageId: ID, snapshotId: 0 })).thenRejects('IMG_ERR_SNAP_REVERT_STATE', 'Cannot revert to snapshot in state USED');
    given(imageIn('USED')).when(event({ type: 'image.snapshotFlatten', imageId: ID, snapshotId: 0 })).thenRejects('IMG_ERR_SNAP_FLATTEN_STATE', 'Cannot flatten snapshot in state USED');
  });
  it('type refusal comes before the state column', () =>
    given(imageIn('USED', { type: 'CDROM' }))
      .when(cmd.snapDelete())
      .thenRejects('IMG_ERR_SNAP_TYPE', 'IMAGES of type KERNEL, RAMDISK, BACKUP, FILESYSTEM and CONTEXT does not have snapshots.'));
});

describe('§6.1 FINC', () => {
  it('INIT', () => given(imageIn('INIT')).when(cmd.finc()).thenRejects(...NOT_FOUND));
  it('READY → LOCKED with [INCREMENT_FLATTEN] and KEEP_LAST', () => {
    const f = backupIn('READY').when(cmd.finc()).thenState('LOCKED');
    expect(f.effects).toContainEqual(expect.objectContaining({ kind: 'driver.request', action: 'INCREMENT_FLATTEN', extra: { KEEP_LAST: '2' } }));
  });
  for (const s of IMAGE_STATES.filter((x) => x !== 'INIT' && x !== 'READY')) {
    it(`${s}: E6`, () => backupIn(s).when(cmd.finc()).thenRejects('IMG_ERR_FLATTEN_INCREMENTS_STATE', `Cannot flatten increments in state ${s}`));
  }
  it('not a BACKUP image: refused before the state column', () =>
    given(imageIn('READY')).when(cmd.finc()).thenRejects('IMG_ERR_NOT_BACKUP', 'Image is not of type BACKUP'));
});

describe('§6.1 CHT: allowed in every state', () => {
  it('INIT', () => given(imageIn('INIT')).when(cmd.chtype('DATABLOCK')).thenRejects(...NOT_FOUND));
  for (const s of IMAGE_STATES.filter((x) => x !== 'INIT')) {
    it(`${s}: ok, state unchanged`, () => {
      const f = given(imageIn(s)).when(cmd.chtype('datablock')).then({ state: s, type: 'image.typeChanged' });
      expect(f.changes.type).toBe('DATABLOCK');
    });
  }
});

describe('§6.1 on images that are not there any more', () => {
  it('every command on a removed image is refused with a clear text', () => {
    const facts = [...imageIn('ERROR'), ...history(ID)];
    const removed = given(facts).when(cmd.delete()).aggregate;
    givenAggregate(removed).when(cmd.enable()).thenRejects('IMG_ERR_REMOVED', 'Image 5 has been deleted.');
    givenAggregate(removed).when(registerFromPath()).thenRejects('IMG_ERR_REMOVED', 'Image 5 has been deleted.');
  });
});
