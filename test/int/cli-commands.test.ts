/**
 * Every imgr command, in both of its output modes: the human answer and the
 * --json answer. A test at the end checks that no command was left out.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { Kvm } from '@nats-io/kv';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestNats } from '../support/nats.js';
import { eventually } from '../support/eventually.js';
import { startSystem, type TestSystem } from '../support/system.js';
import type { Manager } from '../../src/manager.js';
import type { ProjectionService } from '../../src/projections/service.js';
import { ImgrClient } from '../../src/client/index.js';
import { main } from '../../src/cli/imgr.js';
import { COMMANDS } from '../../src/cli/commands.js';
import { loadOrCreateKey, pinnedFingerprint, publicKeyFingerprint } from '../../src/secrets/keyring.js';
import { TWO_SNAPSHOTS } from '../support/image-states.js';

let sys: TestSystem;
let nats: TestNats;
let manager: Manager;
let projections: ProjectionService;
let c: ImgrClient;
const exercised = new Set<string>();
const ids = { ds: 0, sys: 0, empty: 0, backups: 0, image: 0, snap: 0, backupImage: 0 };

beforeAll(async () => {
  sys = await startSystem();
  ({ nats, manager, projections, client: c } = sys);
  const create = async (template: Record<string, string>) => {
    const id = await c.nextId('datastore');
    await c.send({ type: 'datastore.create', datastoreId: id, template });
    return id;
  };
  ids.ds = await create({ NAME: 'images', DS_MAD: 'fs', TM_MAD: 'shared' });
  ids.sys = await create({ NAME: 'system', TYPE: 'SYSTEM_DS', TM_MAD: 'shared' });
  ids.empty = await create({ NAME: 'spare', DS_MAD: 'fs', TM_MAD: 'shared' });
  ids.backups = await create({ NAME: 'backups', TYPE: 'BACKUP_DS', DS_MAD: 'rsync', RSYNC_HOST: 'localhost' });
  const image = async (name: string, extra: Record<string, string> = {}) => {
    const id = await c.nextId('image');
    await c.send({ type: 'image.allocate', imageId: id, datastoreId: ids.ds, template: { NAME: name, PATH: '/tmp/a', SIZE: '4', ...extra } });
    await eventually(() => manager.host.image(id)?.state === 'READY', `${name} READY`);
    return id;
  };
  ids.image = await image('base');
  ids.snap = await image('snappy', { PERSISTENT: 'YES' });
  await c.send({ type: 'image.acquire', imageId: ids.snap, vmId: 9, mode: 'deploy' });
  await c.send({ type: 'image.setSnapshots', imageId: ids.snap, snapshots: TWO_SNAPSHOTS });
  await c.send({ type: 'image.release', imageId: ids.snap, vmId: 9 });
  ids.backupImage = await c.nextId('image');
  // A backup image is registered by imgr itself (the manager's backup bookkeeping), on its own subject.
  const asImgr = await ImgrClient.connect({ servers: nats.url, role: 'manager', actor: { uid: 0, gid: 0, name: 'imgr', service: 'process-manager' } });
  await asImgr.send(
    { type: 'image.allocateBackup', imageId: ids.backupImage, datastoreId: ids.backups, vmId: 9, source: 'b0', sizeMb: 4, format: 'raw', diskIds: [0], owner: { uid: 0, gid: 0, uname: 'oneadmin', gname: '' } },
    { internal: true },
  );
  await asImgr.close();
});

afterAll(async () => {
  await sys.stop();
});

async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(['--nats', nats.url, ...argv], (s) => (out += s), (s) => (err += s), false);
  return { code, out, err };
}

/** One command in both modes; `humanArgs` and `jsonArgs` differ for commands that cannot run twice alike. */
async function pair(name: string, humanArgs: string[], human: RegExp, jsonArgs: string[], json: (j: unknown) => void): Promise<void> {
  exercised.add(name);
  await projections.projector.waitFor(manager.host.appliedSeq);
  const h = await run(humanArgs);
  expect(h.code, `${name}: ${h.err}`).toBe(0);
  expect(h.out).toMatch(human);
  await projections.projector.waitFor(manager.host.appliedSeq);
  const j = await run([...jsonArgs, '--json']);
  expect(j.code, `${name} --json: ${j.err}${j.out}`).toBe(0);
  json(JSON.parse(j.out));
}
const accepted = (state?: string) => (j: unknown) => expect(j).toMatchObject({ status: 'accepted', ...(state ? { state } : {}) });
const both = (name: string, argv: string[], human: RegExp, json: (j: unknown) => void): Promise<void> => pair(name, argv, human, argv, json);

