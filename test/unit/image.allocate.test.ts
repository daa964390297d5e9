/**
 * Spec §7.1–§7.4: allocation of images (register, clone target, save-as, backup).
 */
import { describe, expect, it } from 'vitest';
import { event, given, history, replay } from '../support/image-spec.js';
import { registerReady } from '../support/image-states.js';
import { ADMIN, BACKUP_DS, FILE_DS, IMAGE_DS, SYSTEM_DS, T0, USER } from '../support/fixtures.js';
import type { EventOptions } from '../support/image-spec.js';

const ID = 5;
const alloc = (template: Record<string, string>, o: EventOptions = {}) =>
  event({ type: 'image.allocate', imageId: ID, datastoreId: o.ctx?.datastore?.id ?? 1, template }, o);
const when = (template: Record<string, string>, o: EventOptions = {}) => given([], ID).when(alloc(template, o));

describe('§7.1 allocate', () => {
  it('PATH → LOCKED with [CP], size from STAT, FORMAT cleared, membership and quota in the same fact (W22)', () => {
    const f = when({ NAME: 'ubuntu', PATH: 'http://x/u.qcow2', FORMAT: 'qcow2' }, { ctx: { statSizeMb: 2048 }, actor: USER }).then({
      type: 'image.registered',
      state: 'LOCKED',
      prevState: 'INIT',
    });
    expect(f.changes).toMatchObject({ name: 'ubuntu', path: 'http://x/u.qcow2', format: '', size: 2048, uid: 7, gid: 100, uname: 'alice', persistent: false });
    expect(f.effects).toEqual([
      { kind: 'datastore.imageAdded', datastoreId: 1, imageId: ID, sizeMb: 2048 },
      { kind: 'quota.change', uid: 7, gid: 100, datastoreId: 1, images: 1, sizeMb: 2048 },
      expect.objectContaining({ kind: 'driver.request', action: 'CP', imageId: ID, datastoreId: 1 }),
    ]);
  });
  it('PATH without a STAT result or SIZE: W12 says the size is unknown', () =>
    when({ NAME: 'a', PATH: '/tmp/a' }).thenRejects('IMG_ERR_SIZE_UNKNOWN', 'Cannot determine image SIZE.'));
  it('empty OS/DATABLOCK → LOCKED with [MKFS], FORMAT raw by default', () => {
    const f = when({ NAME: 'blank', TYPE: 'datablock', SIZE: '1024', FS: 'ext4' }).thenState('LOCKED');
    expect(f.changes).toMatchObject({ type: 'DATABLOCK', format: 'raw', fs: 'ext4', size: 1024 });
    expect(f.effects).toContainEqual(expect.objectContaining({ action: 'MKFS' }));
  });
  it("empty disk takes the datastore's DRIVER as FORMAT and template DRIVER", () => {
    const f = when({ NAME: 'blank', TYPE: 'OS', SIZE: '1', DRIVER: 'user-value' }, { ctx: { datastore: { ...IMAGE_DS, driver: 'qcow2' } } }).thenState('LOCKED');
    expect(f.changes.format).toBe('qcow2');
    expect(f.changes.template).toMatchObject({ DRIVER: 'qcow2' });
  });
  it('empty disk keeps a template FORMAT when the datastore has no DRIVER; a user DRIVER is discarded', () => {
    const f = when({ NAME: 'blank', SIZE: '1', FORMAT: 'qcow2', DRIVER: 'vmdk' }).thenState('LOCKED');
    expect(f.changes.format).toBe('qcow2');
    expect(f.changes.template).not.toHaveProperty('DRIVER');
  });
  it('empty disk without SIZE', () => when({ NAME: 'blank' }).thenRejects('IMG_ERR_SIZE', 'Wrong number or missing SIZE attribute.'));
  it('SOURCE (administrator) → READY at once, no driver request', () => {
    const f = when({ NAME: 'pre', SOURCE: '/data/pre', FORMAT: 'raw', SIZE: '5' }).thenState('READY');
    expect(f.effects.map((e) => e.kind)).toEqual(['datastore.imageAdded', 'quota.change']);
  });
  it('SOURCE by a non-administrator: restricted attribute', () =>
    when({ NAME: 'pre', SOURCE: '/data/pre', FORMAT: 'raw', SIZE: '5' }, { actor: USER }).thenRejects(
      'IMG_ERR_RESTRICTED_ATTR',
      'Template includes a restricted attribute SOURCE',
    ));
  it('SOURCE and PATH', () =>
    when({ NAME: 'x', SOURCE: '/a', PATH: '/b', FORMAT: 'raw', SIZE: '1' }).thenRejects('IMG_ERR_PATH_AND_SOURCE', 'PATH and SOURCE cannot be both set.'));
  it('SOURCE without FORMAT', () => when({ NAME: 'x', SOURCE: '/a', SIZE: '1' }).thenRejects('IMG_ERR_SOURCE_NEEDS_FORMAT', 'SOURCE needs FORMAT to be set.'));
  it('SOURCE without SIZE', () => when({ NAME: 'x', SOURCE: '/a', FORMAT: 'raw' }).thenRejects('IMG_ERR_SIZE', 'Wrong number or missing SIZE attribute.'));
  it('SIZE is read as a leading integer', () => expect(when({ NAME: 'x', SOURCE: '/a', FORMAT: 'raw', SIZE: '12MB' }).thenState('READY').changes.size).toBe(12));
  it('CDROM without PATH or SOURCE', () => when({ NAME: 'x', TYPE: 'CDROM', SIZE: '1' }).thenRejects('IMG_ERR_NO_PATH_NOR_SOURCE', 'No PATH nor SOURCE in template.'));
  it('W36: FILESYSTEM without PATH or SOURCE is refused instead of staying LOCKED forever', () =>
    when({ NAME: 'x', TYPE: 'FILESYSTEM', SIZE: '1' }).thenRejects('IMG_ERR_NO_PATH_NOR_SOURCE', 'No PATH nor SOURCE in template.'));

  describe('names (§7.1.4 step 1)', () => {
    it('empty', () => when({ PATH: '/a', SIZE: '1' }).thenRejects('OBJ_ERR_NAME_EMPTY', 'Invalid NAME, it cannot be empty'));
    for (const c of ['&', '|', ':', '\\', '"', ';', '/', "'", '#', '{', '}', '$', '<', '>', '\t', '\n']) {
      it(`char ${JSON.stringify(c)}`, () => when({ NAME: `a${c}b`, PATH: '/a', SIZE: '1' }).thenRejects('OBJ_ERR_NAME_CHAR', `Invalid NAME, char '${c}' is not allowed`));
    }
    it('129 characters', () => when({ NAME: 'n'.repeat(129), PATH: '/a', SIZE: '1' }).thenRejects('OBJ_ERR_NAME_LENGTH', 'Invalid NAME, max length is 128 chars'));
    it('128 characters are fine', () => when({ NAME: 'n'.repeat(128), PATH: '/a', SIZE: '1' }).thenState('LOCKED'));
    it('taken by another image of the owner', () =>
      when({ NAME: 'dup', PATH: '/a', SIZE: '1' }, { ctx: { nameTakenBy: 3 } }).thenRejects('IMG_ERR_NAME_TAKEN', 'NAME is already taken by IMAGE 3.'));
  });

  describe('types and datastores (§3, §7.1.4 step 2)', () => {
    it('type names are case-insensitive', () => expect(when({ NAME: 'x', TYPE: 'cdrom', PATH: '/a', SIZE: '1' }).thenState('LOCKED').changes.type).toBe('CDROM'));
    it('W18: an unknown type is refused with a plain message', () =>
      when({ NAME: 'x', TYPE: 'FLOPPY', PATH: '/a', SIZE: '1' }).thenRejects('IMG_ERR_UNKNOWN_TYPE', 'Unknown type FLOPPY'));
    it('empty TYPE uses DEFAULT_IMAGE_TYPE; only OS, CDROM, DATABLOCK are accepted as default', () => {
      const d = (imageType: string) => ({ ctx: { defaults: { imageType, devicePrefix: 'hd', persistentNew: '', persistent: '' } } });
      expect(when({ NAME: 'x', PATH: '/a', SIZE: '1' }, d('DATABLOCK')).thenState('LOCKED').changes.type).toBe('DATABLOCK');
      expect(when({ NAME: 'x', PATH: '/a', SIZE: '1' }, d('KERNEL')).thenState('LOCKED').changes.type).toBe('OS');
    });
    it('KERNEL in an IMAGE_DS', () =>
      when({ NAME: 'k', TYPE: 'KERNEL', PATH: '/a', SIZE: '1' }).thenRejects(
        'IMG_ERR_TYPE_NEEDS_FILE_DS',
        'IMAGES of type KERNEL, RAMDISK and CONTEXT cannot be registered in an IMAGE_DS datastore',
      ));
    it('W19: OS in a FILE_DS names the actual datastore type', () =>
      when({ NAME: 'o', PATH: '/a', SIZE: '1' }, { ctx: { datastore: FILE_DS } }).thenRejects(
        'IMG_ERR_TYPE_NEEDS_IMAGE_DS',
        'IMAGES of type OS can only be registered in an IMAGE_DS datastore, not in a FILE_DS datastore',
      ));
    it('KERNEL in a FILE_DS', () => when({ NAME: 'k', TYPE: 'KERNEL', PATH: '/a', SIZE: '1' }, { ctx: { datastore: FILE_DS } }).thenState('LOCKED'));
    it('BACKUP and SYSTEM datastores refuse allocation', () => {
      when({ NAME: 'x', PATH: '/a', SIZE: '1' }, { ctx: { datastore: BACKUP_DS } }).thenRejects('IMG_ERR_ALLOC_DS_TYPE', 'New images can only be allocated in a files or image datastore.');
      when({ NAME: 'x', PATH: '/a', SIZE: '1' }, { ctx: { datastore: SYSTEM_DS } }).thenRejects('IMG_ERR_ALLOC_DS_TYPE', 'New images can only be allocated in a files or image datastore.');
    });
    it('an unknown datastore', () => when({ NAME: 'x', PATH: '/a', SIZE: '1' }, { ctx: { datastore: null } }).thenRejects('DS_ERR_NOT_FOUND', 'Error getting datastore [1].'));
  });

  describe('persistence (§7.1.3)', () => {
    const d = (persistentNew: string) => ({ ctx: { defaults: { imageType: 'OS', devicePrefix: 'hd', persistentNew, persistent: '' } } });
    it('only the literal YES (any case) means persistent', () => {
      expect(when({ NAME: 'x', PATH: '/a', SIZE: '1', PERSISTENT: 'yes' }).thenState('LOCKED').changes.persistent).toBe(true);
      expect(when({ NAME: 'x', PATH: '/a', SIZE: '1', PERSISTENT: 'TRUE' }).thenState('LOCKED').changes.persistent).toBe(false);
    });
    it('the template wins over DEFAULT_IMAGE_PERSISTENT_NEW, which applies when absent', () => {
      expect(when({ NAME: 'x', PATH: '/a', SIZE: '1', PERSISTENT: 'NO' }, d('YES')).thenState('LOCKED').changes.persistent).toBe(false);
      expect(when({ NAME: 'x', PATH: '/a', SIZE: '1' }, d('YES')).thenState('LOCKED').changes.persistent).toBe(true);
    });
    it('SHAREABLE is dropped from non-persistent images', () => {
      const f = when({ NAME: 'x', PATH: '/a', SIZE: '1', PERSISTENT_TYPE: 'shareable' }).thenState('LOCKED');
      expect(f.changes.template).not.toHaveProperty('PERSISTENT_TYPE');
      const g = when({ NAME: 'x', PATH: '/a', SIZE: '1', PERSISTENT: 'YES', PERSISTENT_TYPE: 'SHAREABLE' }).thenState('LOCKED');
      expect(g.changes.template).toMatchObject({ PERSISTENT_TYPE: 'SHAREABLE' });
    });
    it('CDROM is forced non-persistent', () =>
      expect(when({ NAME: 'x', TYPE: 'CDROM', PATH: '/a', SIZE: '1', PERSISTENT: 'YES' }).thenState('LOCKED').changes.persistent).toBe(false));
    it('persistent-only datastore refuses a non-persistent image', () =>
      when({ NAME: 'x', PATH: '/a', SIZE: '1' }, { ctx: { datastore: { ...IMAGE_DS, persistentOnly: true } } }).thenRejects(
        'IMG_ERR_PERSISTENT_ONLY',
        'This Datastore only accepts persistent images.',
      ));
    it('W20: a CDROM asked as persistent cannot slip into a persistent-only datastore', () =>
      when({ NAME: 'x', TYPE: 'CDROM', PATH: '/a', SIZE: '1', PERSISTENT: 'YES' }, { ctx: { datastore: { ...IMAGE_DS, persistentOnly: true } } }).thenRejects(
        'IMG_ERR_PERSISTENT_ONLY',
        'This Datastore only accepts persistent images.',
      ));
  });

  describe('template (§2, §3)', () => {
    it('consumed attributes become fields and leave the template; free attributes stay', () => {
      const f = when({ NAME: 'x', PATH: '/a', SIZE: '1', TM_MAD: 'ssh', description: 'hello' }).thenState('LOCKED');
      expect(f.changes.template).toEqual({ DESCRIPTION: 'hello', DEV_PREFIX: 'hd' });
    });
    it('DEV_PREFIX defaults for OS/DATABLOCK and is removed for other types', () => {
      expect(when({ NAME: 'x', PATH: '/a', SIZE: '1', DEV_PREFIX: 'vd' }).thenState('LOCKED').changes.template).toMatchObject({ DEV_PREFIX: 'vd' });
      expect(when({ NAME: 'x', TYPE: 'CDROM', PATH: '/a', SIZE: '1', DEV_PREFIX: 'vd' }).thenState('LOCKED').changes.template).not.toHaveProperty('DEV_PREFIX');
    });
    it('REGTIME comes from the envelope, not a clock', () =>
      expect(when({ NAME: 'x', PATH: '/a', SIZE: '1' }, { at: T0 }).thenState('LOCKED').changes.regTime).toBe(T0 / 1000));
  });

  it('allocating an id that exists is refused', () =>
    given(history(ID, registerReady())).when(alloc({ NAME: 'y', PATH: '/a', SIZE: '1' })).thenRejects('IMG_ERR_EXISTS', 'Image 5 already exists.'));
});

