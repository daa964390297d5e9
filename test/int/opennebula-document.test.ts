/**
 * The DS_DRIVER_ACTION_DATA document imgr sends, for each action, read with
 * OpenNebula's own xpath.rb (the helper its drivers use): the elements oned
 * puts there (driver-contract §4) are there, with oned's encodings.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openNebulaTree } from '../support/opennebula.js';
import { datastoreView, imageView, requestFor } from '../support/driver-request.js';
import { actionDocument } from '../../src/driver-host/document.js';
import type { DriverRequest } from '../../src/messages/wire.js';

let tree: ReturnType<typeof openNebulaTree>;
beforeAll(() => {
  tree = openNebulaTree();
});
afterAll(() => tree.dispose());

/** Values of the given elements as OpenNebula's xpath.rb reads them from the base64 document. */
function xpath(req: DriverRequest, ...paths: string[]): string[] {
  const b64 = Buffer.from(actionDocument(req), 'utf8').toString('base64');
  // xpath.rb exits with the number of elements it found no text in (missing or empty); drivers read its output regardless.
  const r = spawnSync('ruby', [join(tree.location, 'var', 'remotes', 'datastore', 'xpath.rb'), '-b', b64, ...paths], {
    env: { ...process.env, ONE_LOCATION: tree.location, RUBYLIB: join(tree.location, 'lib', 'ruby') },
  });
  if (r.error || r.status === null || r.stdout.length === 0) throw new Error(`xpath.rb did not run: ${r.stderr.toString('utf8')}`);
  return r.stdout.toString('utf8').split('\0').slice(0, paths.length);
}

const I = '/DS_DRIVER_ACTION_DATA/IMAGE';
const D = '/DS_DRIVER_ACTION_DATA/DATASTORE';
const ds = datastoreView('/var/lib/one/datastores/100', { uid: 0, gid: 0, uname: 'oneadmin', totalMb: 100, freeMb: 60, usedMb: 40, template: { BRIDGE_LIST: 'h1 h2', SAFE_DIRS: '/tmp' } });
const image = imageView({ uid: 7, gid: 100, uname: 'alice', gname: 'users', type: 'DATABLOCK', diskType: 'FILE', source: '/var/lib/one/datastores/100/abc', path: '/tmp/in.qcow2', format: 'qcow2', size: 64, template: { MD5: 'feed', DEV_PREFIX: 'vd' } });

