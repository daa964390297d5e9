/**
 * Principle 8 as a class: every value of a driver document that a driver
 * script reads, and that a client wrote, has a strict form checked at the
 * command boundary. What the scripts read is derived from the scripts
 * themselves (the XPaths of OpenNebula's datastore drivers, the IMGR_*
 * variables of the bundled ones), so a field a script starts reading is
 * covered or this test fails. For each such field every hostile value
 * (`;`, `$(…)`, backticks, quotes, newline, `|`, `&`…) is refused, through
 * the image and datastore machines, with OBJ_ERR_ATTR_VALUE; and what does
 * pass (free text: DESCRIPTION, a NAME within §7.1.4) never lands in a
 * field a script reads.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { OPENNEBULA_SOURCE } from '../support/opennebula.js';
import { DRIVERS_DIR } from '../support/driver-request.js';
import { event, given, history, replay } from '../support/image-spec.js';
import { decideImage, initialImage } from '../../src/machines/image/decide.js';
import { USER, ADMIN, T0, BACKUP_DS } from '../support/fixtures.js';
import { DATASTORE_VALUE_FORMS, IMAGE_VALUE_FORMS } from '../../src/messages/driver-values.js';
import { actionDocument } from '../../src/driver-host/document.js';
import type { Effect } from '../../src/messages/effects.js';
import { DatastoreCommandSchema, DriverConfigSchema } from '../../src/messages/datastore.js';
import { decideDatastore, initialDatastore } from '../../src/machines/datastore/decide.js';
import { emptyDatastore } from '../../src/machines/datastore/record.js';
import type { DriverRequest } from '../../src/messages/wire.js';

const filesUnder = (dir: string): string[] =>
  readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? filesUnder(p) : [p];
  });
const texts = (dir: string): string => filesUnder(dir).map((f) => readFileSync(f, 'latin1')).join('\n');

type Where = 'image' | 'image template' | 'datastore' | 'datastore template' | 'extra';
interface Read {
  where: Where;
  key: string;
}
const key = (r: Read): string => `${r.where} ${r.key}`;

/** What OpenNebula's datastore scripts select from the document. */
function readByOpenNebula(): Read[] {
  const paths = new Set(texts(join(OPENNEBULA_SOURCE, 'var', 'remotes', 'datastore')).match(/\/DS_DRIVER_ACTION_DATA\/[A-Z0-9_/]+/g) ?? []);
  return [...paths].map((p) => {
    const parts = p.split('/').slice(2);
    if (parts[0] === 'IMAGE' && parts[1] === 'TEMPLATE') return { where: 'image template', key: parts.slice(2).join('/') };
    if (parts[0] === 'IMAGE') return { where: 'image', key: parts.slice(1).join('/') };
    if (parts[0] === 'DATASTORE' && parts[1] === 'TEMPLATE') return { where: 'datastore template', key: parts.slice(2).join('/') };
    if (parts[0] === 'DATASTORE') return { where: 'datastore', key: parts.slice(1).join('/') };
    return { where: 'extra', key: parts.join('/') };
  });
}

/** What imgr's bundled drivers read from their environment. */
function readByBundled(): Read[] {
  const names = new Set(texts(DRIVERS_DIR).match(/IMGR_(IMAGE|DS|EXTRA)_[A-Z0-9_]+/g) ?? []);
  return [...names].map((n): Read => {
    if (n.startsWith('IMGR_IMAGE_TEMPLATE_')) return { where: 'image template', key: n.slice('IMGR_IMAGE_TEMPLATE_'.length) };
    if (n.startsWith('IMGR_IMAGE_')) return { where: 'image', key: n.slice('IMGR_IMAGE_'.length) };
    if (n.startsWith('IMGR_DS_TEMPLATE_')) return { where: 'datastore template', key: n.slice('IMGR_DS_TEMPLATE_'.length) };
    if (n.startsWith('IMGR_DS_')) return { where: 'datastore', key: n.slice('IMGR_DS_'.length) };
    return { where: 'extra', key: n.slice('IMGR_EXTRA_'.length) };
  });
}