describe('§7.4 clone target', () => {
  const ORIGIN = 3;
  const origin = (o: Parameters<typeof registerReady>[0] = {}) => replay(history(ORIGIN, registerReady({ id: ORIGIN, ...o })));
  const clone = (o: EventOptions & { persistent?: boolean } = {}) =>
    given([], ID).when(
      event({ type: 'image.clone', imageId: ID, originId: ORIGIN, name: 'copy', datastoreId: o.ctx?.datastore?.id ?? 1, persistent: o.persistent ?? false }, o),
    );

  it('LOCKED with [CLONE], PATH = origin SOURCE, FORMAT/SIZE from the origin, CLONING_ID set', () => {
    const f = clone({ ctx: { origin: origin({ format: 'qcow2' }) } }).thenState('LOCKED');
    expect(f.changes).toMatchObject({ path: '/var/lib/one/datastores/1/src-3', format: 'qcow2', size: 10, cloningId: ORIGIN, name: 'copy' });
    expect(f.effects).toContainEqual(expect.objectContaining({ kind: 'driver.request', action: 'CLONE' }));
  });
  it('W31: the origin history (ERROR, FROM_APP*, SAVED_*) is not inherited', () => {
    const o = origin({ template: { FROM_APP: '4', FROM_APP_NAME: 'a', LABEL: 'keep' } });
    const f = clone({ ctx: { origin: o && { ...o, template: { ...o.template, ERROR: 'old', SAVED_VM_ID: '1' } } } }).thenState('LOCKED');
    expect(f.changes.template).toEqual({ LABEL: 'keep', DEV_PREFIX: 'hd' });
  });
  it('persistence: inherited, overridden by DEFAULT_IMAGE_PERSISTENT, forced by the caller', () => {
    expect(clone({ ctx: { origin: origin({ persistent: true }) } }).thenState('LOCKED').changes.persistent).toBe(true);
    const defaults = { imageType: 'OS', devicePrefix: 'hd', persistentNew: '', persistent: 'NO' };
    expect(clone({ ctx: { origin: origin({ persistent: true }), defaults } }).thenState('LOCKED').changes.persistent).toBe(false);
    expect(clone({ persistent: true, ctx: { origin: origin() } }).thenState('LOCKED').changes.persistent).toBe(true);
  });
  it('origin missing', () => clone({ ctx: { origin: null } }).thenRejects('IMG_ERR_CLONE_ORIGIN_GONE', 'Cannot clone image, it does not exist'));
  it('origin with snapshots', () => {
    const o = origin();
    const withSnap = o && { ...o, snapshots: { ...o.snapshots, list: [{ id: 0, name: '', date: 0, parent: -1, children: [], active: true, size: 1 }] } };
    clone({ ctx: { origin: withSnap } }).thenRejects('IMG_ERR_CLONE_SNAPSHOTS', 'Cannot clone images with snapshots');
  });
  it('origin of a type that cannot be cloned', () => {
    const o = replay(history(ORIGIN, registerReady({ id: ORIGIN, type: 'KERNEL' })));
    clone({ ctx: { origin: o } }).thenRejects('IMG_ERR_CLONE_TYPE', 'KERNEL images cannot be cloned.');
  });
  it('W18: BACKUP origin, typo fixed', () => {
    const o = origin();
    clone({ ctx: { origin: o && { ...o, type: 'BACKUP' } } }).thenRejects('IMG_ERR_CLONE_BACKUP', 'Cannot clone backup images');
  });
  it('origin in a state that cannot be cloned: E4 (allocate-time)', () => {
    const o = origin();
    clone({ ctx: { origin: o && { ...o, state: 'LOCKED' } } }).thenRejects('IMG_ERR_CLONE_STATE', 'Cannot clone image in state: LOCKED');
    clone({ ctx: { origin: o && { ...o, state: 'USED_PERS' } } }).thenRejects('IMG_ERR_CLONE_STATE', 'Cannot clone image in state: USED_PERS');
  });
  it('target datastore must be an IMAGE_DS with the same DS_MAD', () => {
    clone({ ctx: { origin: origin(), datastore: FILE_DS } }).thenRejects('IMG_ERR_CLONE_DS_TYPE', 'Clone only supported for IMAGE_DS Datastores');
    const other = { ...IMAGE_DS, id: 101, dsMad: 'ceph' };
    clone({ ctx: { origin: origin(), datastore: other, originDatastore: IMAGE_DS } }).thenRejects('IMG_ERR_CLONE_DS_MAD', 'Clone only supported to same DS_MAD Datastores');
    clone({ ctx: { origin: origin(), datastore: { ...other, dsMad: 'fs' }, originDatastore: IMAGE_DS } }).thenState('LOCKED');
  });
});

