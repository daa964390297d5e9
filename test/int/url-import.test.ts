/**
 * URL imports reach only what they may (issue 27, "No SSRF"): the driver host
 * downloads a PATH URL itself, checks every address before it connects (at
 * each redirect too) and hands the datastore's own cp (the real fs driver) a
 * staged local file. Real HTTP servers on loopback addresses play the
 * services a hostile URL would aim at; each counts the requests it got, so a
 * refusal is shown to happen before any connection.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { datastoreView, imageView, requestFor, DRIVERS_DIR } from '../support/driver-request.js';
import { runAction } from '../../src/driver-host/driver-host.js';
import { sweepStaging } from '../../src/driver-host/staging.js';
import { systemClock } from '../../src/platform/clock.js';
import type { DatastoreView } from '../../src/messages/datastore.js';
import type { ImageView } from '../../src/messages/image-record.js';
import type { DriverAction } from '../../src/messages/driver.js';

interface Site {
  readonly base: string;
  readonly hits: string[];
  readonly server: Server;
}

/** A server on `host` answering by `route`; every request is recorded in `hits`. */
async function site(host: string, route: (req: IncomingMessage, res: ServerResponse, base: string) => unknown): Promise<Site> {
  const hits: string[] = [];
  let base = '';
  const server = createServer((req, res) => {
    hits.push(`${req.method ?? '?'} ${req.url ?? ''}`);
    route(req, res, base);
  });
  await new Promise<void>((r) => server.listen(0, host, r));
  const a = server.address();
  base = `http://${host}:${typeof a === 'object' && a ? a.port : 0}`;
  return { base, hits, server };
}

const content = randomBytes(1024 * 1024 + 5);
let dir: string;
let ds: string;
let staging: string;
let files: Site;
/** Stands for a service the import must never reach (the API, metrics, metadata): on 127.0.0.2, not allowed by 127.0.0.1/32. */
let secret: Site;

const redirect = (res: ServerResponse, to: string): ServerResponse => res.writeHead(302, { location: to }).end();

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'imgr-url-'));
  ds = join(dir, 'ds');
  staging = join(dir, 'staging');
  secret = await site('127.0.0.2', (_q, res) => res.writeHead(200, { 'content-length': '6' }).end('secret'));
  files = await site('127.0.0.1', (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const hop = Number(url.searchParams.get('hop') ?? '0');
    switch (url.pathname) {
      case '/disk.raw':
        res.writeHead(200, { 'content-length': String(content.length) });
        return res.end(req.method === 'HEAD' ? undefined : content);
      case '/to-secret':
        return redirect(res, `${secret.base}/`);
      case '/to-metadata':
        return redirect(res, 'http://169.254.169.254/latest/meta-data/');
      case '/to-localhost':
        return redirect(res, `http://localhost:${new URL(secret.base).port}/`);
      case '/to-file':
        return redirect(res, 'file:///etc/passwd');
      case '/to-ftp':
        return redirect(res, 'ftp://127.0.0.1/disk.raw');
      case '/chain':
        // `hop` redirects, then the file.
        return redirect(res, hop > 1 ? `/chain?hop=${hop - 1}` : '/disk.raw');
      case '/endless':
        // More than a MiB at once, then nothing more and no end.
        res.writeHead(200);
        return res.write(Buffer.concat([content, content]));
      default:
        return res.writeHead(404).end();
    }
  });
});
afterAll(() => {
  files.server.closeAllConnections();
  files.server.close();
  secret.server.close();
  rmSync(dir, { recursive: true, force: true });
});

const ALLOW = 'IMGR_URL_ALLOWED_NETWORKS';
/** A fs datastore that imports only from a folder of its own, as the default ones do. */
const store = (allow?: string): DatastoreView => datastoreView(ds, { template: { RESTRICTED_DIRS: '/', SAFE_DIRS: join(dir, 'import'), ...(allow !== undefined ? { [ALLOW]: allow } : {}) } });
const run = (action: DriverAction, d: DatastoreView, image: ImageView, timeoutMs = 30_000) =>
  runAction(requestFor(action, d, image, { timeoutMs }), { driversDir: DRIVERS_DIR, graceMs: 500, maxStdoutBytes: 64 * 1024, stagingDir: staging }, systemClock);
const cp = (path: string, allow?: string, template: Record<string, string> = {}) => run('CP', store(allow), imageView({ path, template }));
const staged = (): string[] => readdirSync(staging);

