/**
 * The fs and dummy drivers against real files and real qemu-img, run the way
 * the driver host runs them.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { act, datastoreView, imageView, requestFor, DRIVERS_DIR } from '../support/driver-request.js';
import { actionDocument, actionEnvironment } from '../../src/driver-host/document.js';

let dir: string;
let base: string;
let server: Server;
let url: string;
const content = randomBytes(3 * 1024 * 1024 + 17);

/** A datastore whose URL imports may reach this test's server on loopback (refused by default). */
const web = () => datastoreView(base, { template: { ...datastoreView(base).template, IMGR_URL_ALLOWED_NETWORKS: '127.0.0.1/32' } });

const qemu = (...args: string[]) => execFileSync('qemu-img', args, { encoding: 'utf8' });
const info = (f: string) => JSON.parse(qemu('info', '--output=json', f)) as { format: string; 'virtual-size': number; snapshots?: { name: string }[] };

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'imgr-fs-'));
  base = join(dir, 'ds', '100');
  writeFileSync(join(dir, 'disk.raw'), content);
  server = createServer((req, res) => {
    if (req.url === '/disk.raw') {
      res.writeHead(200, { 'content-length': String(content.length) });
      res.end(req.method === 'HEAD' ? undefined : content);
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}/disk.raw`;
});
afterAll(() => {
  server.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('fs: CP', () => {
  it('copies a local file byte for byte and reports its format', async () => {
    const r = await act('CP', datastoreView(base), imageView({ path: join(dir, 'disk.raw') }));
    expect(r.result).toBe('SUCCESS');
    const [source, format] = r.info.split(' ');
    expect(format).toBe('raw');
    expect(source?.startsWith(`${base}/`)).toBe(true);
    expect(readFileSync(source ?? '').equals(content)).toBe(true);
    // Images are not world-readable: 0640 files in a 0750 datastore folder.
    expect(statSync(source ?? '').mode & 0o777).toBe(0o640);
  });

  it('creates a missing datastore folder 0750', async () => {
    const fresh = join(dir, 'fresh-ds');
    const r = await act('MKFS', datastoreView(fresh), imageView({ size: 1, format: 'raw' }));
    expect(r.result, r.info).toBe('SUCCESS');
    expect(statSync(fresh).mode & 0o777).toBe(0o750);
    expect(statSync(r.info).mode & 0o777).toBe(0o640);
  });
  it('downloads an http URL and checks MD5 and SHA1', async () => {
    const md5 = createHash('md5').update(content).digest('hex');
    const sha1 = createHash('sha1').update(content).digest('hex');
    const r = await act('CP', web(), imageView({ path: url, template: { MD5: md5, SHA1: sha1 } }));
    expect(r.result).toBe('SUCCESS');
    expect(readFileSync(r.info.split(' ')[0] ?? '').equals(content)).toBe(true);
  });
  it('refuses a wrong checksum and leaves no file behind', async () => {
    const before = readdirSync(base).length;
    const r = await act('CP', web(), imageView({ path: url, template: { MD5: '0'.repeat(32) } }));
    expect(r).toMatchObject({ result: 'FAILURE', info: `MD5 checksum of ${url} does not match` });
    expect(readdirSync(base)).toHaveLength(before);
  });
  it('detects qcow2', async () => {
    const q = join(dir, 'disk.qcow2');
    qemu('create', '-q', '-f', 'qcow2', q, '16M');
    const r = await act('CP', datastoreView(base), imageView({ path: `file://${q}` }));
    expect(r.info.split(' ')[1]).toBe('qcow2');
  });
  it('refuses paths from restricted directories', async () => {
    const r = await act('CP', datastoreView(base, { template: { RESTRICTED_DIRS: '/', SAFE_DIRS: '/var/tmp' } }), imageView({ path: join(dir, 'disk.raw') }));
    expect(r).toMatchObject({ result: 'FAILURE', info: `Not allowed to copy image from ${join(dir, 'disk.raw')}, check RESTRICTED_DIRS in your datastore` });
  });
  it('a missing file and a failed download are failures with a reason', async () => {
    expect(await act('CP', datastoreView(base), imageView({ path: join(dir, 'nope') }))).toMatchObject({ result: 'FAILURE', info: `Cannot access ${join(dir, 'nope')}: no such readable file` });
    expect(await act('CP', web(), imageView({ path: url.replace('disk.raw', 'missing') }))).toMatchObject({ result: 'FAILURE' });
  });
});

