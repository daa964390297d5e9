/**
 * The README's tour, step by step, with the real CLI (bin/imgr) against a
 * system started by the same code as `npm start`.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../support/eventually.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BIN = join(ROOT, 'bin', 'imgr');
const data = mkdtempSync(join(tmpdir(), 'imgr-tour-'));
// The tour's own import folder: default datastores import from nowhere else.
const disk = join(data, 'import', 'disk.raw');
const bytes = randomBytes(1024 * 1024);
let system: ChildProcess;
let nats = '';
let dashboard = '';
let http: Server;
let url = '';

async function imgr(...args: string[]): Promise<string> {
  // The CLI logs in with the credentials of the system's data directory, as on an operator's machine.
  const { stdout } = await promisify(execFile)(BIN, ['--nats', nats, ...args], { cwd: data, encoding: 'utf8', env: { ...process.env, IMGR_DATA_DIR: data } });
  return stdout;
}
const idIn = (out: string): number => Number(/(?:image|datastore) (\d+)/.exec(out)?.[1] ?? NaN);

beforeAll(async () => {
  mkdirSync(join(data, 'import'), { recursive: true });
  writeFileSync(disk, bytes);
  // Left open by an earlier version: the start closes them.
  chmodSync(data, 0o755);
  writeFileSync(join(data, 'imgr.log'), '', { mode: 0o644 });
  chmodSync(join(data, 'imgr.log'), 0o644);
  http = createServer((_q, r) => r.writeHead(200, { 'content-length': String(bytes.length) }).end(bytes));
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  const a = http.address();
  url = `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}/disk.raw`;
  system = spawn(process.execPath, ['--unhandled-rejections=strict', '--import', 'tsx', 'src/start.ts'], {
    cwd: ROOT,
    // The tour's URL is this test's server on loopback, which imgr refuses unless the datastore allows it.
    env: { ...process.env, IMGR_DATA_DIR: data, IMGR_NATS_PORT: '0', IMGR_HTTP_PORT: '0', IMGR_METRICS_PORT: '0', IMGR_LOG_LEVEL: 'warn', IMGR_URL_ALLOWED_NETWORKS: '127.0.0.1/32' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  await new Promise<void>((resolve, reject) => {
    system.stdout?.on('data', (b: Buffer) => {
      out += b.toString();
      if (out.includes('imgr ready')) resolve();
    });
    system.once('exit', (code) => reject(new Error(`start exited with ${String(code)}: ${out}`)));
  });
  nats = /NATS: +(nats:\/\/\S+)/.exec(out)?.[1] ?? '';
  dashboard = /dashboard: +(http:\/\/\S+)/.exec(out)?.[1] ?? '';
});

afterAll(async () => {
  const exited = new Promise((r) => system.once('exit', r));
  system.kill('SIGINT');
  await exited;
  http.close();
  rmSync(data, { recursive: true, force: true });
});

describe('the README tour', () => {
  it("keeps its data to itself: <data> 0700 and every file in it 0600, an earlier start's looser modes included", () => {
    expect(statSync(data).mode & 0o777).toBe(0o700);
    const files = readdirSync(data, { withFileTypes: true }).filter((e) => e.isFile()).map((e) => e.name);
    expect(files).toEqual(expect.arrayContaining(['imgr.log', 'principals.json', 'nats.conf', 'nats.pid']));
    for (const f of files) expect(statSync(join(data, f)).mode & 0o777, f).toBe(0o600);
  });

  it('datastores, registration from a file and a URL, clone, VMs, backup, restore, dashboard, audit', async () => {
    expect(await imgr('datastore', 'list')).toMatch(/default/);
    const backups = idIn(await imgr('datastore', 'create', '--name', 'backups', '--type', 'BACKUP_DS', '--ds-mad', 'restic', 'RESTIC_PASSWORD=tour-secret'));

    const fromFile = idIn(await imgr('image', 'create', '--datastore', '1', '--name', 'disk', '--path', disk, '--wait'));
    expect(await imgr('image', 'show', String(fromFile))).toMatch(/STATE\s+READY/);
    const fromUrl = idIn(await imgr('image', 'create', '--datastore', '1', '--name', 'web', '--path', url, '--wait'));
    const copy = idIn(await imgr('image', 'clone', String(fromFile), 'disk-copy', '--wait'));
    expect(await imgr('image', 'list', '--state', 'READY')).toMatch(/disk-copy/);

    expect(await imgr('image', 'acquire', String(fromUrl), '--vm', '7')).toBe(`image ${fromUrl}: USED\n`);
    expect(await imgr('image', 'release', String(fromUrl), '--vm', '7')).toBe(`image ${fromUrl}: READY\n`);

    const backup = /backup image (\d+)/.exec(await imgr('image', 'backup', String(copy), '--datastore', String(backups), '--vm', '7', '--wait'))?.[1] ?? '';
    expect(backup).not.toBe('');
    await imgr('image', 'restore', backup, '--datastore', '1', '--name', 'restored');
    const restored = await eventually(async () => {
      const list = JSON.parse(await imgr('image', 'list', '--name', 'restored', '--json')) as { items: { id: number; state: string; source: string }[] };
      return list.items.find((i) => i.state === 'READY');
    }, 'restored image READY');
    expect(readFileSync(restored.source).equals(bytes)).toBe(true);

    const api = (await (await fetch(`${dashboard}api/images?limit=100`)).json()) as { items: { name: string }[] };
    expect(api.items.map((i) => i.name)).toEqual(expect.arrayContaining(['disk', 'web', 'disk-copy', 'restored-disk-0']));
    expect((await fetch(dashboard)).status).toBe(200);
    expect(await imgr('history', 'image', String(copy))).toMatch(/image\.backupRequested/);
    expect(await imgr('audit', 'verify')).toMatch(/^log intact/);
  });
});
