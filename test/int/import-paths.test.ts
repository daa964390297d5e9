/**
 * Where a datastore's driver may copy a local file from (issue 27, "Paths"),
 * through the real fs driver run as the driver host runs it. The default
 * datastores import only from the data directory's `import` folder: an
 * image's SOURCE is no secret, and the earlier default (which also allowed
 * the datastores' folder) let any user copy another's disk by naming it. A
 * restored disk is read from its restore's staging folder by an allowance
 * for that one CP, never by the datastore's SAFE_DIRS.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { act, datastoreView, imageView } from '../support/driver-request.js';
import { defaultDatastoreTemplates } from '../../src/platform/default-datastores.js';
import { RESTORE_STAGING_EXTRA } from '../../src/messages/driver.js';
import type { DatastoreView } from '../../src/messages/datastore.js';

let dir: string;
let imports: string;
let datastores: string;
let aliceSource: string;
const alice = randomBytes(1024 * 1024 + 3);

/** Datastore 1 as `npm start` creates it, its folder in `datastores`. */
const defaultDatastore = (): DatastoreView => {
  const { NAME, DS_MAD, TM_MAD, ...template } = defaultDatastoreTemplates(imports).default;
  return datastoreView(join(datastores, '1'), { id: 1, name: NAME, dsMad: DS_MAD, tmMad: TM_MAD, template });
};
const refusal = (path: string) => `Not allowed to copy image from ${path}, check RESTRICTED_DIRS in your datastore`;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'imgr-paths-'));
  imports = join(dir, 'import');
  datastores = join(dir, 'datastores');
  mkdirSync(imports);
  writeFileSync(join(imports, 'alice.raw'), alice);
  // Alice registers her disk from the import folder.
  const r = await act('CP', defaultDatastore(), imageView({ id: 10, uid: 7, path: join(imports, 'alice.raw') }));
  expect(r.result, r.info).toBe('SUCCESS');
  aliceSource = r.info.split(' ')[0] ?? '';
  expect(readFileSync(aliceSource).equals(alice)).toBe(true);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("a default datastore copies local files only from the import folder", () => {
  it("mallory's PATH naming alice's SOURCE is refused, in every spelling", async () => {
    const mallory = { id: 11, uid: 9, uname: 'mallory' };
    expect(await act('CP', defaultDatastore(), imageView({ ...mallory, path: aliceSource }))).toMatchObject({ result: 'FAILURE', info: refusal(aliceSource) });
    expect(await act('CP', defaultDatastore(), imageView({ ...mallory, path: `file://${aliceSource}` }))).toMatchObject({ result: 'FAILURE', info: refusal(aliceSource) });
    // A link in the import folder is followed to where it points before the check.
    symlinkSync(aliceSource, join(imports, 'innocent.raw'));
    expect(await act('CP', defaultDatastore(), imageView({ ...mallory, path: join(imports, 'innocent.raw') }))).toMatchObject({ result: 'FAILURE', info: refusal(join(imports, 'innocent.raw')) });
  });

  it('the earlier default (import folder and datastores folder) let the same copy through', async () => {
    const earlier = datastoreView(join(datastores, '1'), { id: 1, template: { SAFE_DIRS: `${imports} ${datastores}` } });
    const r = await act('CP', earlier, imageView({ id: 12, uid: 9, path: aliceSource }));
    expect(r.result).toBe('SUCCESS');
    expect(readFileSync(r.info.split(' ')[0] ?? '').equals(alice)).toBe(true);
  });

  it('files elsewhere on the host are refused; the import folder is open', async () => {
    expect(await act('CP', defaultDatastore(), imageView({ path: '/etc/hostname' }))).toMatchObject({ result: 'FAILURE', info: refusal('/etc/hostname') });
    expect((await act('CP', defaultDatastore(), imageView({ path: join(imports, 'alice.raw') }))).result).toBe('SUCCESS');
  });
});

describe("a restored disk is read by an allowance for its one CP", () => {
  const stage = (request: string): string => {
    const d = join(datastores, '101', '.restore', request);
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, 'disk.0'), alice);
    return d;
  };

  it('without the allowance the staged disk is refused like any file outside the import folder', async () => {
    const d = stage('r1');
    expect(await act('CP', defaultDatastore(), imageView({ path: join(d, 'disk.0') }))).toMatchObject({ result: 'FAILURE', info: refusal(join(d, 'disk.0')) });
  });

  it('with it, that folder and only that one is readable by that CP', async () => {
    const d = stage('r2');
    const other = stage('r3');
    const ok = await act('CP', defaultDatastore(), imageView({ path: join(d, 'disk.0') }), { extra: { [RESTORE_STAGING_EXTRA]: d } });
    expect(ok.result, ok.info).toBe('SUCCESS');
    expect(readFileSync(ok.info.split(' ')[0] ?? '').equals(alice)).toBe(true);
    // Another restore's folder, and alice's SOURCE, stay closed to a CP allowed one folder.
    expect(await act('CP', defaultDatastore(), imageView({ path: join(other, 'disk.0') }), { extra: { [RESTORE_STAGING_EXTRA]: d } })).toMatchObject({ result: 'FAILURE', info: refusal(join(other, 'disk.0')) });
    expect(await act('CP', defaultDatastore(), imageView({ path: aliceSource }), { extra: { [RESTORE_STAGING_EXTRA]: d } })).toMatchObject({ result: 'FAILURE', info: refusal(aliceSource) });
  });
});
