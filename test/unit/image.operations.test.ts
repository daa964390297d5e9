/**
 * Spec §7.7, §7.8, §7.11, §7.13: the checks inside the operations, beyond the state tables.
 */
import { describe, expect, it } from 'vitest';
import type { SnapshotList } from '../../src/messages/image-record.js';
import type { DatastoreInfo } from '../../src/messages/datastore-info.js';
import { event, given, history } from '../support/image-spec.js';
import { acquire, allocateBackup, readyWithSnapshots, registerReady } from '../support/image-states.js';
import { BACKUP_DS, FILE_DS, IMAGE_DS } from '../support/fixtures.js';
import { deleteSnapshot, revertSnapshot, snapshotDeletionError } from '../../src/machines/image/snapshots.js';
import { rewriteIncrements } from '../../src/machines/image/increments.js';

const ID = 5;
const snap = (id: number, parent: number, children: number[], active = false, size = 1) => ({ id, name: `s${id}`, date: id, parent, children, active, size });
const tree = (mode: SnapshotList['mode']): SnapshotList => ({
  mode,
  currentBase: -1,
  nextSnapshot: 3,
  list: [snap(0, -1, [1]), snap(1, 0, [2]), snap(2, 1, [], true)],
});
const withSnapshots = (list: SnapshotList) => readyWithSnapshots({}, list);

describe('§7.7 persistent toggle', () => {
  const pers = (persistent: boolean, ctx = {}) => event({ type: 'image.setPersistent', imageId: ID, persistent }, { ctx });
  it('datastore gone', () => given(history(ID, registerReady())).when(pers(true, { datastore: null })).thenRejects('IMG_ERR_PERSISTENT_DS_GONE', 'Datastore no longer exists.'));
  it('lvm datastores', () =>
    given(history(ID, registerReady())).when(pers(true, { datastore: { ...IMAGE_DS, dsMad: 'LVM' } })).thenRejects('IMG_ERR_PERSISTENT_LVM', "lvm datastores doesn't support change of image persistency."));
  it('KERNEL must stay non-persistent', () =>
    given(history(ID, registerReady({ type: 'KERNEL' }))).when(pers(true, { datastore: FILE_DS })).thenRejects('IMG_ERR_PERSISTENT_FILE_TYPE', 'KERNEL, RAMDISK and CONTEXT must be non-persistent'));
  it('persistent-only datastore', () =>
    given(history(ID, registerReady({ persistent: true }))).when(pers(false, { datastore: { ...IMAGE_DS, persistentOnly: true } })).thenRejects('IMG_ERR_PERSISTENT_ONLY', 'This Datastore only accepts persistent images.'));
  it('setting the current value is accepted and changes nothing', () => {
    const f = given(history(ID, registerReady({ persistent: true }))).when(pers(true)).thenState('READY');
    expect(f.changes).toEqual({});
    expect(f.detail).toMatchObject({ changed: false });
  });
  it('BACKUP images must stay persistent', () => {
    const facts = history(
      ID,
      allocateBackup({ source: 'b' }),
    );
    given(facts).when(pers(false, { datastore: BACKUP_DS })).thenRejects('IMG_ERR_PERSISTENT_BACKUP', 'BACKUP images must be persistent');
  });
});

describe('§7.8 chtype', () => {
  const cht = (t: string) => event({ type: 'image.chtype', imageId: ID, imageType: t });
  it('within OS/DATABLOCK/CDROM', () => expect(given(history(ID, registerReady())).when(cht('CDROM')).thenState('READY').changes.type).toBe('CDROM'));
  it('across groups', () =>
    given(history(ID, registerReady())).when(cht('KERNEL')).thenRejects('IMG_ERR_CHTYPE_INCOMPATIBLE', 'Cannot change image type to an incompatible type for the current datastore.'));
  it('within KERNEL/RAMDISK/CONTEXT', () => {
    const facts = history(ID, registerReady({ type: 'KERNEL' }));
    expect(given(facts).when(cht('ramdisk')).thenState('READY').changes.type).toBe('RAMDISK');
    given(facts).when(cht('OS')).thenRejects('IMG_ERR_CHTYPE_INCOMPATIBLE', 'Cannot change image type to an incompatible type for the current datastore.');
  });
  it('FILESYSTEM cannot change (W18: with the space restored)', () =>
    given(history(ID, registerReady({ type: 'FILESYSTEM' }))).when(cht('OS')).thenRejects('IMG_ERR_CHTYPE_FIXED', 'Cannot change type for FILESYSTEM images.'));
  it('W18: unknown names are refused plainly', () => given(history(ID, registerReady())).when(cht('floppy')).thenRejects('IMG_ERR_UNKNOWN_TYPE', 'Unknown type floppy'));
  it('an image with snapshots can only be OS or DATABLOCK', () =>
    given(withSnapshots(tree('DENY'))).when(cht('CDROM')).thenRejects('IMG_ERR_CHTYPE_SNAPSHOTS', 'Image with snapshots can be only of type OS or DATABLOCK'));
  it('an empty name means the default type', () => expect(given(history(ID, registerReady({ type: 'DATABLOCK' }))).when(cht('')).thenState('READY').changes.type).toBe('OS'));
});

