/**
 * VM bookkeeping belongs to the VM service: what a VM does with an image
 * (acquire, release, its disk's size and snapshots, a disk saved as an
 * image) is told by a principal with the vm-service grant, or an
 * administrator; USE of the image alone is not enough. A group member could
 * otherwise release a persistent image while its VM writes to it.
 */
import { describe, expect, it } from 'vitest';
import { event, given, history, replay } from '../support/image-spec.js';
import { ADMIN, USER } from '../support/fixtures.js';
import { TWO_SNAPSHOTS } from '../support/image-states.js';
import { authorizeImage, VM_BOOKKEEPING } from '../../src/machines/authorize.js';
import { ImageCommandSchema, type ImageCommandInput, type ImageCommandType } from '../../src/messages/image-commands.js';
import { INTERNAL_COMMANDS } from '../../src/messages/wire.js';
import type { Actor } from '../../src/messages/envelope.js';
import type { ImageAggregate } from '../../src/machines/image/decide.js';

const BOB: Actor = { uid: 8, gid: 100, name: 'bob', service: 'bob' };
const SCHEDULER_FOR_ALICE: Actor = { ...USER, service: 'scheduler', vmService: true };

/** alice's persistent image 5, READY, then held by VM 10 through the VM service: USED_PERS while the VM writes to it. */
const heldByVm10 = () =>
  history(
    5,
    event({ type: 'image.allocate', imageId: 5, datastoreId: 1, template: { NAME: 'disk', PATH: '/tmp/a', SIZE: '1' } }, { actor: USER }),
    (agg: ImageAggregate) => event({ type: 'driver.reply', imageId: 5, requestId: agg.record.pending?.requestId ?? '', action: 'CP', result: 'SUCCESS', info: '/ds/1/abc raw' }),
    event({ type: 'image.setPersistent', imageId: 5, persistent: true }, { actor: USER }),
    event({ type: 'image.acquire', imageId: 5, vmId: 10, mode: 'deploy' }, { actor: SCHEDULER_FOR_ALICE }),
  );

const refusedTo = (who: Actor, type: string) =>
  [`AUTH_ERR_VM_SERVICE`, `User [${who.uid}] : Not authorized to perform ${type} on IMAGE [5]: VM bookkeeping is a VM service's, and principal ${who.service} has no vm-service grant.`] as const;

describe('VM bookkeeping needs the VM service', () => {
  it('the attack: a group member (USE) cannot release a persistent image its VM holds, nor rewrite its size or snapshots', () => {
    const held = heldByVm10();
    expect(replay(held)).toMatchObject({ state: 'USED_PERS', vms: [10] });
    given(held).when(event({ type: 'image.release', imageId: 5, vmId: 10 }, { actor: BOB })).thenRejects(...refusedTo(BOB, 'image.release'));
    given(held).when(event({ type: 'image.setSize', imageId: 5, sizeMb: 1 }, { actor: BOB })).thenRejects(...refusedTo(BOB, 'image.setSize'));
    given(held).when(event({ type: 'image.setSnapshots', imageId: 5, snapshots: TWO_SNAPSHOTS }, { actor: BOB })).thenRejects(...refusedTo(BOB, 'image.setSnapshots'));
    // Not even the owner, acting as herself: the VM service tells imgr about VMs.
    given(held).when(event({ type: 'image.release', imageId: 5, vmId: 10 }, { actor: USER })).thenRejects(...refusedTo(USER, 'image.release'));
    given(heldByVm10()).when(event({ type: 'image.acquire', imageId: 5, vmId: 11, mode: 'attach' }, { actor: BOB })).thenRejects(...refusedTo(BOB, 'image.acquire'));
  });

  it('the VM service releases it (for the owner or a group member), and an administrator may', () => {
    given(heldByVm10()).when(event({ type: 'image.release', imageId: 5, vmId: 10 }, { actor: SCHEDULER_FOR_ALICE })).thenState('READY');
    given(heldByVm10()).when(event({ type: 'image.release', imageId: 5, vmId: 10 }, { actor: { ...BOB, service: 'scheduler', vmService: true } })).thenState('READY');
    given(heldByVm10()).when(event({ type: 'image.release', imageId: 5, vmId: 10 }, { actor: ADMIN })).thenState('READY');
  });

  it('the grant is checked before the image is looked at: no answer tells a caller without it whether an image exists', () => {
    given([], 9).when(event({ type: 'image.release', imageId: 9, vmId: 1 }, { actor: BOB })).thenRejects('AUTH_ERR_VM_SERVICE', 'User [8] : Not authorized to perform image.release on IMAGE [9]: VM bookkeeping is a VM service\'s, and principal bob has no vm-service grant.');
  });
});

/**
 * Every image command, one example each, with whether it is VM bookkeeping.
 * The table is keyed by every command type: a new command does not compile
 * here (nor pass the first test) until somebody decides whether it tells
 * imgr about a VM.
 */