describe("the spec's texts where the CLI used to differ", () => {
  it('a deleted image is not found (exit 2), like the API and the commands say', async () => {
    await projections.projector.waitFor(manager.host.appliedSeq);
    const made = await run(['image', 'create', '--datastore', String(ids.ds), '--path', '/tmp/g', '--size', '1', '--name', 'gone', '--wait', '--json']);
    const id = (JSON.parse(made.out) as { id: number }).id;
    expect((await run(['image', 'delete', String(id), '--wait'])).code).toBe(0);
    const shown = await run(['image', 'show', String(id)]);
    expect(shown).toMatchObject({ code: 2 });
    expect(shown.err).toContain(`image ${id} does not exist`);
  });
  it('a negative snapshot id gets "Snapshot does not exist" (after --, since -1 reads as an option)', async () => {
    const r = await run(['image', 'snapshot-delete', String(ids.snap), '--', '-1']);
    expect(r).toMatchObject({ code: 2 });
    expect(r.err).toContain('Snapshot does not exist (IMG_ERR_SNAP_NOT_FOUND)');
  });
});

describe('every command, human and --json', () => {
  it('datastores', async () => {
    await both('datastore list', ['datastore', 'list'], /^ID\s+NAME\s+TYPE/, (j) => expect((j as { name: string }[]).map((d) => d.name)).toContain('images'));
    await both('datastore show', ['datastore', 'show', String(ids.ds)], /^ID\s+\d+\nNAME\s+images/, (j) => expect(j).toMatchObject({ id: ids.ds, name: 'images' }));
    await both('datastore monitor', ['datastore', 'monitor', String(ids.ds)], /^TOTAL\s+1000 MB\nFREE\s+900 MB\nUSED\s+100 MB\nMONITORED\s+\d{4}-/, (j) => expect(j).toMatchObject({ totalMb: 1000, freeMb: 900, monitorError: null }));
    await pair('datastore disable', ['datastore', 'disable', String(ids.sys)], /^datastore \d+: DISABLED\n$/, ['datastore', 'disable', String(ids.sys)], accepted('DISABLED'));
    await both('datastore enable', ['datastore', 'enable', String(ids.sys)], /^datastore \d+: READY\n$/, accepted('READY'));
    let created = 0;
    await pair('datastore create', ['datastore', 'create', '--name', 'extra-1', '--ds-mad', 'dummy', '--tm-mad', 'shared'], /^datastore \d+: READY\n$/, ['datastore', 'create', '--name', 'extra-2', '--ds-mad', 'dummy', '--tm-mad', 'shared'], (j) => {
      accepted('READY')(j);
      created = (j as { id: number }).id;
    });
    await pair('datastore delete', ['datastore', 'delete', String(created)], /^datastore \d+: REMOVED\n$/, ['datastore', 'delete', String(ids.empty)], accepted('REMOVED'));
  });

  it('images: reading and simple changes', async () => {
    await both('image list', ['image', 'list', '--name', 'base'], /^ID\s+USER\s+NAME[\s\S]*base[\s\S]*1 of 1\n$/, (j) => expect(j).toMatchObject({ total: 1 }));
    await both('image show', ['image', 'show', String(ids.image)], /^ID\s+\d+\nNAME\s+base\n/, (j) => expect(j).toMatchObject({ name: 'base' }));
    await both('image disable', ['image', 'disable', String(ids.image)], /: DISABLED\n$/, accepted('DISABLED'));
    await both('image enable', ['image', 'enable', String(ids.image)], /: READY\n$/, accepted('READY'));
    await both('image persistent', ['image', 'persistent', String(ids.image)], /: persistent\n$/, accepted());
    await both('image nonpersistent', ['image', 'nonpersistent', String(ids.image)], /: nonpersistent\n$/, accepted());
    await both('image chtype', ['image', 'chtype', String(ids.image), 'DATABLOCK'], /: DATABLOCK\n$/, accepted());
    await pair('image acquire', ['image', 'acquire', String(ids.image), '--vm', '5'], /: USED\n$/, ['image', 'acquire', String(ids.image), '--vm', '6'], accepted('USED'));
    await pair('image release', ['image', 'release', String(ids.image), '--vm', '5'], /: USED\n$/, ['image', 'release', String(ids.image), '--vm', '6'], accepted('READY'));
  });

  it('images: creation, copies, snapshots, deletion', async () => {
    await pair('image create', ['image', 'create', '--datastore', String(ids.ds), '--path', '/tmp/b', '--size', '2', '--wait', 'NAME=made-1'], /^image \d+: READY\n$/,
      ['image', 'create', '--datastore', String(ids.ds), '--path', '/tmp/b', '--size', '2', '--name', 'made-2', '--wait'], (j) => expect(j).toMatchObject({ status: 'accepted', state: 'READY', view: { name: 'made-2' } }));
    let copy = 0;
    await pair('image clone', ['image', 'clone', String(ids.image), 'copy-1', '--wait'], /^image \d+: READY\n$/, ['image', 'clone', String(ids.image), 'copy-2', '--wait'], (j) => {
      expect(j).toMatchObject({ state: 'READY', view: { name: 'copy-2' } });
      copy = (j as { id: number }).id;
    });
    // Snapshots 0 and 1 (active): delete 0, revert to 1 (a no-op, W29), flatten 1.
    await pair('image snapshot-delete', ['image', 'snapshot-delete', String(ids.snap), '0', '--wait'], /: READY\n$/, ['image', 'snapshot-revert', String(ids.snap), '1', '--wait'], (j) => expect(j).toMatchObject({ state: 'READY' }));
    await both('image snapshot-revert', ['image', 'snapshot-revert', String(ids.snap), '1'], /: READY\n$/, accepted('READY'));
    await pair('image snapshot-flatten', ['image', 'snapshot-flatten', String(ids.snap), '1', '--wait'], /: READY\n$/, ['image', 'show', String(ids.snap)], (j) => expect(j).toMatchObject({ snapshots: { list: [] } }));
    await pair('image delete', ['image', 'delete', String(copy), '--wait'], /: REMOVED\n$/, ['image', 'delete', String(copy - 1), '--wait'], (j) => expect(j).toMatchObject({ state: 'REMOVED' }));
  });

  it('backups and restores', async () => {
    await both('image backup', ['image', 'backup', String(ids.image), '--datastore', String(ids.backups), '--vm', '3'], /^backup requested into backup image \d+\n$/, (j) => expect(typeof (j as { backupImageId: unknown }).backupImageId).toBe('number'));
    await both('image restore', ['image', 'restore', String(ids.backupImage), '--datastore', String(ids.ds), '--name', 'back'], /^restore of backup image \d+ requested/, accepted('READY'));
  });

  it('audit and operations', async () => {
    await both('history', ['history', 'image', String(ids.image)], /^SEQ\s+WHEN\s+WHO\s+WHAT/, (j) => expect((j as unknown[]).length).toBeGreaterThan(5));
    await both('at', ['at', 'image', String(ids.image), '--seq', '1000000'], /^ID\s+\d+\nNAME\s+base/, (j) => expect(j).toMatchObject({ name: 'base' }));
    await both('audit verify', ['audit', 'verify'], /^log intact: \d+ commits/, (j) => expect(j).toMatchObject({ ok: true }));
    // Nothing failed here; test/int/parking.test.ts parks a commit and reads it back.
    await both('parked', ['parked'], /^nothing parked\n$/, (j) => expect(j).toEqual([]));
    // NDJSON is the machine format already: both modes print the same lines.
    exercised.add('export');
    const lines = (await run(['export', 'datastore', String(ids.ds)])).out;
    expect(lines).toMatch(/^\{"seq":\d+,"subject":"imgr\.evt\.datastore\./);
    expect((await run(['export', 'datastore', String(ids.ds), '--json'])).out).toBe(lines);
    await pair('projections rebuild', ['projections', 'rebuild'], /^views rebuilt into generation 1 /, ['projections', 'rebuild'], (j) => expect(j).toMatchObject({ ok: true, generation: 2 }));
  });

  it('principals', async () => {
    // The principals file of this test's own data directory, not the repository's.
    process.env['IMGR_DATA_DIR'] = mkdtempSync(join(tmpdir(), 'imgr-cli-data-'));
    await pair('principal add', ['principal', 'add', 'carol', '9', '100'], /^principal carol \(uid 9, gid 100\); password in .*carol; no nats-server of npm start to reload/, ['principal', 'add', 'dave', '10', '100', '--delegate', '--uids', '1000-1999,3000', '--gids', '100-199', '--vm-service'], (j) =>
      expect(j).toMatchObject({ principal: 'dave', uid: 10, gid: 100, delegate: true, uids: [[1000, 1999], [3000, 3000]], gids: [[100, 199]], vmService: true }),
    );
    await both('principal list', ['principal', 'list'], /^NAME\s+UID\s+GID\s+ADMIN\s+DELEGATES FOR\s+VM SERVICE\n(.*\n)*carol\s+9\s+100\s+no\s+no\s+no\n(.*\n)*dave\s+10\s+100\s+no\s+uids 1000-1999,3000 gids 100-199\s+yes/, (j) =>
      expect(j).toMatchObject({ oneadmin: { admin: true }, dave: { uid: 10 } }),
    );
    // Group 0 only with --admin, and --admin is group 0; ranges are a delegate's, and 0 only an administrator's to grant.
    for (const [args, text] of [
      [['ops', '5', '0'], "gid 0 is the administrators' group: only a principal added with --admin (admin: true) is in it"],
      [['ops', '5', '100', '--admin'], "admin means membership of the administrators' group: its gid must be 0, not 100"],
      [['ops', '0', '100'], 'uid 0 is oneadmin: only an administrator (admin: true) may be it'],
      [['ops', '5', '100', '--uids', '1-9'], '--uids is the grant of a delegate: add --delegate'],
      [['ops', '5', '100', '--delegate', '--uids', '9-1'], '--uids takes ids and ranges, as 1000-1999,3000'],
      [['ops', '5', '100', '--delegate', '--uids', '1000-1999', '--gids', '0-199'], 'only an administrator may vouch for uid 0 or gid 0: its grant must leave them out'],
    ] as const) {
      const r = await run(['principal', 'add', ...args]);
      expect(r, args.join(' ')).toMatchObject({ code: 1 });
      expect(r.err).toContain(text);
    }
    expect((await run(['principal', 'add', 'ops', '5', '0', '--admin'])).code).toBe(0);
    // A file with an entry granting what it does not say is refused by name; `principal add` replaces that entry.
    const file = join(process.env['IMGR_DATA_DIR'] ?? '', 'principals.json');
    const before = readFileSync(file, 'utf8');
    writeFileSync(file, JSON.stringify({ ...(JSON.parse(before) as object), eve: { uid: 11, gid: 0, admin: false, delegate: false } }));
    const refused = await run(['principal', 'list']);
    expect(refused.code).not.toBe(0);
    expect(refused.err).toContain("principal eve: gid 0 is the administrators' group");
    expect((await run(['principal', 'add', 'eve', '11', '100'])).code).toBe(0);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toMatchObject({ eve: { uid: 11, gid: 100, admin: false } });
    exercised.add('nats-users');
    const block = (await run(['nats-users'])).out;
    expect(block).toMatch(/^authorization \{\n {2}users: \[/);
    expect(block).toMatch(/\{ user: "carol", password: "[A-Za-z0-9_-]{32}", permissions: \{ publish: \["imgr\.cmd\.carol\.>"/);
    expect(block).not.toContain('imgr-manager');
    // The manager follows imgr_meta: carol is known to it at once.
    const meta = await new Kvm(await nats.connect('manager')).open('imgr_meta');
    expect(Object.keys(JSON.parse((await meta.get('principals'))?.string() ?? '{}') as object)).toEqual(expect.arrayContaining(['carol', 'dave', 'oneadmin']));
  });

  it('secrets', async () => {
    // A driver host's key file: the manager role publishes its public half and pins its fingerprint beside the credentials.
    const keyFile = join(mkdtempSync(join(tmpdir(), 'imgr-cli-key-')), 'secrets.key');
    const fingerprint = publicKeyFingerprint((await loadOrCreateKey(keyFile)).publicKeyPem);
    await both('secrets publish', ['secrets', 'publish', '--key', keyFile], new RegExp(`^secrets key ${fingerprint} published; fingerprint pinned in .*secrets\\.fingerprint`), (j) =>
      expect(j).toMatchObject({ fingerprint, key: keyFile }),
    );
    expect(pinnedFingerprint()).toBe(fingerprint);
    // Another key is refused: the published one and the pin stay.
    const other = join(mkdtempSync(join(tmpdir(), 'imgr-cli-key-')), 'secrets.key');
    await loadOrCreateKey(other);
    const r = await run(['secrets', 'publish', '--key', other]);
    expect(r.code).toBe(5);
    expect(r.err).toContain('pins another secrets key');
    expect(pinnedFingerprint()).toBe(fingerprint);
  });

  it('left no command out', () => {
    expect([...exercised].sort()).toEqual(COMMANDS.map((x) => x.name).sort());
  });
});
