/**
 * Spec §6.2, VM and clone-bookkeeping commands: every cell, for every state.
 */
import { describe, expect, it } from 'vitest';
import { IMAGE_STATES } from '../../src/messages/states.js';
import { event, given, history, replay } from '../support/image-spec.js';
import { acquire, imageIn, registerFromPath, registerReady, replyTo } from '../support/image-states.js';
import { FILE_DS } from '../support/fixtures.js';

const ID = 5;
const release = (vmId = 10, failed = false) => event({ type: 'image.release', imageId: ID, vmId, failed });
const cloneFinish = (id = 50) => event({ type: 'image.cloneFinish', imageId: ID, clone: { kind: 'image', id } });
const snapshots = {
  mode: 'DENY' as const,
  currentBase: -1,
  nextSnapshot: 1,
  list: [{ id: 0, name: 's0', date: 1, parent: -1, children: [], active: true, size: 2 }],
};
const setSnapshots = () => event({ type: 'image.setSnapshots', imageId: ID, snapshots });
const NOT_FOUND = ['IMG_ERR_NOT_FOUND', 'Error getting image [5].'] as const;
const A1 = ['IMG_ERR_ACQUIRE_LOCKED', 'Cannot acquire image 5, it is locked'] as const;
const A2 = ['IMG_ERR_ACQUIRE_PERSISTENT', 'Cannot acquire image 5, it is persistent and already in use'] as const;
const A3 = (s: string) => ['IMG_ERR_ACQUIRE_STATE', `Cannot acquire image 5, it is in state: ${s}`] as const;

/** An ERROR image still held by a VM: its copy failed while the VM waited. */
const errorHeld = () => history(ID, registerFromPath(), acquire(ID, 10), replyTo('FAILURE', 'x'));
const disabledHeld = () => {
  const facts = errorHeld();
  return [...facts, given(facts).when(event({ type: 'image.disable', imageId: ID })).then({ state: 'DISABLED' })];
};