describe('§7.2 save-as', () => {
  const saveAs = (diskFormat: string, imageType = 'DATABLOCK') =>
    given([], ID).when(
      event({ type: 'image.allocateSaveAs', imageId: ID, name: 'snap', vmId: 20, diskId: 1, originImageId: 3, imageType, sizeMb: 50, diskFormat }),
    );
  it('LOCKED with [MKFS], FORMAT save_as and the SAVED_* attributes', () => {
    const f = saveAs('raw').thenState('LOCKED');
    expect(f.changes).toMatchObject({ format: 'save_as', size: 50, saveAs: { vmId: 20, diskId: 1, originImageId: 3, diskFormat: 'raw', transferring: false } });
    expect(f.changes.template).toMatchObject({ SAVE_AS_HOT: 'YES', SAVED_VM_ID: '20', SAVED_DISK_ID: '1', SAVED_IMAGE_ID: '3' });
  });
  it('W34: a VM disk without FORMAT or DRIVER is refused before anything starts', () =>
    saveAs('').thenRejects('IMG_ERR_SAVE_AS_FORMAT', 'Image created to save as a disk but VM disk does not contains either FORMAT or DRIVER attribute.'));
  it('only OS, DATABLOCK, CDROM disks can be saved', () => saveAs('raw', 'KERNEL').thenRejects('IMG_ERR_SAVE_AS_TYPE', 'Cannot save an image of type KERNEL'));
});