/**
 * Fields a script reads whose value no client writes: each with where it comes from.
 * Anything a client writes must be in IMAGE_VALUE_FORMS or DATASTORE_VALUE_FORMS instead.
 */
const NOT_A_CLIENT_VALUE: Record<string, string> = {
  'image ID': 'the image id imgr allocates',
  'image TYPE': "an enumeration, written as oned's number",
  'image TARGET_SNAPSHOT': 'a snapshot id (an integer the image machine checks)',
  'image VM_ID': 'a VM id (an integer)',
  'image INCREMENTS': "ids imgr numbers; sources a backup's SOURCE form or image.addIncrement's checks (tested below)",
  'image PATH_FORMAT': "the format the driver host's inspection found",
  'datastore TYPE': "an enumeration, written as oned's number",
  'extra BACKUP_IMAGE_ID': 'an image id (an integer)',
  'extra VM_ID': 'a VM id (an integer)',
  'extra CHAIN': 'YES or NO, set by the image machine',
  'extra KEEP_LAST': 'an integer the command schema checks',
  'extra INCREMENT_ID': 'an integer the command schema checks',
  'extra DISK_SOURCE': "the backed-up image's SOURCE (a driver's reply or an administrator's SOURCE, checked)",
  'datastore template RESTIC_PASSWORD': 'a sealed secret; the bundled restic exports it as RESTIC_PASSWORD, never into a command line',
  'datastore template SOURCE_BRIDGE_LIST': 'the origin datastore BRIDGE_LIST (checked at its creation)',
  'extra SOURCE_BRIDGE_LIST': "the origin datastore's BRIDGE_LIST (checked at its creation)",
};
/** imgr has no marketplace: the document never carries one (checked below). */
const NEVER_WRITTEN = (r: Read): boolean => r.where === 'extra' && r.key.startsWith('MARKETPLACE');

const formOf = (r: Read): ((v: string) => string | undefined) | undefined =>
  r.where.startsWith('image') ? IMAGE_VALUE_FORMS[r.key] : DATASTORE_VALUE_FORMS[r.key];

const READ = [...new Map([...readByOpenNebula(), ...readByBundled()].map((r) => [key(r), r])).values()].filter((r) => !NEVER_WRITTEN(r));

const MARK = '/tmp/imgr-pwned';
const HOSTILE = [
  `ext4; touch ${MARK}; echo`,
  `$(touch ${MARK})`,
  `\`touch ${MARK}\``,
  `x' ; touch ${MARK} ; '`,
  `x" ; touch ${MARK} ; "`,
  `raw\ntouch ${MARK}`,
  `raw | touch ${MARK}`,
  `raw && touch ${MARK}`,
  `/tmp/a b`,
  `--help`,
];

describe('every document field a driver reads has a strict form, or carries no client value', () => {
  it('the scripts read fields (derivation works)', () => {
    expect(READ.map(key)).toEqual(expect.arrayContaining(['image FS', 'image FORMAT', 'image PATH', 'image template MD5', 'image template SHA1', 'datastore BASE_PATH', 'image SOURCE']));
  });
  it.each(READ.map((r) => [key(r), r] as const))('%s', (_name, r) => {
    const form = formOf(r);
    if (form === undefined) {
      expect(NOT_A_CLIENT_VALUE[key(r)], `${key(r)} is read by a driver: give it a form in driver-values.ts, or say why no client writes it`).toBeDefined();
      return;
    }
    for (const v of HOSTILE) expect(form(v), `${key(r)} = ${JSON.stringify(v)}`).toBeDefined();
  });
});