describe('§6.2 ACQ-D and ACQ-A', () => {
  for (const mode of ['deploy', 'attach'] as const) {
    describe(mode, () => {
      it('INIT', () => given(imageIn('INIT')).when(acquire(ID, 11, mode)).thenRejects(...NOT_FOUND));
      it('READY non-persistent → USED (+vm)', () => {
        const f = given(imageIn('READY', { persistent: false })).when(acquire(ID, 11, mode)).thenState('USED');
        expect(f.changes.vms).toEqual([11]);
      });
      it('READY persistent → USED_PERS (+vm)', () => given(imageIn('READY', { persistent: true })).when(acquire(ID, 11, mode)).thenState('USED_PERS'));
      it('USED: = (+vm)', () => {
        const f = given(imageIn('USED')).when(acquire(ID, 11, mode)).thenState('USED');
        expect(f.changes.vms).toEqual([10, 11]);
      });
      for (const s of ['DISABLED', 'ERROR', 'CLONE', 'DELETE'] as const) {
        it(`${s}: A3`, () => given(imageIn(s)).when(acquire(ID, 11, mode)).thenRejects(...A3(s)));
      }
      it('USED_PERS, not SHAREABLE: A2', () => given(imageIn('USED_PERS')).when(acquire(ID, 11, mode)).thenRejects(...A2));
      it('USED_PERS, SHAREABLE raw: = (+vm)', () => {
        const f = given(imageIn('USED_PERS', { shareable: true })).when(acquire(ID, 11, mode)).thenState('USED_PERS');
        expect(f.changes.vms).toEqual([10, 11]);
      });
      it('USED_PERS, SHAREABLE qcow2: W26 refuses to share a format the hypervisor cannot share', () =>
        given(imageIn('USED_PERS', { shareable: true, format: 'qcow2' }))
          .when(acquire(ID, 11, mode))
          .thenRejects('IMG_ERR_SHAREABLE_FORMAT', 'Cannot acquire image 5, SHAREABLE images must be in raw or dir format, not qcow2'));
    });
  }
  it('LOCKED deploy: +vm → LOCKED_USED (the VM waits)', () => {
    const f = given(imageIn('LOCKED', { persistent: false })).when(acquire(ID, 11)).thenState('LOCKED_USED');
    expect(f.changes.vms).toEqual([11]);
  });
  it('LOCKED deploy, persistent: → LOCKED_USED_PERS', () => given(imageIn('LOCKED', { persistent: true })).when(acquire(ID, 11)).thenState('LOCKED_USED_PERS'));
  it('LOCKED attach: A1', () => given(imageIn('LOCKED')).when(acquire(ID, 11, 'attach')).thenRejects(...A1));
  it('LOCKED_USED deploy: = (+vm)', () => given(imageIn('LOCKED_USED')).when(acquire(ID, 11)).thenState('LOCKED_USED'));
  it('LOCKED_USED attach: A1', () => given(imageIn('LOCKED_USED')).when(acquire(ID, 11, 'attach')).thenRejects(...A1));
  it('LOCKED_USED_PERS deploy, SHAREABLE raw: = (+vm)', () => {
    // A snapshot operation on a raw SHAREABLE image, with a VM deploying meanwhile.
    const facts = history(
      ID,
      registerReady({ persistent: true, shareable: true }),
      acquire(ID, 10),
      setSnapshots(),
      release(10),
      event({ type: 'image.snapshotFlatten', imageId: ID, snapshotId: 0 }),
      acquire(ID, 10),
    );
    expect(replay(facts)?.state).toBe('LOCKED_USED_PERS');
    const f = given(facts).when(acquire(ID, 11)).thenState('LOCKED_USED_PERS');
    expect(f.changes.vms).toEqual([10, 11]);
  });
  it('LOCKED_USED_PERS deploy, SHAREABLE with the format still unknown (copy running): W26 refuses', () =>
    given(imageIn('LOCKED_USED_PERS', { shareable: true }))
      .when(acquire(ID, 11))
      .thenRejects('IMG_ERR_SHAREABLE_FORMAT', 'Cannot acquire image 5, SHAREABLE images must be in raw or dir format, not unknown'));
  it('LOCKED_USED_PERS deploy, not SHAREABLE: A2', () => given(imageIn('LOCKED_USED_PERS')).when(acquire(ID, 11)).thenRejects(...A2));
  it('LOCKED_USED_PERS attach, SHAREABLE: A1', () =>
    given(imageIn('LOCKED_USED_PERS', { shareable: true })).when(acquire(ID, 11, 'attach')).thenRejects(...A1));
  it('LOCKED_USED_PERS attach, not SHAREABLE: A2', () => given(imageIn('LOCKED_USED_PERS')).when(acquire(ID, 11, 'attach')).thenRejects(...A2));
  it('adding a VM that is already there does not change the set', () => {
    const f = given(imageIn('USED')).when(acquire(ID, 10)).thenState('USED');
    expect(f.changes).toEqual({});
  });
  it('A4: types that cannot be disks are refused before the state column', () => {
    for (const type of ['KERNEL', 'RAMDISK', 'CONTEXT'] as const) {
      const facts = history(ID, registerReady({ type }));
      given(facts).when(acquire(ID, 11)).thenRejects('IMG_ERR_ACQUIRE_TYPE', `Image 5 (img-5) of type ${type} cannot be used as DISK.`);
    }
  });
  it('W24: attaching a FILESYSTEM image is refused before it is acquired', () => {
    const facts = history(ID, registerReady({ type: 'FILESYSTEM' }));
    given(facts).when(acquire(ID, 11, 'attach')).thenRejects('IMG_ERR_ATTACH_FILESYSTEM', 'Can not attach disks FILESYSTEM');
    given(facts).when(acquire(ID, 11, 'deploy')).thenState('USED');
  });
});

