/**
 * The imgr CLI against a running system: human output, --json output and exit
 * codes of its commands.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_PRINCIPALS, TestNats } from '../support/nats.js';
import { DriverResponder } from '../support/driver-responder.js';
import { Manager } from '../../src/manager.js';
import { Projector } from '../../src/projections/projector.js';
import { silentLogger } from '../../src/platform/logger.js';
import { Responder } from '../../src/platform/responder.js';
import { readerOf } from '../../src/intake/readers.js';
import { main } from '../../src/cli/imgr.js';
import { eventually } from '../support/eventually.js';
import { readLog } from '../support/log.js';
import { ImgrClient } from '../../src/client/index.js';

let nats: TestNats;
let manager: Manager;
let projector: Projector;
let drivers: DriverResponder;
let queries: Responder;
let dir: string;

beforeAll(async () => {
  nats = await TestNats.start();
  manager = await Manager.start({ servers: nats.url, log: silentLogger(), tickMs: 100 });
  queries = await Responder.connect(nats.url, 'test-projections-queries', silentLogger());
  projector = await Projector.start(await nats.connect('manager'), silentLogger(), { queries: { responder: queries, readerOf: (q) => readerOf(q.asker, (name) => TEST_PRINCIPALS[name]) } });
  drivers = await DriverResponder.start(nats.url);
  dir = mkdtempSync(join(tmpdir(), 'imgr-cli-'));
});
afterAll(async () => {
  await drivers.stop();
  await projector.stop();
  await queries.close();
  await manager.stop();
  await nats.dispose();
  rmSync(dir, { recursive: true, force: true });
});

async function imgr(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(['--nats', nats.url, ...argv], (s) => (out += s), (s) => (err += s), false);
  return { code, out, err };
}
async function json<T>(...argv: string[]): Promise<T> {
  const r = await imgr(...argv, '--json');
  expect(r.code, r.err + r.out).toBe(0);
  return JSON.parse(r.out) as T;
}

describe('imgr CLI', () => {
  let ds = 0;
  let image = 0;

  it('datastore create / list / show', async () => {
    const created = await imgr('datastore', 'create', '--name', 'images', '--ds-mad', 'fs', '--tm-mad', 'shared', 'LIMIT_MB=5000');
    expect(created.code).toBe(0);
    expect(created.out).toMatch(/^datastore \d+: READY\n$/);
    ds = Number(/datastore (\d+)/.exec(created.out)?.[1]);
    await projector.waitFor(manager.host.appliedSeq);
    const list = await imgr('datastore', 'list');
    expect(list.out).toMatch(/^ID\s+NAME\s+TYPE\s+DS_MAD\s+FREE\/TOTAL\s+IMAGES\s+STATE\n/);
    expect(list.out).toMatch(new RegExp(`${ds}\\s+images\\s+IMAGE_DS\\s+fs`));
    expect((await json<{ name: string }[]>('datastore', 'list')).map((d) => d.name)).toEqual(['images']);
    const show = await imgr('datastore', 'show', String(ds));
    expect(show.out).toMatch(/^ID\s+\d+\nNAME\s+images\n/);
    expect(await json('datastore', 'show', String(ds))).toMatchObject({ id: ds, name: 'images', template: { LIMIT_MB: '5000' } });
  });

  it('image create --wait follows the copy to its end', async () => {
    const tpl = join(dir, 'ubuntu.tpl');
    writeFileSync(tpl, '# an image template\nNAME = "ubuntu"\nDESCRIPTION = "from a template file"\n');
    const r = await imgr('image', 'create', '--datastore', String(ds), '--template', tpl, '--path', '/tmp/u.img', '--size', '10', '--wait');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^image \d+: READY\n$/);
    image = Number(/image (\d+)/.exec(r.out)?.[1]);
    const shown = await json<{ name: string; template: Record<string, string> }>('image', 'show', String(image));
    expect(shown).toMatchObject({ name: 'ubuntu', template: { DESCRIPTION: 'from a template file' } });
    expect((await imgr('image', 'show', String(image))).out).toMatch(/^ID\s+\d+\nNAME\s+ubuntu\nOWNER\s+oneadmin \(0:0\)\nSTATE\s+READY\n/);
  });

  it('W38: image create reserves space first and refuses what does not fit', async () => {
    const r = await imgr('image', 'create', '--datastore', String(ds), '--name', 'huge', '--path', '/tmp/huge.img', '--size', '5000');
    expect(r.code).toBe(2);
    expect(r.err).toBe('imgr: Not enough space in datastore (DS_ERR_NO_SPACE)\nhint: imgr datastore monitor <id> shows the free space\n');
    // The refusal held nothing back: a fitting image still registers, and its reservation settles.
    expect((await imgr('image', 'create', '--datastore', String(ds), '--name', 'fits', '--path', '/tmp/f.img', '--size', '800', '--wait')).out).toMatch(/READY/);
    await eventually(() => manager.host.reservationsIn(ds).length === 0, 'reservation settled');
  });

  it('image list with filters, as a table and as JSON', async () => {
    await projector.waitFor(manager.host.appliedSeq);
    const t = await imgr('image', 'list', '--name', 'ubu');
    expect(t.out).toMatch(/^ID\s+USER\s+NAME\s+DATASTORE\s+TYPE\s+SIZE\s+STATE\s+VMS\n/);
    expect(t.out).toMatch(/ubuntu\s+images\s+OS\s+10M\s+READY\s+0\n1 of 1\n$/);
    expect(await json('image', 'list', '--state', 'disabled')).toEqual({ total: 0, items: [], nextOffset: null });
  });

  it('disable, enable, persistent, chtype, acquire, release', async () => {
    expect((await imgr('image', 'disable', String(image))).out).toBe(`image ${image}: DISABLED\n`);
    expect((await imgr('image', 'enable', String(image))).out).toBe(`image ${image}: READY\n`);
    expect((await imgr('image', 'persistent', String(image))).out).toBe(`image ${image}: persistent\n`);
    expect((await imgr('image', 'chtype', String(image), 'datablock')).out).toBe(`image ${image}: DATABLOCK\n`);
    expect(await json('image', 'acquire', String(image), '--vm', '3')).toMatchObject({ status: 'accepted', state: 'USED_PERS' });
    expect((await imgr('image', 'release', String(image), '--vm', '3')).out).toBe(`image ${image}: READY\n`);
  });

  it('clone --wait', async () => {
    const r = await imgr('image', 'clone', String(image), 'ubuntu-copy', '--wait');
    expect(r.out).toMatch(/^image \d+: READY\n$/);
    expect(manager.host.image(image)?.state).toBe('READY');
  });

  it('clone of a DISABLED image: one command, refused with the state named, the origin holds nothing', async () => {
    // Its own datastore and image, so that it passes alone too.
    const made = await imgr('datastore', 'create', '--name', 'clone-refusal', '--ds-mad', 'fs', '--tm-mad', 'shared');
    const own = Number(/datastore (\d+)/.exec(made.out)?.[1]);
    const created = await imgr('image', 'create', '--datastore', String(own), '--name', 'to-disable', '--path', '/tmp/d.img', '--size', '1', '--wait');
    const origin = Number(/image (\d+)/.exec(created.out)?.[1]);
    expect((await imgr('image', 'disable', String(origin))).code).toBe(0);
    const r = await imgr('image', 'clone', String(origin), 'not-now');
    expect(r).toMatchObject({ code: 2, out: '', err: 'imgr: Cannot clone image in state: DISABLED (IMG_ERR_CLONE_STATE)\n' });
    expect(manager.host.image(origin)).toMatchObject({ state: 'DISABLED', clones: [] });
  });

  it('a failure at the edge exits with the code its failure code maps to: a refused query exits 1, naming IMGR_QUERY_REFUSED', async () => {
    const r = await imgr('image', 'list', '--limit', '5000');
    expect(r).toMatchObject({ code: 1, out: '' });
    expect(r.err).toBe('imgr: query refused: limit: Too big: expected number to be <=1000 (IMGR_QUERY_REFUSED)\n');
  });

  it('a refusal exits 2 with the manager\'s text; --json says it too', async () => {
    await imgr('image', 'acquire', String(image), '--vm', '4');
    const r = await imgr('image', 'delete', String(image));
    expect(r).toMatchObject({ code: 2, out: '' });
    expect(r.err).toBe('imgr: Cannot delete image. There are 1 VMs using it. (IMG_ERR_DELETE_VMS)\n');
    const j = await imgr('image', 'delete', String(image), '--json');
    expect(JSON.parse(j.out)).toEqual({ error: 'Cannot delete image. There are 1 VMs using it. (IMG_ERR_DELETE_VMS)', exitCode: 2 });
    await imgr('image', 'release', String(image), '--vm', '4');
  });

  it('delete --wait, history, at, audit verify', async () => {
    expect((await imgr('image', 'delete', String(image), '--wait')).out).toBe(`image ${image}: REMOVED\n`);
    const h = await imgr('history', 'image', String(image));
    expect(h.out).toMatch(/^SEQ\s+WHEN\s+WHO\s+WHAT\s+STATE\s+WHY\n/);
    expect(h.out).toMatch(/oneadmin\/oneadmin\s+REFUSED image\.delete\s+-\s+IMG_ERR_DELETE_VMS: Cannot delete image\. There are 1 VMs using it\./);
    expect(h.out).toMatch(/image\.removed\s+REMOVED/);
    const first = (await json<{ seq: number }[]>('history', 'image', String(image)))[0]?.seq ?? 0;
    expect(await json('at', 'image', String(image), '--seq', String(first))).toMatchObject({ name: 'ubuntu', state: 'LOCKED' });
    expect((await imgr('audit', 'verify')).out).toMatch(/^log intact: \d+ commits of \d+ aggregates\n$/);
    const ndjson = (await imgr('export', 'image', String(image))).out;
    const lines = ndjson.trimEnd().split('\n').map((l) => JSON.parse(l) as { subject: string });
    expect(lines.length).toBeGreaterThan(5);
    expect(new Set(lines.map((l) => l.subject))).toEqual(new Set([`imgr.evt.image.${image}`]));
    expect((await imgr('export', 'image', String(image), '--json')).out).toBe(ndjson);
  });

  it('usage errors exit 1 with a hint; an unreachable system exits 4', async () => {
    expect(await imgr('image', 'show')).toMatchObject({ code: 1, err: 'imgr: ID must be a number, got ""\n' });
    const bad = await imgr('image', 'create', '--bogus');
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/hint: imgr image create --help/);
    expect((await imgr('frobnicate')).code).toBe(1);
    const down = await main(['--nats', 'nats://127.0.0.1:1', 'image', 'list'], () => undefined, () => undefined, false);
    expect(down).toBe(4);
  });

  it('--help shows usage and an example; completion prints a bash script', async () => {
    const h = await imgr('image', 'clone', '--help');
    expect(h.out).toBe('usage: imgr image clone ID NAME [--datastore ID] [--json] [--wait]\n\ncopy an image into a new one\n\nexample:\n  imgr image clone 42 ubuntu-copy --wait\n');
    expect((await imgr('completion', 'bash')).out).toMatch(/complete -F _imgr imgr/);
  });

  it('export through a pipe writes the whole log, past the 64 KiB of a pipe buffer', async () => {
    const c = await ImgrClient.connect({ servers: nats.url, actor: { uid: 0, gid: 0, name: 'oneadmin' } });
    // Its own datastore, so that the case passes alone as well as after the others.
    const bulk = await c.nextId('datastore');
    await c.send({ type: 'datastore.create', datastoreId: bulk, template: { NAME: 'bulk', DS_MAD: 'fs', TM_MAD: 'shared' } });
    for (let i = 0; i < 60; i++) {
      const id = await c.nextId('image');
      await c.send({ type: 'image.allocate', imageId: id, datastoreId: bulk, template: { NAME: `bulk-${id}`, SOURCE: `/s/${id}`, FORMAT: 'raw', SIZE: '1', DESCRIPTION: 'd'.repeat(2048) } });
    }
    await c.close();
    const before = (await readLog(await nats.connect('manager'))).length;
    const bin = fileURLToPath(new URL('../../bin/imgr', import.meta.url));
    const { stdout: out } = await promisify(execFile)(bin, ['--nats', nats.url, 'export'], { cwd: tmpdir(), encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
    // The log may grow meanwhile (a trailing monitor of the registrations' datastore): the export holds all of it up to when it ran.
    const after = (await readLog(await nats.connect('manager'))).length;
    expect(out.length).toBeGreaterThan(128 * 1024);
    const lines = out.trimEnd().split('\n');
    expect(lines.length).toBeGreaterThanOrEqual(before);
    expect(lines.length).toBeLessThanOrEqual(after);
    for (const l of lines) expect(() => JSON.parse(l) as unknown).not.toThrow();
  });

  it('the bin/imgr wrapper runs from any directory', async () => {
    const bin = fileURLToPath(new URL('../../bin/imgr', import.meta.url));
    // Asynchronously: the projections answering the query run in this process.
    const { stdout: out } = await promisify(execFile)(bin, ['--nats', nats.url, 'datastore', 'list', '--json'], { cwd: tmpdir(), encoding: 'utf8' });
    expect((JSON.parse(out) as { name: string }[]).map((d) => d.name)).toContain('images');
  });
});
