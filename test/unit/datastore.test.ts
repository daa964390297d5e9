/**
 * Spec §12 and §13.1: the datastore aggregate, with W38 and W39 fixed.
 */
import { describe, expect, it } from 'vitest';
import type { DatastoreCommandInput, DatastoreFact } from '../../src/messages/datastore.js';
import { DatastoreCommandSchema, DatastoreFactSchema, DriverConfigSchema } from '../../src/messages/datastore.js';
import type { DatastoreDecisionContext, DatastoreEvent } from '../../src/machines/datastore/events.js';
import { datastoreInfo, decideDatastore, evolveDatastore, initialDatastore, type DatastoreAggregate } from '../../src/machines/datastore/decide.js';
import { ADMIN, T0 } from '../support/fixtures.js';

const drivers = DriverConfigSchema.parse({
  dsMads: { fs: {}, ceph: { requiredAttrs: ['POOL_NAME'] }, rsync: { persistentOnly: false }, lvm: { persistentOnly: true, capacityCheck: 'NO' } },
  tmMads: { shared: { driver: 'raw' }, ssh: { shared: false }, qcow2: { driver: 'qcow2' }, ceph: { diskType: 'RBD' } },
  datastoreLocation: '/var/lib/imgr/datastores/',
});
let seq = 0;
const ev = (c: DatastoreCommandInput, ctx: Partial<DatastoreDecisionContext> = {}): DatastoreEvent => {
  seq += 1;
  return {
    ...DatastoreCommandSchema.parse(c),
    meta: { commandId: `ds-${seq}`, at: T0 + seq, actor: ADMIN },
    ctx: { nameTakenBy: null, drivers, capacityCheck: true, images: 0, reservedMb: 0, ...ctx },
  };
};
const DS = 100;
function run(agg: DatastoreAggregate, ...events: DatastoreEvent[]): DatastoreAggregate {
  return events.reduce((a, e) => {
    const d = decideDatastore(a, e);
    if (!d.ok) throw new Error(`${e.type}: ${d.rejection.message}`);
    return d.next;
  }, agg);
}
const create = (template: Record<string, string>, ctx: Partial<DatastoreDecisionContext> = {}) =>
  decideDatastore(initialDatastore(DS), ev({ type: 'datastore.create', datastoreId: DS, template }, ctx));
const refused = (d: ReturnType<typeof create>) => (d.ok ? `accepted: ${d.fact.type}` : d.rejection);
const imageDs = () => {
  const d = create({ NAME: 'images', DS_MAD: 'fs', TM_MAD: 'shared' });
  if (!d.ok) throw new Error(d.rejection.message);
  return d.next;
};
const monitor = (text: string, result: 'SUCCESS' | 'FAILURE' = 'SUCCESS') =>
  ev({ type: 'datastore.monitored', datastoreId: DS, result, info: btoa(text) });