describe('§7.3 backup images', () => {
  const backup = (o: { incremental?: boolean; at?: number; id?: number } = {}) =>
    event(
      {
        type: 'image.allocateBackup',
        imageId: o.id ?? ID,
        datastoreId: 100,
        vmId: 9,
        source: 'snap-1',
        sizeMb: 10,
        format: 'raw',
        diskIds: [1, 0, 1],
        incremental: o.incremental ?? false,
        backupJobId: 4,
        selectedDisks: true,
        owner: { uid: 7, gid: 100, uname: 'alice', gname: 'users' },
      },
      { ctx: { datastore: BACKUP_DS }, actor: ADMIN, at: o.at ?? T0 },
    );
  it('READY at once, held by its VM, persistent, owned by the VM owner', () => {
    const f = given([], ID).when(backup()).thenState('READY');
    expect(f.changes).toMatchObject({ type: 'BACKUP', persistent: true, vms: [9], uid: 7, uname: 'alice', backupDiskIds: [0, 1], source: 'snap-1' });
    expect(f.changes.template).toEqual({ BACKUP_JOB_ID: '4', BACKUP_SELECTED_DISKS: 'YES' });
    expect(f.effects.map((e) => e.kind)).toEqual(['datastore.imageAdded', 'quota.change']);
  });
  it('W33: two backups of one VM in the same second get distinct names', () => {
    const a = given([], 5).when(backup({ id: 5 })).thenState('READY').changes.name;
    const b = given([], 6).when(backup({ id: 6 })).thenState('READY').changes.name;
    expect(a).toBe('9 20-Aug 10.58.25 #5');
    expect(b).not.toBe(a);
  });
  it('incremental mode starts a chain with a FULL increment; later ones add INCREMENTs and SIZE is their sum', () => {
    const facts = history(ID, backup({ incremental: true }), event({ type: 'image.addIncrement', imageId: ID, source: 'inc-1', sizeMb: 3 }));
    const v = replay(facts);
    expect(v?.increments.map((i) => [i.id, i.type, i.parentId])).toEqual([
      [0, 'FULL', -1],
      [1, 'INCREMENT', 0],
    ]);
    expect(v?.size).toBe(13);
  });
  it('increments need an incremental chain on an idle backup', () => {
    given(history(ID, backup())).when(event({ type: 'image.addIncrement', imageId: ID, source: 'x', sizeMb: 1 })).thenRejects(
      'IMG_ERR_NOT_INCREMENTAL',
      'Backup image 5 is not an incremental backup chain',
    );
    given(history(ID, registerReady())).when(event({ type: 'image.addIncrement', imageId: ID, source: 'x', sizeMb: 1 })).thenRejects('IMG_ERR_NOT_BACKUP', 'Image is not of type BACKUP');
  });
  it('only in a BACKUP_DS', () =>
    given([], ID)
      .when({ ...backup(), ctx: { ...backup().ctx, datastore: IMAGE_DS } })
      .thenRejects('IMG_ERR_TYPE_NEEDS_BACKUP_DS', 'IMAGES of type BACKUP can only be registered in an BACKUP_DS datastore'));
  it('a BACKUP image in READY with its VM can still be deleted (E1 does not apply)', () =>
    given(history(ID, backup())).when(event({ type: 'image.delete', imageId: ID })).thenState('DELETE'));
  it('§7.5 step 3: not while the VM is backing up', () =>
    given(history(ID, backup()))
      .when(event({ type: 'image.delete', imageId: ID }, { ctx: { vmBackupActive: true } }))
      .thenRejects('IMG_ERR_DELETE_ACTIVE_BACKUP', 'Active backup on the associated VM. Wait till it finish to delete the backup Image'));
  it('D3 of a BACKUP image removes it from the VM backup list', () => {
    const facts = history(ID, backup(), event({ type: 'image.delete', imageId: ID }));
    const f = given(facts).when((agg) => event({ type: 'driver.reply', imageId: ID, requestId: agg.record.pending?.requestId ?? '', action: 'RM', result: 'SUCCESS', info: '' })).thenState('REMOVED');
    expect(f.effects).toContainEqual({ kind: 'vm.backupRemoved', vmId: 9, imageId: ID });
  });
});

describe('W12: size discovery by STAT', () => {
  it('a failed STAT is reported with its own message', () =>
    given([], 5)
      .when(event({ type: 'image.allocate', imageId: 5, datastoreId: 1, template: { NAME: 'u', PATH: 'http://x/u.img' } }, { ctx: { statFailure: 'Cannot determine size for http://x/u.img' } }))
      .thenRejects('IMG_ERR_STAT_FAILED', 'Cannot determine image SIZE: Cannot determine size for http://x/u.img'));
});