const ID = 5;
const allocateEvent = (template: Record<string, string>, actor = USER) => event({ type: 'image.allocate', imageId: ID, datastoreId: 1, template }, { actor });
const allocate = (template: Record<string, string>, actor = USER) => given([], ID).when(allocateEvent(template, actor));
const decision = (template: Record<string, string>, actor = USER) => decideImage(initialImage(ID), allocateEvent(template, actor));

describe('hostile values of image attributes are refused at allocation (OBJ_ERR_ATTR_VALUE)', () => {
  const imageKeys = Object.keys(IMAGE_VALUE_FORMS);
  it.each(imageKeys)('%s', (attr) => {
    for (const v of HOSTILE) {
      const base = { NAME: 'disk', TYPE: 'DATABLOCK', SIZE: '1' };
      // SOURCE is an administrator's attribute: refused for its form, not only for who sends it.
      const d = decision({ ...base, [attr]: v }, attr === 'SOURCE' ? ADMIN : USER);
      expect(d.ok ? 'accepted' : d.rejection.code, `${attr} = ${JSON.stringify(v)}`).toBe('OBJ_ERR_ATTR_VALUE');
    }
  });
  it("the reproduced attack: FS 'ext4; touch …; echo' is refused with the form in the text", () => {
    allocate({ NAME: 'disk', TYPE: 'DATABLOCK', SIZE: '1', FS: `ext4; touch ${MARK}; echo` }).thenRejects(
      'OBJ_ERR_ATTR_VALUE',
      `Invalid FS "ext4; touch ${MARK}; echo": it must be one of ext2, ext3, ext4, xfs`,
    );
  });
  it('lower-case keys are the same attributes', () => {
    const d = decision({ NAME: 'disk', TYPE: 'DATABLOCK', SIZE: '1', md5: '$(id)' });
    expect(d.ok ? 'accepted' : d.rejection.code).toBe('OBJ_ERR_ATTR_VALUE');
  });
  it('good values pass', () => {
    const d = decision({ NAME: 'disk', TYPE: 'DATABLOCK', SIZE: '10', FS: 'ext4', FORMAT: 'qcow2', MD5: 'd41d8cd98f00b204e9800998ecf8427e', SHA1: 'da39a3ee5e6b4b0d3255bfef95601890afd80709', DEV_PREFIX: 'vd' });
    expect(d.ok).toBe(true);
  });
});

const drivers = DriverConfigSchema.parse({ dsMads: { fs: {}, 'one-fs': {} }, tmMads: { shared: {} }, datastoreLocation: '/var/lib/imgr/datastores' });
const createDs = (template: Record<string, string>) =>
  decideDatastore(initialDatastore(100), {
    ...DatastoreCommandSchema.parse({ type: 'datastore.create', datastoreId: 100, template }),
    meta: { commandId: 'ds-1', at: T0, actor: ADMIN },
    ctx: { nameTakenBy: null, drivers, capacityCheck: true, images: 0, reservedMb: 0 },
  });

describe('hostile values of datastore attributes are refused at creation (OBJ_ERR_ATTR_VALUE)', () => {
  it.each(Object.keys(DATASTORE_VALUE_FORMS))('%s', (attr) => {
    for (const v of HOSTILE) {
      const d = createDs({ NAME: 'ds', DS_MAD: 'one-fs', TM_MAD: 'shared', [attr]: v });
      const code = d.ok ? 'accepted' : d.rejection.code;
      // A DS_MAD or TM_MAD that is no configured driver is refused for that first.
      expect(code, `${attr} = ${JSON.stringify(v)}`).toBe('OBJ_ERR_ATTR_VALUE');
    }
  });
});

/** The text of the element at `path` (/DS_DRIVER_ACTION_DATA/…), unescaped; undefined when absent. */
function at(doc: string, path: string): string | undefined {
  let scope = doc;
  const parts = path.split('/').slice(1);
  for (const [n, part] of parts.entries()) {
    // The image's own <DATASTORE> (its datastore's name) is not the root's DATASTORE document.
    if (n === 1 && part === 'DATASTORE') scope = scope.replace(/<IMAGE>[\s\S]*<\/IMAGE>/, '');
    const m = new RegExp(`<${part}>([\\s\\S]*?)</${part}>`).exec(scope);
    if (!m) return undefined;
    scope = m[1] ?? '';
  }
  return scope.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&amp;/g, '&');
}