describe('§12.3 create', () => {
  it('an IMAGE_DS with defaults from the driver configuration, BASE_PATH computed, a first monitor asked for', () => {
    const d = create({ NAME: 'images', DS_MAD: 'fs', TM_MAD: 'qcow2', BASE_PATH: '/ignored' });
    if (!d.ok) throw new Error(d.rejection.message);
    expect(d.fact).toMatchObject({ type: 'datastore.created', state: 'READY', prevState: 'INIT' });
    expect(d.next.record).toMatchObject({ type: 'IMAGE_DS', dsMad: 'fs', tmMad: 'qcow2', basePath: '/var/lib/imgr/datastores/100', diskType: 'FILE' });
    expect(d.next.record.template).toMatchObject({ DRIVER: 'qcow2', LN_TARGET: 'NONE', CLONE_TARGET: 'SYSTEM', ALLOW_ORPHANS: 'NO', PERSISTENT_SNAPSHOTS: 'YES', SAFE_DIRS: '/var/tmp', RESTRICTED_DIRS: '/' });
    expect(d.fact.effects).toEqual([{ kind: 'datastore.monitor', datastoreId: DS }]);
    expect(datastoreInfo(d.next.record, true, 0)).toEqual({ id: DS, name: 'images', type: 'IMAGE_DS', dsMad: 'fs', tmMad: 'qcow2', diskType: 'FILE', driver: 'qcow2', persistentOnly: false, availableMb: null, bridgeList: '', keepLast: null });
  });
  it('an unknown TYPE means IMAGE_DS; BACKUP_DS needs no TM_MAD and stores "-"', () => {
    const d = create({ NAME: 'b', TYPE: 'backup_ds', DS_MAD: 'rsync' });
    expect(d.ok && d.next.record).toMatchObject({ type: 'BACKUP_DS', tmMad: '-', diskType: 'FILE' });
    const u = create({ NAME: 'u', TYPE: 'weird', DS_MAD: 'fs', TM_MAD: 'shared' });
    expect(u.ok && u.next.record.type).toBe('IMAGE_DS');
  });
  it('driver flags are copied: persistent-only, capacity check', () => {
    const d = create({ NAME: 'l', DS_MAD: 'lvm', TM_MAD: 'shared' });
    expect(d.ok && d.next.record.persistentOnly).toBe(true);
    expect(d.ok && d.next.record.template['DATASTORE_CAPACITY_CHECK']).toBe('NO');
  });
  it('refusals, with the spec texts', () => {
    expect(refused(create({ NAME: '', DS_MAD: 'fs', TM_MAD: 'shared' }))).toEqual({ code: 'OBJ_ERR_NAME_EMPTY', message: 'Invalid NAME, it cannot be empty' });
    expect(refused(create({ NAME: 'a', DS_MAD: 'fs', TM_MAD: 'shared' }, { nameTakenBy: 1 }))).toEqual({ code: 'DS_ERR_NAME_TAKEN', message: 'NAME is already taken by DATASTORE 1.' });
    expect(refused(create({ NAME: 's', TYPE: 'SYSTEM_DS', DS_MAD: 'fs', TM_MAD: 'shared' }))).toEqual({ code: 'DS_ERR_SYSTEM_DS_MAD', message: 'SYSTEM datastores cannot have DS_MAD defined.' });
    expect(refused(create({ NAME: 'a', TM_MAD: 'shared' }))).toEqual({ code: 'DS_ERR_NO_DS_MAD', message: 'No DS_MAD in template.' });
    expect(refused(create({ NAME: 'a', DS_MAD: 'nfs', TM_MAD: 'shared' }))).toEqual({ code: 'DS_ERR_DS_MAD_UNKNOWN', message: 'DS_MAD named "nfs" is not defined in imgr\'s configuration (drivers.dsMads)' });
    expect(refused(create({ NAME: 'a', DS_MAD: 'ceph', TM_MAD: 'ceph' }))).toEqual({ code: 'DS_ERR_REQUIRED_ATTR', message: 'Datastore template is missing the "POOL_NAME" attribute or it\'s empty.' });
    expect(refused(create({ NAME: 'a', DS_MAD: 'fs' }))).toEqual({ code: 'DS_ERR_NO_TM_MAD', message: 'No TM_MAD in template.' });
    expect(refused(create({ NAME: 'a', DS_MAD: 'fs', TM_MAD: 'iscsi' }))).toEqual({ code: 'DS_ERR_TM_MAD_UNKNOWN', message: 'TM_MAD named "iscsi" is not defined in imgr\'s configuration (drivers.tmMads)' });
    expect(refused(create({ NAME: 'a', DS_MAD: 'fs', TM_MAD: 'shared', DISK_TYPE: 'CDROM' }))).toEqual({ code: 'DS_ERR_DISK_TYPE_IMAGE', message: 'Invalid DISK_TYPE for an Image Datastore.' });
    expect(refused(create({ NAME: 'a', TYPE: 'SYSTEM_DS', TM_MAD: 'shared', DISK_TYPE: 'ISCSI' }))).toEqual({ code: 'DS_ERR_DISK_TYPE_SYSTEM', message: 'Invalid DISK_TYPE for a System Datastore.' });
    expect(refused(create({ NAME: 'a', DS_MAD: 'fs', TM_MAD: 'shared', DISK_TYPE: 'TAPE' }))).toEqual({ code: 'DS_ERR_DISK_TYPE_UNKNOWN', message: 'Unknown DISK_TYPE in template.' });
  });
  it('a transfer driver may set DISK_TYPE', () => {
    const d = create({ NAME: 'rbd', DS_MAD: 'ceph', TM_MAD: 'ceph', POOL_NAME: 'one' });
    expect(d.ok && d.next.record.diskType).toBe('RBD');
  });
  it('creating twice, or any command on a datastore that does not exist', () => {
    const a = imageDs();
    expect(refused(decideDatastore(a, ev({ type: 'datastore.create', datastoreId: DS, template: { NAME: 'x', DS_MAD: 'fs', TM_MAD: 'shared' } })))).toEqual({ code: 'DS_ERR_EXISTS', message: 'Datastore 100 already exists.' });
    expect(refused(decideDatastore(initialDatastore(DS), ev({ type: 'datastore.delete', datastoreId: DS })))).toEqual({ code: 'DS_ERR_NOT_FOUND', message: 'Error getting datastore [100].' });
  });
});