describe('§6.2 REL and REL-F', () => {
  for (const failed of [false, true]) {
    const col = failed ? 'REL-F' : 'REL';
    describe(col, () => {
      it('INIT', () => given(imageIn('INIT')).when(release(10, failed)).thenRejects(...NOT_FOUND));
      for (const s of ['READY', 'LOCKED', 'CLONE', 'DELETE'] as const) {
        it(`${s}: log (the VM does not hold it)`, () =>
          given(imageIn(s)).when(release(10, failed)).then({ state: s, type: 'image.commandIgnored', changes: {} }));
      }
      it('USED: −vm → READY when no VMs and no clones', () => {
        const f = given(imageIn('USED')).when(release(10, failed)).thenState('READY');
        expect(f.changes.vms).toEqual([]);
      });
      it('USED with another VM: −vm, stays USED', () => {
        const facts = imageIn('USED');
        const more = given(facts).when(acquire(ID, 11)).then({ state: 'USED' });
        given([...facts, more]).when(release(10, failed)).thenState('USED');
      });
      it('USED with a clone running: −vm, stays USED (W35: counters decide)', () => {
        const facts = history(ID, registerReady(), acquire(ID, 10), event({ type: 'image.cloneStart', imageId: ID, clone: { kind: 'image', id: 50 } }));
        given(facts).when(release(10, failed)).thenState('USED');
      });
      it('DISABLED: W9 removes the VM instead of ignoring it', () => {
        const f = given(disabledHeld()).when(release(10, failed)).thenState('DISABLED');
        expect(f.changes.vms).toEqual([]);
      });
      it('ERROR: W9 removes the VM instead of ignoring it', () => {
        const f = given(errorHeld()).when(release(10, failed)).thenState('ERROR');
        expect(f.changes.vms).toEqual([]);
      });
      it('LOCKED_USED: −vm → LOCKED when no VMs', () => given(imageIn('LOCKED_USED')).when(release(10, failed)).thenState('LOCKED'));
    });
  }
  it('REL USED_PERS: −vm, MODTIME refreshed → READY', () => {
    const at = Date.UTC(2026, 10, 1);
    const f = given(imageIn('USED_PERS')).when(event({ type: 'image.release', imageId: ID, vmId: 10 }, { at })).thenState('READY');
    expect(f.changes.modTime).toBe(at / 1000);
  });
  it('REL-F USED_PERS: → ERROR with a reason', () => {
    const f = given(imageIn('USED_PERS')).when(release(10, true)).thenState('ERROR');
    expect(f.changes.error).toMatch(/VM 10 was destroyed while using the persistent image/);
  });
  it('REL-F USED_PERS SHAREABLE with other VMs: → ERROR and W10 tells every remaining VM', () => {
    const facts = history(ID, registerReady({ persistent: true, shareable: true }), acquire(ID, 10), acquire(ID, 11));
    const f = given(facts).when(release(10, true)).thenState('ERROR');
    expect(f.effects).toEqual([{ kind: 'vm.diskFailed', imageId: ID, vmIds: [11] }]);
  });
  it('REL LOCKED_USED_PERS: −vm → LOCKED', () => given(imageIn('LOCKED_USED_PERS')).when(release(10)).thenState('LOCKED'));
  it('REL-F LOCKED_USED_PERS: → ERROR', () => given(imageIn('LOCKED_USED_PERS')).when(release(10, true)).thenState('ERROR'));
  it('W25: releasing types VMs never hold is ignored', () => {
    const facts = history(ID, registerReady({ type: 'KERNEL' }));
    given(facts).when(release()).then({ type: 'image.commandIgnored', state: 'READY' });
  });
  it('a release for a VM that does not hold the image changes nothing', () =>
    given(imageIn('USED_PERS')).when(release(99)).then({ type: 'image.commandIgnored', state: 'USED_PERS', changes: {} }));
});