describe('fs: MKFS, CLONE, STAT, MONITOR, RM', () => {
  it('MKFS creates an empty qcow2 of SIZE MB', async () => {
    const r = await act('MKFS', datastoreView(base), imageView({ format: 'qcow2', size: 64 }));
    expect(r.result).toBe('SUCCESS');
    expect(info(r.info)).toMatchObject({ format: 'qcow2', 'virtual-size': 64 * 1024 * 1024 });
  });
  it('MKFS with FS=ext4 makes a filesystem', async () => {
    const r = await act('MKFS', datastoreView(base), imageView({ format: 'raw', size: 16, fs: 'ext4' }));
    expect(r.result).toBe('SUCCESS');
    expect(execFileSync('file', ['-b', r.info], { encoding: 'utf8' })).toMatch(/ext4 filesystem/);
  });
  it('MKFS for save-as only reserves a path', async () => {
    const r = await act('MKFS', datastoreView(base), imageView({ format: 'save_as', size: 16 }));
    expect(r.result).toBe('SUCCESS');
    expect(existsSync(r.info)).toBe(false);
  });
  it('MKFS refuses an unknown filesystem', async () => {
    expect(await act('MKFS', datastoreView(base), imageView({ size: 1, fs: 'ntfs' }))).toMatchObject({ result: 'FAILURE', info: 'Unsupported file system type ntfs' });
  });
  it('CLONE copies the origin, converting to the datastore DRIVER', async () => {
    const origin = (await act('CP', datastoreView(base), imageView({ path: join(dir, 'disk.raw') }))).info.split(' ')[0] ?? '';
    const plain = await act('CLONE', datastoreView(base), imageView({ path: origin }));
    expect(readFileSync(plain.info).equals(content)).toBe(true);
    const q = await act('CLONE', datastoreView(base, { template: { DRIVER: 'qcow2' } }), imageView({ path: origin }));
    const [src, fmt] = q.info.split(' ');
    expect(fmt).toBe('qcow2');
    expect(info(src ?? '').format).toBe('qcow2');
  });
  it('STAT gives MiB rounded up for files and URLs', async () => {
    expect(await act('STAT', datastoreView(base), imageView({ path: join(dir, 'disk.raw') }))).toMatchObject({ result: 'SUCCESS', info: '4' });
    expect(await act('STAT', web(), imageView({ path: url }))).toMatchObject({ result: 'SUCCESS', info: '4' });
  });
  it('MONITOR reports the filesystem of BASE_PATH', async () => {
    const r = await act('MONITOR', datastoreView(base), null);
    const text = Buffer.from(r.info, 'base64').toString();
    expect(text).toMatch(/^USED_MB=\d+\nTOTAL_MB=\d+\nFREE_MB=\d+\n$/);
  });
  it('RM removes the file; W40: a file already gone is success; a source outside the datastore is refused', async () => {
    const src = (await act('CP', datastoreView(base), imageView({ path: join(dir, 'disk.raw') }))).info.split(' ')[0] ?? '';
    expect((await act('RM', datastoreView(base), imageView({ source: src }))).result).toBe('SUCCESS');
    expect(existsSync(src)).toBe(false);
    expect((await act('RM', datastoreView(base), imageView({ source: src }))).result).toBe('SUCCESS');
    expect(await act('RM', datastoreView(base), imageView({ source: '/etc/passwd' }))).toMatchObject({ result: 'FAILURE', info: 'Bad formed or unavailable Image source: /etc/passwd' });
  });
});