describe('§12.4 enable/disable, membership, delete', () => {
  it('only SYSTEM_DS can be enabled or disabled', () => {
    expect(refused(decideDatastore(imageDs(), ev({ type: 'datastore.disable', datastoreId: DS })))).toEqual({ code: 'DS_ERR_ENABLE_TYPE', message: 'Only SYSTEM_DS can be disabled or enabled' });
    const sys = create({ NAME: 's', TYPE: 'SYSTEM_DS', TM_MAD: 'ssh' });
    if (!sys.ok) throw new Error('no system ds');
    expect(sys.next.record.template['SHARED']).toBe('NO');
    const off = run(sys.next, ev({ type: 'datastore.disable', datastoreId: DS }));
    expect(off.state).toBe('DISABLED');
    expect(run(off, ev({ type: 'datastore.enable', datastoreId: DS })).state).toBe('READY');
  });
  it('delete is refused while images live in it (counted from their facts), and a removed datastore is not found', () => {
    expect(refused(decideDatastore(imageDs(), ev({ type: 'datastore.delete', datastoreId: DS }, { images: 1 })))).toEqual({ code: 'DS_ERR_NOT_EMPTY', message: 'Datastore 100 is not empty.' });
    const b = run(imageDs(), ev({ type: 'datastore.delete', datastoreId: DS }, { images: 0 }));
    expect(b.state).toBe('REMOVED');
    expect(refused(decideDatastore(b, ev({ type: 'datastore.enable', datastoreId: DS })))).toEqual({ code: 'DS_ERR_NOT_FOUND', message: 'Error getting datastore [100].' });
  });

  it('reads the membership facts of older logs, whose changes carried the whole image list, without keeping the list', () => {
    const old = DatastoreFactSchema.parse({ type: 'datastore.imageAdded', datastoreId: DS, state: 'READY', prevState: 'READY', changes: { images: [3, 7] }, detail: { imageId: 7 }, effects: [] });
    const view = evolveDatastore({ ...imageDs().record, state: 'READY' }, old);
    expect(view).toEqual({ ...imageDs().record, state: 'READY' });
    expect('images' in view).toBe(false);
  });
});

