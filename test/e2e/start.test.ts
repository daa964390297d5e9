/**
 * `npm start`'s code path (src/start.ts) as a user runs it: the whole system
 * comes up with its default datastores, an image registered from a file
 * becomes READY with its bytes on disk, Ctrl-C stops everything, and a second
 * start on the same data finds everything again.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { ImgrClient } from '../../src/client/index.js';
import { eventually } from '../support/eventually.js';
import { openNebulaTree } from '../support/opennebula.js';
import { connect } from '@nats-io/transport-node';
import { promisify } from 'node:util';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const data = mkdtempSync(join(tmpdir(), 'imgr-start-'));
// This test's clients log in with the credentials npm start created.
process.env['IMGR_CREDENTIALS_DIR'] = join(data, 'credentials');
let child: ChildProcess | undefined;

async function start(): Promise<{ url: string; output: string[] }> {
  const output: string[] = [];
  child = spawn(process.execPath, ['--unhandled-rejections=strict', '--import', 'tsx', 'src/start.ts'], {
    cwd: ROOT,
    env: { ...process.env, IMGR_DATA_DIR: data, IMGR_NATS_PORT: '0', IMGR_HTTP_PORT: '0', IMGR_METRICS_PORT: '0', IMGR_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const c = child;
  await new Promise<void>((resolve, reject) => {
    c.stdout?.on('data', (b: Buffer) => {
      output.push(b.toString());
      if (output.join('').includes('imgr ready')) resolve();
    });
    c.stderr?.on('data', (b: Buffer) => output.push(b.toString()));
    c.once('exit', (code) => reject(new Error(`start exited with ${String(code)}: ${output.join('')}`)));
  });
  const url = /NATS: +(nats:\/\/\S+)/.exec(output.join(''))?.[1];
  if (url === undefined) throw new Error(`no NATS address printed: ${output.join('')}`);
  return { url, output };
}

async function interrupt(): Promise<string> {
  const c = child;
  if (!c) return '';
  let out = '';
  c.stdout?.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<number | null>((r) => c.once('exit', r));
  c.kill('SIGINT');
  expect(await exited).toBe(0);
  child = undefined;
  return out;
}

afterAll(async () => {
  if (child) await interrupt();
  rmSync(data, { recursive: true, force: true });
});

describe('npm start', () => {
  it('runs the system, registers an image for real, stops on Ctrl-C and comes back with the same data', async () => {
    const first = await start();
    expect(first.output.join('')).toMatch(/datastores: +1 "default"/);
    const dashboard = /dashboard: +(http:\/\/\S+)/.exec(first.output.join(''))?.[1] ?? '';
    // One process, one set of operator endpoints for all its roles.
    const ops = /metrics: +(http:\/\/\S+)\/metrics/.exec(first.output.join(''))?.[1] ?? '';
    const readyz = await fetch(`${ops}/readyz`);
    expect(readyz.status).toBe(200);
    expect(await readyz.json()).toEqual({ ready: true, checks: { started: true, 'nats connection (manager)': true, 'nats connection (drivers)': true, 'nats connection (projections)': true, 'nats connection (api)': true } });
    expect(await (await fetch(`${ops}/metrics`)).text()).toMatch(/^imgr_commands_total\{source="public",type="datastore.create",status="accepted"\} [1-9]/m);
    expect((await fetch(dashboard)).headers.get('content-type')).toMatch(/text\/html/);
    const bytes = randomBytes(1024 * 1024);
    // Default datastores import only from the data directory's import folder.
    const file = join(data, 'import', 'disk.raw');
    writeFileSync(file, bytes);

    let c = await ImgrClient.connect({ servers: first.url, principal: 'oneadmin', actor: { uid: 0, gid: 0, name: 'oneadmin' } });
    await eventually(async () => (await c.datastore(1))?.monitoredAt !== null, 'default datastore monitored');
    expect(await c.datastore(2)).toMatchObject({ name: 'files', type: 'FILE_DS' });
    const id = await c.nextId('image');
    expect(await c.send({ type: 'image.allocate', imageId: id, datastoreId: 1, template: { NAME: 'first', PATH: file, SIZE: '1' } })).toMatchObject({ status: 'accepted', state: 'LOCKED' });
    const ready = await eventually(async () => {
      const v = await c.image(id);
      return v?.state === 'READY' ? v : undefined;
    }, 'image READY');
    expect(readFileSync(ready.source).equals(bytes)).toBe(true);
    // Anywhere else on the host is restricted for the default datastores: /tmp and the home folder included.
    const outside = join(tmpdir(), `imgr-outside-${process.pid}.raw`);
    writeFileSync(outside, bytes.subarray(0, 4096));
    const bad = await c.nextId('image');
    await c.send({ type: 'image.allocate', imageId: bad, datastoreId: 1, template: { NAME: 'outside', PATH: outside, SIZE: '1' } });
    const refused = await eventually(async () => {
      const v = await c.image(bad);
      return v?.state === 'ERROR' ? v : undefined;
    }, 'the copy from outside refused');
    expect(refused.error).toMatch(/Not allowed to copy image from .*check RESTRICTED_DIRS/);
    rmSync(outside, { force: true });
    await c.close();
    expect(await interrupt()).toContain('imgr stopped');

    const second = await start();
    c = await ImgrClient.connect({ servers: second.url, principal: 'oneadmin', actor: { uid: 0, gid: 0, name: 'oneadmin' } });
    expect(await c.image(id)).toEqual(ready);
    const names: string[] = [];
    for (const ds of [1, 2]) names.push((await c.datastore(ds))?.name ?? '');
    expect(names).toEqual(['default', 'files']);
    expect((await c.nextId('image')) > id).toBe(true);
    const api = /dashboard: +(http:\/\/\S+)/.exec(second.output.join(''))?.[1] ?? '';
    await eventually(async () => (await (await fetch(`${api}api/images/${id}`)).json() as { state?: string }).state === 'READY', 'the API serves the image');
    await c.close();
    expect(await interrupt()).toContain('imgr stopped');
  });

  it('credentials are generated, never the published defaults; `imgr principal add` makes a new service log in at once', async () => {
    const running = await start();
    expect(statSync(join(data, 'credentials', 'manager')).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(data, 'nats.conf'), 'utf8')).not.toMatch(/imgr-manager|imgr-service|imgr-dashboard/);
    await expect(connect({ servers: running.url, user: 'manager', pass: 'imgr-manager', maxReconnectAttempts: 0 })).rejects.toThrow();
    const cli = promisify(execFile);
    const added = await cli(process.execPath, ['--import', 'tsx', 'src/cli/imgr.ts', '--nats', running.url, 'principal', 'add', 'portal', '10', '100'], { cwd: ROOT, env: { ...process.env, IMGR_DATA_DIR: data } });
    expect(added.stdout).toMatch(/principal portal \(uid 10, gid 100\); password in .*portal; nats-server \d+ reloaded/);
    const portal = await eventually(() => ImgrClient.connect({ servers: running.url, principal: 'portal', actor: { uid: 10, gid: 100, name: 'portal' } }).catch(() => undefined), 'the reloaded server to admit portal');
    const id = await portal.nextId('image');
    const o = await portal.send({ type: 'image.allocate', imageId: id, datastoreId: 1, template: { NAME: 'portals', PATH: join(data, 'import', 'disk.raw'), SIZE: '1' } });
    expect(o).toMatchObject({ status: 'accepted' });
    await portal.close();
    expect(await interrupt()).toContain('imgr stopped');
  });

  it('reads imgr.json beside the data: an OpenNebula tree and a DS_MAD that runs from it, added to the bundled ones', async () => {
    const tree = openNebulaTree();
    const config = join(data, 'imgr.json');
    // One entry: the tree; its fs and dummy become one-fs and one-dummy.
    writeFileSync(config, JSON.stringify({ opennebula: { location: tree.location } }));
    try {
      const running = await start();
      const c = await ImgrClient.connect({ servers: running.url, principal: 'oneadmin', actor: { uid: 0, gid: 0, name: 'oneadmin' } });
      const id = await c.nextId('datastore');
      expect(await c.send({ type: 'datastore.create', datastoreId: id, template: { NAME: `one-dummy-${id}`, DS_MAD: 'one-dummy', TM_MAD: 'dummy' } })).toMatchObject({ status: 'accepted' });
      // OpenNebula's dummy monitor answered through npm start's driver host; the bundled fs still serves datastore 1.
      await eventually(async () => (await c.datastore(id))?.totalMb === 20480, 'monitored by OpenNebula\'s dummy');
      expect((await c.datastore(1))?.dsMad).toBe('fs');
      const unknown = await c.send({ type: 'datastore.create', datastoreId: await c.nextId('datastore'), template: { NAME: 'nope', DS_MAD: 'one-ceph', TM_MAD: 'shared' } });
      expect(unknown).toMatchObject({ status: 'rejected', code: 'DS_ERR_DS_MAD_UNKNOWN', message: 'DS_MAD named "one-ceph" is not defined in imgr\'s configuration (drivers.dsMads)' });
      await c.close();
      expect(await interrupt()).toContain('imgr stopped');
    } finally {
      rmSync(config, { force: true });
      tree.dispose();
    }
  });

  it('refuses to start on a configuration it cannot use, naming the file and the field', async () => {
    const config = join(data, 'imgr.json');
    writeFileSync(config, JSON.stringify({ opennebula: { location: '/opt/one', remotes: '/var/lib/one/remotes' } }));
    try {
      await expect(start()).rejects.toThrow(/imgr configuration \(.*imgr\.json\): opennebula: name exactly one of "location"/);
      child = undefined;
    } finally {
      rmSync(config, { force: true });
    }
  });
});
