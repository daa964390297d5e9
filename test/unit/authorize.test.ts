/**
 * Who may do what (OpenNebula's ownership model): MANAGE needs the owner or
 * an administrator, USE also admits the owner's group, ADMIN only the
 * oneadmin group. Exact texts, as oned words them.
 */
import { describe, expect, it } from 'vitest';
import { event, given, history, replay } from '../support/image-spec.js';
import { ADMIN, IMAGE_DS, USER } from '../support/fixtures.js';
import { decideDatastore, initialDatastore } from '../../src/machines/datastore/decide.js';
import { DatastoreCommandSchema, type DatastoreCommandInput } from '../../src/messages/datastore.js';
import { BUNDLED_DRIVERS } from '../../src/platform/config.js';
import type { Actor } from '../../src/messages/envelope.js';
import type { ImageAggregate } from '../../src/machines/image/decide.js';

const SAME_GROUP: Actor = { uid: 8, gid: 100, name: 'bob', service: 'test' };
const STRANGER: Actor = { uid: 9, gid: 200, name: 'carol', service: 'test' };
/** The same users through a VM service (a principal with the vm-service grant acting for them). */
const viaVmService = (a: Actor): Actor => ({ ...a, service: 'scheduler', vmService: true });

/** alice's READY image 5, registered from a PATH and copied by the driver. */
const alicesImage = () =>
  history(
    5,
    event({ type: 'image.allocate', imageId: 5, datastoreId: 1, template: { NAME: 'mine', PATH: '/tmp/a', SIZE: '1' } }, { actor: USER }),
    (agg: ImageAggregate) => event({ type: 'driver.reply', imageId: 5, requestId: agg.record.pending?.requestId ?? '', action: 'CP', result: 'SUCCESS', info: '/ds/1/abc raw' }),
  );

describe('authorisation of image commands', () => {
  it('the owner manages and uses the image', () => {
    given(alicesImage()).when(event({ type: 'image.disable', imageId: 5 }, { actor: USER })).thenState('DISABLED');
    given(alicesImage()).when(event({ type: 'image.acquire', imageId: 5, vmId: 1, mode: 'deploy' }, { actor: viaVmService(USER) })).thenState('USED');
  });

  it('a member of the group uses it but cannot manage it', () => {
    given(alicesImage()).when(event({ type: 'image.acquire', imageId: 5, vmId: 1, mode: 'deploy' }, { actor: viaVmService(SAME_GROUP) })).thenState('USED');
    given(alicesImage()).when(event({ type: 'image.delete', imageId: 5 }, { actor: SAME_GROUP })).thenRejects('AUTH_ERR_NOT_AUTHORIZED', 'User [8] : Not authorized to perform MANAGE IMAGE [5].');
    given(alicesImage()).when(event({ type: 'image.setPersistent', imageId: 5, persistent: true }, { actor: SAME_GROUP })).thenRejects('AUTH_ERR_NOT_AUTHORIZED', 'User [8] : Not authorized to perform MANAGE IMAGE [5].');
  });

  it.each([
    ['image.acquire', { vmId: 1, mode: 'deploy' }, 'USE'],
    ['image.release', { vmId: 1 }, 'USE'],
    ['image.cloneStart', { clone: { kind: 'image', id: 6 } }, 'USE'],
    ['image.delete', {}, 'MANAGE'],
    ['image.enable', {}, 'MANAGE'],
    ['image.disable', {}, 'MANAGE'],
    ['image.chtype', { imageType: 'DATABLOCK' }, 'MANAGE'],
    ['image.snapshotDelete', { snapshotId: 0 }, 'MANAGE'],
  ] as const)('a stranger may not %s it (even through a VM service)', (type, fields, access) => {
    given(alicesImage())
      .when(event({ type, imageId: 5, ...fields } as never, { actor: viaVmService(STRANGER) }))
      .thenRejects('AUTH_ERR_NOT_AUTHORIZED', `User [9] : Not authorized to perform ${access} IMAGE [5].`);
  });

  it('a stranger may not clone it', () => {
    const origin = replay(alicesImage());
    const clone = (actor: Actor) => event({ type: 'image.clone', imageId: 6, originId: 5, name: 'copy', datastoreId: 1 }, { actor, ctx: { origin, originDatastore: IMAGE_DS } });
    given([], 6).when(clone(STRANGER)).thenRejects('AUTH_ERR_NOT_AUTHORIZED', 'User [9] : Not authorized to perform USE IMAGE [5].');
    expect(given([], 6).when(clone(SAME_GROUP)).then({ type: 'image.registered' }).imageId).toBe(6);
  });

  it('an administrator may do anything; a missing image is still the machine\'s "not found"', () => {
    given(alicesImage()).when(event({ type: 'image.delete', imageId: 5 }, { actor: ADMIN })).thenState('DELETE');
    given([], 9).when(event({ type: 'image.delete', imageId: 9 }, { actor: STRANGER })).thenRejects('IMG_ERR_NOT_FOUND', 'Error getting image [9].');
  });
});

describe('authorisation of datastore commands', () => {
  const decide = (command: DatastoreCommandInput, actor: Actor) =>
    decideDatastore(initialDatastore(3), {
      ...DatastoreCommandSchema.parse(command),
      meta: { commandId: 'c', at: 1, actor },
      ctx: { nameTakenBy: null, drivers: BUNDLED_DRIVERS, capacityCheck: true, images: 0, reservedMb: 0 },
    });

  it.each([
    [{ type: 'datastore.create', datastoreId: 3, template: { NAME: 'mine', DS_MAD: 'fs', TM_MAD: 'shared' } }],
    [{ type: 'datastore.delete', datastoreId: 3 }],
    [{ type: 'datastore.enable', datastoreId: 3 }],
    [{ type: 'datastore.disable', datastoreId: 3 }],
  ] as const)('%o needs an administrator', (command) => {
    expect(decide(command, USER)).toEqual({ ok: false, rejection: { code: 'AUTH_ERR_NOT_AUTHORIZED', message: 'User [7] : Not authorized to perform ADMIN DATASTORE [3].' } });
  });

  it('only an administrator may skip the capacity check', () => {
    const reserve = { type: 'datastore.reserve', datastoreId: 3, imageId: 5, sizeMb: 10, skipCapacityCheck: true } as const;
    expect(decide(reserve, USER)).toEqual({ ok: false, rejection: { code: 'AUTH_ERR_SKIP_CAPACITY', message: 'User [7] : Not authorized to skip the datastore capacity check.' } });
    expect(decide(reserve, ADMIN)).not.toMatchObject({ rejection: { code: 'AUTH_ERR_SKIP_CAPACITY' } });
    expect(decide({ type: 'datastore.create', datastoreId: 3, template: { NAME: 'mine', DS_MAD: 'fs', TM_MAD: 'shared' } }, ADMIN)).toMatchObject({ ok: true });
  });
});
