/**
 * A full file system under an fs datastore (the scale-out issue's disk-full
 * case): the test mounts a small tmpfs as the datastores' folder and fills it
 * behind imgr's back, so the copy itself runs out of space. The image ends in
 * ERROR with the driver's reason, nothing of the failed copy is left, the
 * other images are untouched, and once space returns the same registration
 * works.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestNats } from '../support/nats.js';
import { RoleProcess } from '../support/manager-process.js';
import { eventually } from '../support/eventually.js';
import { ImgrClient } from '../../src/client/index.js';
import { BUNDLED_DRIVERS } from '../../src/platform/config.js';

const MB = 1024 * 1024;
let nats: TestNats;
let dir: string;
let mounted = false;
let client: ImgrClient;
const roles: RoleProcess[] = [];

beforeAll(async () => {
  nats = await TestNats.start();
  dir = mkdtempSync(join(tmpdir(), 'imgr-full-'));
  mkdirSync(join(dir, 'ds'));
  mkdirSync(join(dir, 'import'));
  // Root (CI and the project's machines) may mount; the error says so where it may not.
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=12m', 'imgr-full', join(dir, 'ds')]);
  mounted = true;
  writeFileSync(join(dir, 'import', 'disk.raw'), Buffer.alloc(4 * MB, 3));
  // The capacity check would refuse before copying; without it the copy itself meets the full disk.
  const config = { capacityCheck: false, drivers: { ...BUNDLED_DRIVERS, datastoreLocation: join(dir, 'ds') }, ackWaitMs: 3_000 };
  roles.push(await RoleProcess.start('manager', nats.url, { IMGR_CONFIG: JSON.stringify(config) }));
  roles.push(await RoleProcess.start('drivers', nats.url, { IMGR_DATA_DIR: dir, IMGR_CONFIG: JSON.stringify(config) }));
  client = await ImgrClient.connect({ servers: nats.url, actor: { uid: 0, gid: 0, name: 'oneadmin' } });
}, 60_000);

afterAll(async () => {
  await client.close();
  await Promise.allSettled(roles.map((r) => r.stop()));
  await nats.dispose();
  if (mounted) execFileSync('umount', [join(dir, 'ds')]);
  rmSync(dir, { recursive: true, force: true });
});

async function register(ds: number, name: string): Promise<number> {
  const id = await client.nextId('image');
  const o = await client.send({ type: 'image.allocate', imageId: id, datastoreId: ds, template: { NAME: name, PATH: join(dir, 'import', 'disk.raw'), SIZE: '4' } });
  expect(o).toMatchObject({ status: 'accepted', state: 'LOCKED' });
  return id;
}

const settledState = (id: number): Promise<string> =>
  eventually(async () => {
    const v = await client.image(id);
    return v && v.state !== 'LOCKED' ? v.state : undefined;
  }, `image ${id} out of LOCKED`);

describe('a full file system under a datastore', () => {
  it('fails the copy with the reason, leaves nothing of it, and works again once space returns', async () => {
    const ds = await client.nextId('datastore');
    const safe = `${join(dir, 'import')} ${join(dir, 'ds')}`;
    expect(await client.send({ type: 'datastore.create', datastoreId: ds, template: { NAME: 'small', DS_MAD: 'fs', TM_MAD: 'shared', SAFE_DIRS: safe } })).toMatchObject({ status: 'accepted' });
    const folder = join(dir, 'ds', String(ds));
    const first = await register(ds, 'fits');
    expect(await settledState(first)).toBe('READY');
    const kept = (await client.image(first))?.source ?? '';
    expect(statSync(kept).size).toBe(4 * MB);

    // Someone else fills the disk: about 1 MB stays free.
    const filler = join(dir, 'ds', 'filler');
    writeFileSync(filler, Buffer.alloc(7 * MB, 1));
    const before = readdirSync(folder).sort();
    const failed = await register(ds, 'does-not-fit');
    expect(await settledState(failed)).toBe('ERROR');
    const view = await client.image(failed);
    expect(view?.error).toMatch(/No space left on device/i);
    // The failed copy left no file behind, and the image that fitted is whole.
    expect(readdirSync(folder).sort()).toEqual(before);
    expect(statSync(kept).size).toBe(4 * MB);

    // Space returns: the failed image is deleted and the same registration succeeds.
    rmSync(filler);
    expect(await client.send({ type: 'image.delete', imageId: failed, force: false })).toMatchObject({ status: 'accepted' });
    await eventually(async () => ((await client.image(failed)) === null ? true : undefined), 'the failed image gone');
    const again = await register(ds, 'fits-now');
    expect(await settledState(again)).toBe('READY');
    expect(statSync((await client.image(again))?.source ?? '').size).toBe(4 * MB);
    expect(roles.filter((r) => r.exitCode !== null).map((r) => r.output.join('').slice(-2000))).toEqual([]);
  }, 120_000);
});