describe('the document for every action, as oned builds it', () => {
  it('the full image: ids, owner, PERMISSIONS, numeric TYPE and DISK_TYPE, STATE and PREV_STATE, the datastore name, the template', () => {
    const [id, uname, ownerU, ownerM, groupU, type, diskType, state, prev, dsId, dsName, md5, size] = xpath(
      requestFor('CP', ds, image),
      `${I}/ID`, `${I}/UNAME`, `${I}/PERMISSIONS/OWNER_U`, `${I}/PERMISSIONS/OWNER_M`, `${I}/PERMISSIONS/GROUP_U`, `${I}/TYPE`, `${I}/DISK_TYPE`, `${I}/STATE`, `${I}/PREV_STATE`,
      `${I}/DATASTORE_ID`, `${I}/DATASTORE`, `${I}/TEMPLATE/MD5`, `${I}/SIZE`,
    );
    expect({ id, uname, ownerU, ownerM, groupU, type, diskType, state, prev, dsId, dsName, md5, size }).toEqual({
      id: '7', uname: 'alice', ownerU: '1', ownerM: '1', groupU: '0', type: '2', diskType: '0', state: '4', prev: '4', dsId: '0', dsName: '', md5: 'feed', size: '64',
    });
  });

  it('the datastore: GNAME, PERMISSIONS, numeric TYPE and DISK_TYPE, CLUSTERS, capacity, an empty IMAGES (no driver reads it; a list would grow with the pool), and DS_MAD/TM_MAD/TYPE in its template', () => {
    const values = xpath(
      requestFor('MONITOR', ds, null),
      `${D}/ID`, `${D}/GNAME`, `${D}/PERMISSIONS/GROUP_U`, `${D}/DS_MAD`, `${D}/TM_MAD`, `${D}/BASE_PATH`, `${D}/TYPE`, `${D}/DISK_TYPE`, `${D}/CLUSTERS/ID`,
      `${D}/TOTAL_MB`, `${D}/FREE_MB`, `${D}/USED_MB`, `${D}/IMAGES/ID`, `${D}/TEMPLATE/DS_MAD`, `${D}/TEMPLATE/TM_MAD`, `${D}/TEMPLATE/TYPE`, `${D}/TEMPLATE/BRIDGE_LIST`, `${I}/ID`,
    );
    expect(values).toEqual(['100', 'oneadmin', '1', 'fs', 'shared', '/var/lib/one/datastores/100', '0', '0', '0', '100', '60', '40', '', 'fs', 'shared', 'IMAGE_DS', 'h1 h2', '']);
  });

  it('STAT: a minimal image, PATH and the template SIZE (OS and DATABLOCK), BACKUP_JOB_ID when set', () => {
    const stat = imageView({ path: '/tmp/in.qcow2', template: { TYPE: 'DATABLOCK', SIZE: '', BACKUP_JOB_ID: '3' } });
    const req = requestFor('STAT', ds, stat);
    expect(xpath(req, `${I}/PATH`, `${I}/SIZE`, `${I}/BACKUP_JOB_ID`, `${I}/ID`, `${I}/SOURCE`)).toEqual(['/tmp/in.qcow2', '', '3', '', '']);
    expect(actionDocument(req)).toMatch(/<IMAGE><PATH>\/tmp\/in\.qcow2<\/PATH><SIZE><\/SIZE><BACKUP_JOB_ID>3<\/BACKUP_JOB_ID><\/IMAGE><DATASTORE>/);
    const cdrom = requestFor('STAT', ds, imageView({ path: '/tmp/x.iso', template: { TYPE: 'CDROM', SIZE: '5' } }));
    expect(actionDocument(cdrom)).toMatch(/<IMAGE><PATH>\/tmp\/x\.iso<\/PATH><\/IMAGE>/);
  });

  it('CLONE between datastores: SOURCE_BRIDGE_LIST after the datastore', () => {
    const req = requestFor('CLONE', ds, { ...image, source: '', path: '/var/lib/one/datastores/101/orig' }, { extra: { SOURCE_BRIDGE_LIST: 'h3' } });
    expect(xpath(req, `${I}/PATH`, `${I}/SOURCE`, '/DS_DRIVER_ACTION_DATA/SOURCE_BRIDGE_LIST')).toEqual(['/var/lib/one/datastores/101/orig', '', 'h3']);
  });

  it('SNAP_*: TARGET_SNAPSHOT; INCREMENT_FLATTEN: EXTRA_DATA/KEEP_LAST; RESTORE: DESTINATION_DS_ID and the options TEMPLATE', () => {
    expect(xpath(requestFor('SNAP_REVERT', ds, { ...image, targetSnapshot: 2 }), `${I}/TARGET_SNAPSHOT`)).toEqual(['2']);
    expect(xpath(requestFor('INCREMENT_FLATTEN', ds, image, { extra: { KEEP_LAST: '3' } }), '/DS_DRIVER_ACTION_DATA/EXTRA_DATA/KEEP_LAST')).toEqual(['3']);
    const restore = requestFor('RESTORE', ds, { ...image, type: 'BACKUP' }, { extra: { DESTINATION_DS_ID: '1', USERNAME: 'alice', NAME: 'back', NO_IP: 'NO' } });
    expect(xpath(restore, '/DS_DRIVER_ACTION_DATA/DESTINATION_DS_ID', '/DS_DRIVER_ACTION_DATA/TEMPLATE/USERNAME', '/DS_DRIVER_ACTION_DATA/TEMPLATE/NAME')).toEqual(['1', 'alice', 'back']);
  });
});