describe('fs: qcow2 snapshots', () => {
  const withSnapshots = async (): Promise<string> => {
    const src = (await act('MKFS', datastoreView(base), imageView({ format: 'qcow2', size: 8 }))).info;
    execFileSync('qemu-io', ['-c', 'write -P 0x11 0 64k', src]);
    qemu('snapshot', '-c', '0', src);
    execFileSync('qemu-io', ['-c', 'write -P 0x22 0 64k', src]);
    qemu('snapshot', '-c', '1', src);
    execFileSync('qemu-io', ['-c', 'write -P 0x33 0 64k', src]);
    return src;
  };
  // `read -v` prints "00000000:  33  3": the hex of the first byte is the second field.
  const firstByte = (src: string) => execFileSync('qemu-io', ['-c', 'read -v 0 1', src], { encoding: 'utf8' }).split(/\s+/)[1];

  it('SNAP_REVERT really reverts the content', async () => {
    const src = await withSnapshots();
    expect(firstByte(src)).toBe('33');
    expect((await act('SNAP_REVERT', datastoreView(base), imageView({ source: src, targetSnapshot: 0 }))).result).toBe('SUCCESS');
    expect(firstByte(src)).toBe('11');
  });
  it('SNAP_DELETE removes one snapshot', async () => {
    const src = await withSnapshots();
    expect((await act('SNAP_DELETE', datastoreView(base), imageView({ source: src, targetSnapshot: 0 }))).result).toBe('SUCCESS');
    expect(info(src).snapshots?.map((s) => s.name)).toEqual(['1']);
  });
  it('SNAP_FLATTEN keeps the snapshot content, drops all snapshots and reports the size (W29)', async () => {
    const src = await withSnapshots();
    const r = await act('SNAP_FLATTEN', datastoreView(base), imageView({ source: src, targetSnapshot: 1 }));
    expect(r).toMatchObject({ result: 'SUCCESS', info: '8' });
    expect(firstByte(src)).toBe('22');
    expect(info(src).snapshots ?? []).toEqual([]);
  });
  it('a snapshot that does not exist is a failure', async () => {
    const src = await withSnapshots();
    expect(await act('SNAP_DELETE', datastoreView(base), imageView({ source: src, targetSnapshot: 9 }))).toMatchObject({ result: 'FAILURE', info: `Cannot delete snapshot 9 of ${src}` });
  });
});

describe('dummy', () => {
  it('answers like OpenNebula\'s dummy driver', async () => {
    const ds = datastoreView(base, { dsMad: 'dummy' });
    expect(await act('CP', ds, imageView())).toMatchObject({ result: 'SUCCESS', info: 'dummy_path dummy_format' });
    expect(await act('MKFS', ds, imageView())).toMatchObject({ result: 'SUCCESS', info: 'dummy_path' });
    expect(await act('RM', ds, imageView())).toMatchObject({ result: 'SUCCESS', info: '' });
    expect(Buffer.from((await act('MONITOR', ds, null)).info, 'base64').toString()).toBe('USED_MB=9720\nTOTAL_MB=20480\nFREE_MB=20480\n');
    expect(await act('INCREMENT_FLATTEN', ds, imageView())).toMatchObject({ result: 'FAILURE' });
  });
});

describe('fs: a request run again', () => {
  it('writes the file of its first run, not a second one (a driver host died after the copy, before the reply)', async () => {
    const req = { image: imageView({ path: join(dir, 'disk.raw') }), requestId: 'again-1' };
    const first = await act('CP', datastoreView(base), req.image, { requestId: req.requestId });
    const files = readdirSync(base).length;
    const second = await act('CP', datastoreView(base), req.image, { requestId: req.requestId });
    expect(second).toEqual(first);
    expect(readdirSync(base)).toHaveLength(files);
    const other = await act('CP', datastoreView(base), req.image);
    expect(other.info).not.toBe(first.info);
  });
});

describe('fs: a copy whose driver host died', () => {
  it('removes the file it made once it finds its output gone (SIGPIPE): nobody would own it', async () => {
    const lonely = join(dir, 'ds-lonely');
    const req = { ...requestFor('CP', datastoreView(lonely), imageView({ path: join(dir, 'disk.raw') })), requestId: 'host-died' };
    const child = spawn(join(DRIVERS_DIR, 'fs', 'cp'), ['7'], { detached: true, stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...actionEnvironment(req) } });
    // What the kernel does to a SIGKILLed host's pipes: the script's stdout and stderr have no reader any more.
    child.stdout.destroy();
    child.stderr.destroy();
    child.stdin.end(Buffer.from(actionDocument(req), 'utf8').toString('base64'));
    const signal = await new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, s) => resolve(s)));
    expect(signal === 'SIGPIPE' || child.exitCode !== 0).toBe(true);
    expect(existsSync(lonely) ? readdirSync(lonely) : []).toEqual([]);
  });
});
