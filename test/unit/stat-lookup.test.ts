/**
 * A registration's STAT (W12) runs a driver before the machine decides; a
 * template whose values a driver reads lack their strict form gets none: the
 * machine refuses it (OBJ_ERR_ATTR_VALUE), and no driver saw its PATH.
 */
import { describe, expect, it } from 'vitest';
import { OutsideLookups, type StatProbe } from '../../src/actors/lookups.js';
import type { ResidentState } from '../../src/actors/resident-state.js';
import { ManagerConfigSchema } from '../../src/platform/config.js';
import { emptyDatastore } from '../../src/machines/datastore/record.js';
import { ImageCommandSchema } from '../../src/messages/image-commands.js';
import type { DriverRequest } from '../../src/messages/wire.js';

const datastore = { ...emptyDatastore(1), name: 'default', dsMad: 'one-fs', tmMad: 'shared', basePath: '/ds/1', state: 'READY' as const };
const state = { residentImage: () => undefined, datastore: () => datastore } as unknown as ResidentState;

function lookups(): { probe: OutsideLookups; asked: DriverRequest[] } {
  const asked: DriverRequest[] = [];
  const stat: StatProbe = (req) => {
    asked.push(req);
    return Promise.resolve({ result: 'SUCCESS', info: '3' });
  };
  const config = ManagerConfigSchema.parse({});
  return { probe: new OutsideLookups(state, config, stat, () => Promise.resolve([]), { now: () => 0 }), asked };
}
const allocate = (template: Record<string, string>) => ImageCommandSchema.parse({ type: 'image.allocate', imageId: 5, datastoreId: 1, template });

describe('the STAT of a registration', () => {
  it('runs for a PATH with its form', async () => {
    const { probe, asked } = lookups();
    expect(await probe.for(allocate({ NAME: 'a', PATH: '/tmp/import/disk.raw' }), 'c1', 1)).toMatchObject({ statSizeMb: 3 });
    expect(asked).toHaveLength(1);
  });
  it.each([
    ['PATH', "/tmp/import/disk.raw'; touch /tmp/x; echo '"],
    ['PATH', '$(touch /tmp/x)'],
    ['MD5', '`touch /tmp/x`'],
    ['FS', 'ext4; touch /tmp/x'],
  ])('never runs when %s is %s', async (attr, value) => {
    const { probe, asked } = lookups();
    expect(await probe.for(allocate({ NAME: 'a', PATH: '/tmp/import/disk.raw', [attr]: value }), 'c2', 1)).toMatchObject({ statSizeMb: null, statFailure: null });
    expect(asked).toEqual([]);
  });
});