describe('§13.1 capacity with W38', () => {
  const monitored = (text: string, template: Record<string, string> = {}) => {
    const d = create({ NAME: 'images', DS_MAD: 'fs', TM_MAD: 'shared', ...template });
    if (!d.ok) throw new Error(d.rejection.message);
    return run(d.next, monitor(text));
  };
  const reserve = (a: DatastoreAggregate, sizeMb: number, imageId = 1, skipCapacityCheck = false, reservedMb = 0) =>
    decideDatastore(a, ev({ type: 'datastore.reserve', datastoreId: DS, imageId, sizeMb, skipCapacityCheck }, { reservedMb }));
  const NO_SPACE = { code: 'DS_ERR_NO_SPACE', message: 'Not enough space in datastore' };

  it('refuses a size above FREE_MB', () => {
    const a = monitored('TOTAL_MB=1000\nFREE_MB=100\nUSED_MB=900');
    expect(reserve(a, 100).ok).toBe(true);
    expect(refused(reserve(a, 101))).toEqual(NO_SPACE);
  });
  it('reservations of pending creations (what their images hold) count against the space', () => {
    const a = monitored('TOTAL_MB=1000\nFREE_MB=100\nUSED_MB=900');
    const r = reserve(a, 60, 1);
    if (!r.ok) throw new Error('reserve');
    // The grant changes nothing on the datastore: the image's record holds the space.
    expect(r.fact).toMatchObject({ type: 'datastore.spaceReserved', changes: {}, detail: { imageId: 1, sizeMb: 60 } });
    expect(refused(reserve(r.next, 60, 2, false, 60))).toEqual(NO_SPACE);
    expect(reserve(r.next, 40, 2, false, 60).ok).toBe(true);
    // Image 1 left LOCKED: it holds nothing any more.
    expect(reserve(r.next, 60, 2, false, 0).ok).toBe(true);
    // An earlier version's settle is still decided, and changes nothing.
    const settled = decideDatastore(r.next, ev({ type: 'datastore.settle', datastoreId: DS, imageId: 1 }));
    expect(settled.ok && settled.fact).toMatchObject({ type: 'datastore.reservationSettled', changes: {} });
  });
  it('an older log\'s reservation list is not read: a fact that carries one changes no view', () => {
    const old = DatastoreFactSchema.parse({ type: 'datastore.spaceReserved', datastoreId: DS, state: 'READY', prevState: 'READY', changes: { reservations: [{ imageId: 1, sizeMb: 60 }] }, detail: {}, effects: [] });
    expect(old.changes).toEqual({});
  });
  it('LIMIT_MB is a ceiling, not a replacement: min(FREE_MB, LIMIT_MB − USED_MB)', () => {
    const a = monitored('TOTAL_MB=1000\nFREE_MB=50\nUSED_MB=950', { LIMIT_MB: '5000' });
    expect(refused(reserve(a, 60))).toEqual(NO_SPACE);
    const b = monitored('TOTAL_MB=1000\nFREE_MB=500\nUSED_MB=500', { LIMIT_MB: '600' });
    expect(refused(reserve(b, 101))).toEqual(NO_SPACE);
    expect(reserve(b, 100).ok).toBe(true);
  });
  it('an unmonitored datastore does not refuse for lack of data', () => expect(reserve(imageDs(), 10_000).ok).toBe(true));
  it('the check can be off: template, global setting, administrator skip', () => {
    const full = 'TOTAL_MB=10\nFREE_MB=0\nUSED_MB=10';
    expect(reserve(monitored(full, { DATASTORE_CAPACITY_CHECK: 'NO' }), 5).ok).toBe(true);
    expect(decideDatastore(monitored(full), ev({ type: 'datastore.reserve', datastoreId: DS, imageId: 1, sizeMb: 5 }, { capacityCheck: false })).ok).toBe(true);
    expect(reserve(monitored(full), 5, 1, true).ok).toBe(true);
  });
});