describe('URL imports refuse the host and its networks', () => {
  it('a loopback URL is refused by default, before any connection', async () => {
    const before = files.hits.length;
    const r = await cp(`${files.base}/disk.raw`);
    expect(r).toMatchObject({ result: 'FAILURE' });
    expect(r.info).toBe(`Error downloading ${files.base}/disk.raw: 127.0.0.1 is a loopback address (the datastore's ${ALLOW} may allow it)`);
    expect(files.hits.length).toBe(before);
  });

  it('a name that resolves to loopback is refused as well', async () => {
    const r = await cp(`http://localhost:${new URL(files.base).port}/disk.raw`);
    expect(r.result).toBe('FAILURE');
    expect(r.info).toMatch(/^Error downloading http:\/\/localhost:\d+\/disk\.raw: localhost: (127\.0\.0\.1|::1) is a loopback address/);
  });

  it('https and IPv6 literals are checked the same way, before any connection', async () => {
    const port = new URL(files.base).port;
    const byName = await cp(`https://localhost:${port}/disk.raw`);
    expect(byName.info).toMatch(/^Error downloading https:\/\/localhost:\d+\/disk\.raw: localhost: (127\.0\.0\.1|::1) is a loopback address/);
    expect((await cp(`http://[::1]:${port}/disk.raw`)).info).toMatch(/: ::1 is a loopback address/);
    expect((await cp('http://169.254.169.254/latest/meta-data/')).info).toMatch(/: 169\.254\.169\.254 is a link-local address/);
    expect((await cp(`http://user:pw@127.0.0.1:${port}/disk.raw`, '127.0.0.0/8')).info).toMatch(/a URL with credentials is not downloaded/);
  });

  it('the IPv4-mapped form of a loopback address is refused', async () => {
    const r = await cp(`http://[::ffff:127.0.0.1]:${new URL(files.base).port}/disk.raw`);
    expect(r.result).toBe('FAILURE');
    expect(r.info).toMatch(/is a loopback address/);
  });

  it('allowed by the datastore (127.0.0.0/8), the file is imported through a staged copy, checksums checked, nothing left staged', async () => {
    const md5 = createHash('md5').update(content).digest('hex');
    const sha1 = createHash('sha1').update(content).digest('hex');
    const before = files.hits.length;
    const r = await cp(`${files.base}/disk.raw`, '127.0.0.0/8', { MD5: md5, SHA1: sha1 });
    expect(r.result, r.info).toBe('SUCCESS');
    const [source, format] = r.info.split(' ');
    expect(format).toBe('raw');
    expect(source?.startsWith(`${ds}/`)).toBe(true);
    expect(readFileSync(source ?? '').equals(content)).toBe(true);
    // One GET, imgr's: the driver did not reach the URL itself.
    expect(files.hits.slice(before)).toEqual(['GET /disk.raw']);
    expect(staged()).toEqual([]);
    expect(statSync(staging).mode & 0o777).toBe(0o700);
  });

  it('a checksum that does not match names the URL, and the staged bytes are removed', async () => {
    const r = await cp(`${files.base}/disk.raw`, '127.0.0.0/8', { MD5: '0'.repeat(32) });
    expect(r).toMatchObject({ result: 'FAILURE', info: `MD5 checksum of ${files.base}/disk.raw does not match` });
    expect(staged()).toEqual([]);
  });

  it('a redirect from an allowed server to a refused address is refused, and the refused one is never reached', async () => {
    const r = await cp(`${files.base}/to-secret`, '127.0.0.1/32');
    expect(r.result).toBe('FAILURE');
    expect(r.info).toBe(`Error downloading ${files.base}/to-secret: redirect refused: 127.0.0.2 is a loopback address (the datastore's ${ALLOW} may allow it)`);
    expect(secret.hits).toEqual([]);
    const m = await cp(`${files.base}/to-metadata`, '127.0.0.1/32');
    expect(m.info).toMatch(/redirect refused: 169\.254\.169\.254 is a link-local address/);
    await cp(`${files.base}/to-localhost`, '127.0.0.1/32');
    // localhost resolves to 127.0.0.1 (allowed) or ::1 (not): what it reaches is this server's port on 127.0.0.1 or nothing.
    expect(secret.hits).toEqual([]);
    expect(staged()).toEqual([]);
  });

  it('a redirect away from http(s) is refused', async () => {
    const f = await cp(`${files.base}/to-file`, '127.0.0.0/8');
    expect(f).toMatchObject({ result: 'FAILURE', info: `Error downloading ${files.base}/to-file: redirect refused: only http and https URLs are downloaded, not file` });
    const x = await cp(`${files.base}/to-ftp`, '127.0.0.0/8');
    expect(x).toMatchObject({ result: 'FAILURE', info: `Error downloading ${files.base}/to-ftp: redirect refused: only http and https URLs are downloaded, not ftp` });
  });

  it('five redirects are followed, a sixth is refused', async () => {
    expect((await cp(`${files.base}/chain?hop=5`, '127.0.0.0/8')).result).toBe('SUCCESS');
    const r = await cp(`${files.base}/chain?hop=6`, '127.0.0.0/8');
    expect(r).toMatchObject({ result: 'FAILURE', info: `Error downloading ${files.base}/chain?hop=6: more than 5 redirects` });
    expect(staged()).toEqual([]);
  });

  it('a body that never ends is cut at the deadline, nothing left staged', async () => {
    const r = await run('CP', store('127.0.0.0/8'), imageView({ path: `${files.base}/endless` }), 1500);
    expect(r.result).toBe('FAILURE');
    expect(r.info).toMatch(/^Error downloading .*\/endless: /);
    expect(staged()).toEqual([]);
  });

  it("a body longer than the image's SIZE is cut, nothing left staged", async () => {
    const r = await run('CP', store('127.0.0.0/8'), imageView({ path: `${files.base}/endless`, size: 1 }));
    expect(r.result).toBe('FAILURE');
    expect(r.info).toBe(`Error downloading ${files.base}/endless: ${files.base}/endless sent more than the 1048576 bytes the image was registered with`);
    expect(staged()).toEqual([]);
    // The whole file fits its SIZE.
    expect((await run('CP', store('127.0.0.0/8'), imageView({ path: `${files.base}/disk.raw`, size: 2 }))).result).toBe('SUCCESS');
  });

  it('no other scheme reaches a driver (whose own downloader could fetch it)', async () => {
    for (const path of ['ssh://127.0.0.1/etc/passwd', 's3://bucket/disk', 'ftp://127.0.0.1/disk.raw', 'gopher://127.0.0.1/x', 'docker://alpine']) {
      const scheme = path.split(':')[0] ?? '';
      expect(await cp(path, '127.0.0.0/8'), path).toMatchObject({ result: 'FAILURE', info: `Unsupported PATH scheme ${scheme}://: imgr copies local files and downloads http and https URLs` });
      expect(await run('STAT', store('127.0.0.0/8'), imageView({ path })), path).toMatchObject({ result: 'FAILURE', info: `Cannot determine size for ${path}: imgr copies local files and downloads http and https URLs` });
    }
  });

  it('an allowance that is not a list of networks is a failure naming the attribute', async () => {
    const r = await cp(`${files.base}/disk.raw`, 'everything');
    expect(r).toMatchObject({ result: 'FAILURE' });
    expect(r.info).toMatch(/IMGR_URL_ALLOWED_NETWORKS: "everything" is not an address or a network/);
  });

  it('STAT of a URL is a checked HEAD: refused for loopback by default, the size in MiB when allowed', async () => {
    const before = files.hits.length;
    const refused = await run('STAT', store(), imageView({ path: `${files.base}/disk.raw` }));
    expect(refused.result).toBe('FAILURE');
    expect(refused.info).toMatch(/^Cannot determine size for .*: 127\.0\.0\.1 is a loopback address/);
    expect(files.hits.length).toBe(before);
    const viaRedirect = await run('STAT', store('127.0.0.1/32'), imageView({ path: `${files.base}/to-secret` }));
    expect(viaRedirect.info).toMatch(/redirect refused: 127\.0\.0\.2 is a loopback address/);
    expect(secret.hits).toEqual([]);
    expect(await run('STAT', store('127.0.0.0/8'), imageView({ path: `${files.base}/disk.raw` }))).toMatchObject({ result: 'SUCCESS', info: '2' });
  });
});

describe('the staging folder', () => {
  it("a host's start removes what a dead host left staged, and nothing of a live one's", async () => {
    const dead = spawnSync('true').pid;
    for (const name of [`cp-${dead}-3-abc`, `cp-${process.ppid}-4-def`, `cp-${process.pid}-5-ghi`]) mkdirSync(join(staging, name), { recursive: true });
    expect(await sweepStaging({ stagingDir: staging })).toBe(1);
    expect(staged().sort()).toEqual([`cp-${process.pid}-5-ghi`, `cp-${process.ppid}-4-def`].sort());
    for (const name of staged()) rmSync(join(staging, name), { recursive: true });
  });
});