const EVERY: Record<ImageCommandType, { vm: boolean; command: ImageCommandInput; why?: string }> = {
  'image.allocate': { vm: false, command: { type: 'image.allocate', imageId: 6, datastoreId: 1, template: { NAME: 'x', PATH: '/tmp/a' } } },
  'image.clone': { vm: false, command: { type: 'image.clone', imageId: 6, originId: 5, name: 'c', datastoreId: 1 } },
  'image.allocateSaveAs': { vm: true, command: { type: 'image.allocateSaveAs', imageId: 5, name: 's', vmId: 1, diskId: 0, originImageId: 4, sizeMb: 1, diskFormat: 'raw' } },
  'image.allocateBackup': { vm: false, why: 'internal: only imgr sends it', command: { type: 'image.allocateBackup', imageId: 5, datastoreId: 2, vmId: 1, source: 'b', sizeMb: 1, format: 'raw', diskIds: [0], owner: { uid: 7, gid: 100, uname: 'alice', gname: 'users' } } },
  'image.addIncrement': { vm: false, command: { type: 'image.addIncrement', imageId: 5, source: 'b1', sizeMb: 1 } },
  'image.delete': { vm: false, command: { type: 'image.delete', imageId: 5 } },
  'image.enable': { vm: false, command: { type: 'image.enable', imageId: 5 } },
  'image.disable': { vm: false, command: { type: 'image.disable', imageId: 5 } },
  'image.setPersistent': { vm: false, command: { type: 'image.setPersistent', imageId: 5, persistent: true } },
  'image.chtype': { vm: false, command: { type: 'image.chtype', imageId: 5, imageType: 'DATABLOCK' } },
  'image.cloneStart': { vm: false, command: { type: 'image.cloneStart', imageId: 5, clone: { kind: 'image', id: 6 } } },
  'image.cloneFinish': { vm: false, command: { type: 'image.cloneFinish', imageId: 5, clone: { kind: 'image', id: 6 } } },
  'image.snapshotDelete': { vm: false, command: { type: 'image.snapshotDelete', imageId: 5, snapshotId: 0 } },
  'image.snapshotRevert': { vm: false, command: { type: 'image.snapshotRevert', imageId: 5, snapshotId: 0 } },
  'image.snapshotFlatten': { vm: false, command: { type: 'image.snapshotFlatten', imageId: 5, snapshotId: 0 } },
  'image.flattenIncrements': { vm: false, command: { type: 'image.flattenIncrements', imageId: 5, keepLast: 1 } },
  'image.acquire': { vm: true, command: { type: 'image.acquire', imageId: 5, vmId: 1, mode: 'deploy' } },
  'image.release': { vm: true, command: { type: 'image.release', imageId: 5, vmId: 1 } },
  'image.setSnapshots': { vm: true, command: { type: 'image.setSnapshots', imageId: 5, snapshots: null } },
  'image.setSize': { vm: true, command: { type: 'image.setSize', imageId: 5, sizeMb: 1 } },
  'image.saveAsDone': { vm: true, command: { type: 'image.saveAsDone', imageId: 5, success: true } },
  'image.restore': { vm: false, command: { type: 'image.restore', imageId: 5, datastoreId: 1 } },
  'image.backup': { vm: false, why: 'its vmId only labels the backup; it changes no VM bookkeeping of the image (MANAGE)', command: { type: 'image.backup', imageId: 5, backupDatastoreId: 2, backupImageId: 6, vmId: 1 } },
  'driver.reply': { vm: false, command: { type: 'driver.reply', imageId: 5, requestId: 'r', action: 'CP', result: 'SUCCESS', info: '' } },
  'driver.timeout': { vm: false, command: { type: 'driver.timeout', imageId: 5, requestId: 'r' } },
  'driver.log': { vm: false, command: { type: 'driver.log', imageId: 5, requestId: 'r', action: 'CP', lines: [{ severity: 'I', text: 'x' }] } },
};

describe('every command the VM grant governs', () => {
  const types = ImageCommandSchema.options.map((o) => o.shape.type.value);

  it('the table names every image command type, and the governed ones are exactly the machine rule', () => {
    expect(Object.keys(EVERY).sort()).toEqual([...types].sort());
    expect([...VM_BOOKKEEPING].sort()).toEqual(types.filter((t) => EVERY[t].vm).sort());
    expect([...VM_BOOKKEEPING].sort()).toEqual(['image.acquire', 'image.allocateSaveAs', 'image.release', 'image.saveAsDone', 'image.setSize', 'image.setSnapshots']);
  });

  it('a command a service may send that names a VM is VM bookkeeping, unless the table says why not', () => {
    for (const o of ImageCommandSchema.options) {
      const type = o.shape.type.value;
      if (!('vmId' in o.shape) || INTERNAL_COMMANDS.has(type)) continue;
      expect(EVERY[type].vm || EVERY[type].why !== undefined, `${type} names a VM`).toBe(true);
    }
  });

  it.each(types)('%s: the machine asks for the grant exactly when it is bookkeeping', (type) => {
    const record = replay(heldByVm10());
    const command = ImageCommandSchema.parse(EVERY[type].command);
    const meta = (actor: Actor) => ({ commandId: 'c', at: 1, actor });
    // The owner (USE, MANAGE) without the grant: refused for the grant exactly when the command is bookkeeping.
    const owner = authorizeImage(command, record, meta(USER), null);
    if (EVERY[type].vm) expect(owner).toEqual({ code: 'AUTH_ERR_VM_SERVICE', message: `User [7] : Not authorized to perform ${type} on IMAGE [5]: VM bookkeeping is a VM service's, and principal test has no vm-service grant.` });
    else expect(owner?.code).not.toBe('AUTH_ERR_VM_SERVICE');
    // With it, the grant is never what refuses.
    expect(authorizeImage(command, record, meta({ ...USER, vmService: true }), null)?.code).not.toBe('AUTH_ERR_VM_SERVICE');
  });
});