describe('§6.2 CLR (a clone reading from the image finished)', () => {
  it('INIT', () => given(imageIn('INIT')).when(cloneFinish()).thenRejects(...NOT_FOUND));
  it('USED: −cl → READY when no clones and no VMs', () => {
    const facts = history(ID, registerReady({ persistent: false }), event({ type: 'image.cloneStart', imageId: ID, clone: { kind: 'image', id: 50 } }));
    const f = given(facts).when(cloneFinish()).thenState('READY');
    expect(f.changes.clones).toEqual([]);
  });
  it('USED with a VM: −cl, stays USED', () => {
    const facts = history(ID, registerReady(), acquire(ID, 10), event({ type: 'image.cloneStart', imageId: ID, clone: { kind: 'image', id: 50 } }));
    given(facts).when(cloneFinish()).thenState('USED');
  });
  it('CLONE: −cl → READY', () => given(imageIn('CLONE')).when(cloneFinish()).thenState('READY'));
  it('CLONE with two clones: −cl, stays CLONE', () => {
    const facts = history(ID, registerReady({ persistent: true }), event({ type: 'image.cloneStart', imageId: ID, clone: { kind: 'image', id: 50 } }), event({ type: 'image.cloneStart', imageId: ID, clone: { kind: 'app', id: 3 } }));
    given(facts).when(cloneFinish()).thenState('CLONE');
  });
  for (const s of ['READY', 'DISABLED', 'LOCKED', 'ERROR', 'DELETE', 'USED_PERS', 'LOCKED_USED', 'LOCKED_USED_PERS'] as const) {
    it(`${s}: log`, () => given(imageIn(s)).when(cloneFinish()).then({ state: s, type: 'image.commandIgnored', changes: {} }));
  }
  it('W25: clone start and finish share one type rule', () => {
    const facts = history(ID, registerReady({ type: 'FILESYSTEM' }));
    given(facts).when(event({ type: 'image.cloneStart', imageId: ID, clone: { kind: 'app', id: 1 } })).thenRejects('IMG_ERR_CLONE_TYPE', 'FILESYSTEM images cannot be cloned.');
    const kernel = history(ID, registerReady({ type: 'KERNEL' }));
    expect(replay(kernel)?.datastore.id).toBe(FILE_DS.id);
    given(kernel).when(event({ type: 'image.cloneStart', imageId: ID, clone: { kind: 'app', id: 1 } })).thenRejects('IMG_ERR_CLONE_TYPE', 'KERNEL images cannot be cloned.');
  });
});

describe('§6.2 VMSNAP (snapshot list and size pushed by VMs)', () => {
  it('INIT', () => given(imageIn('INIT')).when(setSnapshots()).thenRejects(...NOT_FOUND));
  it('USED_PERS, OS: applied', () => {
    const f = given(imageIn('USED_PERS')).when(setSnapshots()).then({ type: 'image.snapshotsSet', state: 'USED_PERS' });
    expect(f.changes.snapshots).toEqual(snapshots);
    const g = given(imageIn('USED_PERS')).when(event({ type: 'image.setSize', imageId: ID, sizeMb: 42 })).then({ type: 'image.sizeSet' });
    expect(g.changes.size).toBe(42);
  });
  it('USED_PERS, CDROM: ignored', () => {
    const facts = history(ID, registerReady({ type: 'CDROM', persistent: true }));
    // CDROM is forced non-persistent (§3), so it reaches USED, where VM pushes are ignored anyway.
    given(facts).when(acquire(ID, 10)).thenState('USED');
  });
  it('an empty list clears the snapshots', () => {
    const facts = imageIn('USED_PERS');
    const withSnaps = given(facts).when(setSnapshots()).then({});
    const f = given([...facts, withSnaps]).when(event({ type: 'image.setSnapshots', imageId: ID, snapshots: null })).then({});
    expect(f.changes.snapshots?.list).toEqual([]);
  });
  for (const s of IMAGE_STATES.filter((x) => x !== 'INIT' && x !== 'USED_PERS')) {
    it(`${s}: ignored`, () => {
      given(imageIn(s)).when(setSnapshots()).then({ state: s, type: 'image.commandIgnored', changes: {} });
      given(imageIn(s)).when(event({ type: 'image.setSize', imageId: ID, sizeMb: 99 })).then({ state: s, changes: {} });
    });
  }
});