describe('§12.5 monitor with W39', () => {
  it('a complete reply sets the three counters', () => {
    const a = run(imageDs(), monitor('TOTAL_MB=100\nFREE_MB="40"\nUSED_MB=60MB\nOTHER=1'));
    expect(a.record).toMatchObject({ totalMb: 100, freeMb: 40, usedMb: 60, monitorError: null });
    expect(a.record.monitoredAt).not.toBeNull();
  });
  it('W39: a missing key changes nothing and the failure is visible on the datastore', () => {
    const a = run(imageDs(), monitor('TOTAL_MB=100\nFREE_MB=40\nUSED_MB=60'));
    const d = decideDatastore(a, monitor('TOTAL_MB=100\nUSED_MB=10'));
    if (!d.ok) throw new Error('refused');
    expect(d.fact.type).toBe('datastore.monitorFailed');
    expect(d.next.record).toMatchObject({ freeMb: 40, usedMb: 60, monitorError: 'Incomplete monitor data: missing FREE_MB' });
    const healed = run(d.next, monitor('TOTAL_MB=100\nFREE_MB=30\nUSED_MB=70'));
    expect(healed.record.monitorError).toBeNull();
  });
  it('a FAILURE reply is recorded with the decoded text, counters unchanged', () => {
    const a = run(imageDs(), monitor('df: /var: no such file', 'FAILURE'));
    expect(a.record.monitorError).toBe(`Error monitoring datastore 100: ${btoa('df: /var: no such file')}. Decoded info: df: /var: no such file`);
    expect(a.record.totalMb).toBe(0);
  });
  it('data that is not base64 is a failure, not a crash', () => {
    const d = decideDatastore(imageDs(), ev({ type: 'datastore.monitored', datastoreId: DS, result: 'SUCCESS', info: '%%%' }));
    expect(d.ok && d.next.record.monitorError).toMatch(/not base64/);
  });
});

describe('evolve', () => {
  it('rebuilds the view from facts alone', () => {
    const facts: DatastoreFact[] = [];
    let a = initialDatastore(DS);
    for (const e of [
      ev({ type: 'datastore.create', datastoreId: DS, template: { NAME: 'images', DS_MAD: 'fs', TM_MAD: 'shared' } }),
      monitor('TOTAL_MB=100\nFREE_MB=40\nUSED_MB=60'),
      ev({ type: 'datastore.reserve', datastoreId: DS, imageId: 3, sizeMb: 5 }),
      ev({ type: 'datastore.settle', datastoreId: DS, imageId: 3 }),
    ]) {
      const d = decideDatastore(a, e);
      if (!d.ok) throw new Error(d.rejection.message);
      facts.push(d.fact);
      a = d.next;
    }
    const view = facts.reduce<ReturnType<typeof evolveDatastore> | null>((v, f) => evolveDatastore(v, f), null);
    expect(view).toEqual({ ...a.record, state: a.state });
  });
});

describe('§10 sweep: files no image names', () => {
  const base = '/var/lib/imgr/datastores/100';
  const swept = (ctx: Partial<DatastoreDecisionContext>) => {
    const d = decideDatastore(
      imageDs(),
      ev(
        {
          type: 'datastore.swept',
          datastoreId: DS,
          files: [
            { path: `${base}/owned`, ageSec: 9_000 },
            { path: `${base}/young`, ageSec: 30 },
            { path: `${base}/orphan`, ageSec: 9_000 },
          ],
        },
        ctx,
      ),
    );
    if (!d.ok) throw new Error(d.rejection.message);
    return d;
  };
  it('given a file older than any creation may run that no image names, the sweep records it for removal; named and young files stay', () => {
    const d = swept({ sweep: { named: new Set([`${base}/owned`]), graceSec: 3_660 } });
    expect(d.fact).toMatchObject({ type: 'datastore.swept', state: 'READY', detail: { files: 3, orphans: 1 } });
    expect(d.fact.effects).toEqual([{ kind: 'datastore.orphanSource', datastoreId: DS, imageId: -1, source: `${base}/orphan` }]);
    expect(d.next).toEqual(imageDs());
  });
  it('without what the images name, a sweep reclaims nothing', () => {
    expect(swept({}).fact.effects).toEqual([]);
  });
  it('a report naming files outside the datastore folder (a hostile or confused driver host) reclaims none of them', () => {
    const outside = ['/etc/passwd', `${base}/../101/disk`, `${base}/sub/disk`, `${base}/..`, `${base}/.`, `${base}-other/disk`, `${base}/`];
    const d = decideDatastore(imageDs(), ev({ type: 'datastore.swept', datastoreId: DS, files: outside.map((path) => ({ path, ageSec: 9_000 })) }, { sweep: { named: new Set(), graceSec: 60 } }));
    if (!d.ok) throw new Error(d.rejection.message);
    expect(d.fact).toMatchObject({ detail: { files: outside.length, orphans: 0 }, effects: [] });
  });
});