describe('§7.11 image snapshots', () => {
  it('missing snapshot', () => {
    const facts = withSnapshots(tree('ALLOW'));
    for (const type of ['image.snapshotDelete', 'image.snapshotRevert', 'image.snapshotFlatten'] as const) {
      given(facts).when(event({ type, imageId: ID, snapshotId: 9 })).thenRejects('IMG_ERR_SNAP_NOT_FOUND', 'Snapshot does not exist');
    }
  });
  it('a negative snapshot id (oned uses -1 for "none") is a snapshot that does not exist, not a malformed command', () => {
    const facts = withSnapshots(tree('ALLOW'));
    for (const type of ['image.snapshotDelete', 'image.snapshotRevert', 'image.snapshotFlatten'] as const) {
      given(facts).when(event({ type, imageId: ID, snapshotId: -1 })).thenRejects('IMG_ERR_SNAP_NOT_FOUND', 'Snapshot does not exist');
    }
  });
  it('DENY and MIXED protect the active snapshot and snapshots with children', () => {
    for (const mode of ['DENY', 'MIXED'] as const) {
      expect(snapshotDeletionError(tree(mode), 2)).toEqual({ code: 'IMG_ERR_SNAP_ACTIVE', message: 'Cannot delete the active snapshot' });
      expect(snapshotDeletionError(tree(mode), 0)).toEqual({ code: 'IMG_ERR_SNAP_CHILDREN', message: 'Cannot delete snapshot with children' });
    }
    given(withSnapshots(tree('DENY'))).when(event({ type: 'image.snapshotDelete', imageId: ID, snapshotId: 2 })).thenRejects('IMG_ERR_SNAP_ACTIVE', 'Cannot delete the active snapshot');
  });
  it('ALLOW, FORMAT, LINEAR allow deleting any existing snapshot', () => {
    for (const mode of ['ALLOW', 'FORMAT', 'LINEAR'] as const) expect(snapshotDeletionError(tree(mode), 1)).toBeUndefined();
  });
  it('deleting re-links the children to the parent and passes on "active"', () => {
    const l = deleteSnapshot(tree('ALLOW'), 1);
    expect(l.list).toEqual([snap(0, -1, [2]), snap(2, 0, [], true)]);
    expect(deleteSnapshot(tree('ALLOW'), 2).list.find((s) => s.id === 1)?.active).toBe(true);
  });
  it('revert marks the target active; MIXED sets CURRENT_BASE; LINEAR drops younger snapshots', () => {
    expect(revertSnapshot(tree('DENY'), 0).list.list.filter((s) => s.active).map((s) => s.id)).toEqual([0]);
    expect(revertSnapshot(tree('MIXED'), 1).list.currentBase).toBe(1);
    const lin = revertSnapshot(tree('LINEAR'), 0);
    expect(lin.list.list.map((s) => s.id)).toEqual([0]);
    expect(lin.droppedMb).toBe(2);
  });
  it('W29: reverting to the active snapshot is a no-op without driver', () => {
    const f = given(withSnapshots(tree('DENY'))).when(event({ type: 'image.snapshotRevert', imageId: ID, snapshotId: 2 })).then({ state: 'READY', type: 'image.commandIgnored' });
    expect(f.effects).toEqual([]);
  });
});

describe('§7.13.2 increment rewrite', () => {
  const incs = [0, 1, 2, 3].map((id) => ({ id, type: id === 0 ? ('FULL' as const) : ('INCREMENT' as const), parentId: id - 1, source: `s${id}`, size: 1, date: 0 }));
  it('the first listed becomes FULL with the new size; older ones are merged away', () => {
    const r = rewriteIncrements(incs, '7 2:n2,3:n3');
    expect(r).toEqual({
      ok: true,
      increments: [
        { id: 2, type: 'FULL', parentId: -1, source: 'n2', size: 7, date: 0 },
        { id: 3, type: 'INCREMENT', parentId: 2, source: 'n3', size: 1, date: 0 },
      ],
    });
  });
  it('an empty chain is a successful no-op', () => expect(rewriteIncrements(incs, '4')).toEqual({ ok: true, increments: incs }));
  it('W17: an unknown id or a malformed element rejects the whole reply', () => {
    expect(rewriteIncrements(incs, '7 2:n2,9:x')).toEqual({ ok: false, reason: 'unknown increment 9' });
    expect(rewriteIncrements(incs, 'abc')).toEqual({ ok: false, reason: 'malformed reply "abc"' });
  });
});