describe('free text reaches no field a script reads', () => {
  it('a DESCRIPTION, a label and a NAME full of shell syntax are kept, and every read field of MKFS and CP documents is clean', () => {
    const free = `a'b"c;$(touch ${MARK})\`id\`|x&y\nz`;
    const datastore = { ...emptyDatastore(1), name: 'default', dsMad: 'fs', tmMad: 'shared', basePath: '/ds/1', template: { SAFE_DIRS: '/tmp', RESTRICTED_DIRS: '/' }, state: 'READY' as const };
    for (const template of [
      { NAME: 'disk `id` (1) * ? ! ~', TYPE: 'DATABLOCK', SIZE: '1', FS: 'ext4', DESCRIPTION: free, LABELS: free },
      { NAME: 'copy (2)', PATH: '/tmp/import/disk.raw', SIZE: '1', DESCRIPTION: free, TARGET: free, SOMETHING: free },
    ]) {
      const facts = history(ID, allocateEvent(template));
      const req = facts[0]?.effects.find((e): e is Extract<Effect, { kind: 'driver.request' }> => e.kind === 'driver.request');
      const image = replay(facts);
      if (!req || !image) throw new Error('no driver request');
      const request: DriverRequest = { requestId: 'r', action: req.action, imageId: ID, datastoreId: 1, deadline: 0, extra: req.extra, image, datastore, seq: 1 };
      const doc = actionDocument(request);
      // The free text is in the document (imgr keeps it) …
      expect(doc).toContain('DESCRIPTION');
      // … but at no XPath a script reads.
      for (const p of new Set(texts(join(OPENNEBULA_SOURCE, 'var', 'remotes', 'datastore')).match(/\/DS_DRIVER_ACTION_DATA\/[A-Z0-9_/]+/g) ?? [])) {
        const v = at(doc, p);
        if (v !== undefined) expect(v, p).not.toMatch(/[;$`'"|&<>\n()\\]/);
      }
      expect(doc).not.toContain('<MARKETPLACE>');
    }
  });
});

describe("a backup's SOURCE and FORMAT, and an increment's SOURCE, have their forms too (the backup drivers read them)", () => {
  const backup = (source: string, format = 'raw') =>
    event(
      { type: 'image.allocateBackup', imageId: ID, datastoreId: 100, vmId: 9, source, sizeMb: 1, format, diskIds: [0], incremental: true, owner: { uid: 7, gid: 100, uname: 'alice', gname: 'users' } },
      { ctx: { datastore: BACKUP_DS }, actor: ADMIN },
    );
  // A newline in these is refused before, by the command schema (control characters, CMD_ERR_INVALID).
  it.each(HOSTILE.filter((v) => !v.includes('\n')))('%j', (v) => {
    expect(decideImage(initialImage(ID), backup(v))).toMatchObject({ ok: false, rejection: { code: 'OBJ_ERR_ATTR_VALUE' } });
    expect(decideImage(initialImage(ID), backup('snap-1', v))).toMatchObject({ ok: false, rejection: { code: 'OBJ_ERR_ATTR_VALUE' } });
    const chain = history(ID, backup('snap-1'));
    const agg = given(chain, ID).aggregate;
    expect(decideImage(agg, event({ type: 'image.addIncrement', imageId: ID, source: v, sizeMb: 1 }, { actor: ADMIN }))).toMatchObject({ ok: false, rejection: { code: 'OBJ_ERR_ATTR_VALUE' } });
    expect(decideImage(agg, event({ type: 'image.addIncrement', imageId: ID, source: 'inc-1', sizeMb: 1 }, { actor: ADMIN })).ok).toBe(true);
  });
});