describe('§7.13.1 restore', () => {
  const backup = (selected = false) =>
    history(
      ID,
      allocateBackup({ source: 'b', diskIds: [0, 2], selectedDisks: selected, owner: { uid: 7, gid: 100, uname: 'alice', gname: 'users' } }),
    );
  const restore = (options = {}, datastore: typeof IMAGE_DS | null = IMAGE_DS) =>
    event({ type: 'image.restore', imageId: ID, datastoreId: 1, options }, { ctx: { datastore } });
  it('asks the backup driver for a RESTORE with the destination and options; the image stays READY', () => {
    const f = given(backup()).when(restore({ name: 'back', diskId: 2 })).then({ type: 'image.restoreRequested', state: 'READY', changes: {} });
    expect(f.effects).toEqual([
      expect.objectContaining({
        kind: 'driver.request',
        action: 'RESTORE',
        datastoreId: 100,
        extra: { DESTINATION_DS_ID: '1', USERNAME: 'oneadmin', USER_ID: '0', GROUP_ID: '0', NAME: 'back', NO_IP: 'NO', NO_NIC: 'NO', DISK_ID: '2' },
      }),
    ]);
  });
  it('refusals', () => {
    given(history(ID, registerReady())).when(restore()).thenRejects('IMG_ERR_RESTORE_TYPE', 'Can only restore images of type BACKUP');
    given(backup()).when(restore({}, null)).thenRejects('IMG_ERR_RESTORE_DST_GONE', 'Destination datastore does not exist');
    given(backup()).when(restore({}, FILE_DS)).thenRejects('IMG_ERR_RESTORE_DST_TYPE', 'Destination can be only an image datastore');
    given(backup(true)).when(restore()).thenRejects('IMG_ERR_RESTORE_SELECTED', 'Cannot restore a VM from a selected disk backup');
    given(backup()).when(restore({ diskId: 1 })).thenRejects('IMG_ERR_RESTORE_DISK', 'Cannot restore disk 1, it is not part of the backup');
  });
  it('W15: not while the chain is being flattened', () => {
    const facts = [...backup()];
    const locked = given(facts).when(event({ type: 'image.flattenIncrements', imageId: ID, keepLast: 1 })).thenState('LOCKED');
    given([...facts, locked]).when(restore()).thenRejects('IMG_ERR_RESTORE_STATE', 'Cannot restore backup in state LOCKED');
  });
});

describe('backup command (the part a VM backup plays)', () => {
  const backup = (o: { datastore?: DatastoreInfo; chain?: boolean } = {}) =>
    event({ type: 'image.backup', imageId: ID, backupDatastoreId: 100, backupImageId: 9, vmId: 4, incremental: true, chain: o.chain ?? false }, { ctx: { datastore: o.datastore ?? BACKUP_DS } });
  it('asks the backup datastore driver to store the disk; the image does not change', () => {
    const f = given(history(ID, registerReady({ format: 'qcow2' }))).when(backup()).then({ type: 'image.backupRequested', state: 'READY', changes: {} });
    expect(f.effects).toEqual([
      expect.objectContaining({
        kind: 'driver.request',
        action: 'BACKUP',
        imageId: ID,
        datastoreId: 100,
        extra: { BACKUP_IMAGE_ID: '9', CHAIN: 'NO', MODE: 'INCREMENT', VM_ID: '4', DISK_SOURCE: '/var/lib/one/datastores/1/src-5', DISK_FORMAT: 'qcow2' },
      }),
    ]);
  });
  it('works while VMs use the disk, but not while a driver rewrites it', () => {
    given(history(ID, registerReady({ persistent: true }), acquire(ID, 10))).when(backup()).thenState('USED_PERS');
    given(readyWithSnapshots()).when(event({ type: 'image.snapshotFlatten', imageId: ID, snapshotId: 0 })).thenState('LOCKED');
    const locked = [...readyWithSnapshots()];
    const l = given(locked).when(event({ type: 'image.snapshotFlatten', imageId: ID, snapshotId: 0 })).then({});
    given([...locked, l]).when(backup()).thenRejects('IMG_ERR_BACKUP_STATE', 'Cannot back up image in state LOCKED');
  });
  it('needs a BACKUP_DS and a disk image', () => {
    given(history(ID, registerReady())).when(backup({ datastore: IMAGE_DS })).thenRejects('IMG_ERR_BACKUP_DS', 'Backups can only be stored in a BACKUP_DS datastore');
    given(history(ID, registerReady({ type: 'KERNEL' }))).when(backup()).thenRejects('IMG_ERR_BACKUP_TYPE', 'KERNEL images cannot be backed up');
  });
});
