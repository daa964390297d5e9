import { chmod, mkdir, mkdtemp, readdir, realpath, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import type { DriverRequest } from '../messages/wire.js';
import { RESTORE_STAGING_EXTRA } from '../messages/driver.js';
import type { Clock } from '../platform/clock.js';
import type { LogLine } from './reply.js';
import { AllowedNetworks, URL_ALLOW_ATTRIBUTE } from './address-policy.js';
import { FetchError, contentLength, downloadTo } from './fetch-url.js';

/**
 * What an action reads, made local before its script runs. A CP whose PATH is
 * an http(s) URL is downloaded here by imgr (fetch-url.ts refuses the host's
 * own and local networks) into a private staging folder of this driver host,
 * and the datastore's own `cp` then copies that local file, so every driver,
 * OpenNebula's included, keeps its contract and never touches the network for
 * a user's URL. The driver's `cp` accepts the staged file through a
 * per-request allowance: for this one action the folder is added to the
 * SAFE_DIRS of the document it reads, never to the datastore's template. A
 * restored disk's CP reads its restore's staging folder the same way.
 *
 * `localPath` is the one place where the file an action will open is known:
 * whatever checks a user-supplied file before a tool opens it reads it there.
 * The staged bytes are removed by `release`, whatever the action's outcome.
 */
export interface PreparedInput {
  readonly ok: true;
  /** The request the script sees (PATH local, SAFE_DIRS with the allowance). */
  readonly request: DriverRequest;
  /** The local file the action reads from the user, when it reads one. */
  readonly localPath: string | null;
  /** What imgr did before the script ran (the download), for the image's log. */
  readonly logs: readonly LogLine[];
  /** A text of the script's with the staged path shown as what the user gave. */
  shown(text: string): string;
  release(): Promise<void>;
}
export type Prepared = PreparedInput | { readonly ok: false; readonly failure: string };


const isUrl = (p: string): boolean => /^https?:\/\//i.test(p);
const localOf = (p: string): string | null => (p.startsWith('file://') ? p.slice('file://'.length) : p.startsWith('/') ? p : null);

export interface StagingOptions {
  /** This driver host's staging folder (created 0700); a private temporary one when absent. */
  readonly stagingDir?: string;
}

let fallbackRoot: Promise<string> | undefined;

/** The staging folder, 0700 whatever it was. */
async function stagingRoot(o: StagingOptions): Promise<string> {
  if (o.stagingDir === undefined) {
    fallbackRoot ??= mkdtemp(join(tmpdir(), 'imgr-staging-'));
    return fallbackRoot;
  }
  await mkdir(o.stagingDir, { recursive: true, mode: 0o700 });
  await chmod(o.stagingDir, 0o700);
  return o.stagingDir;
}

/** The request with `dir` added, for this action only, to the SAFE_DIRS its driver reads. */
export function withAllowance(req: DriverRequest, dir: string): DriverRequest {
  if (/\s/.test(dir)) throw new Error(`The staging folder ${JSON.stringify(dir)} has blanks; SAFE_DIRS cannot name it`);
  const safe = (req.datastore.template['SAFE_DIRS'] ?? '').trim();
  return { ...req, datastore: { ...req.datastore, template: { ...req.datastore.template, SAFE_DIRS: safe === '' ? dir : `${safe} ${dir}` } } };
}

const resolved = (p: string): Promise<string> => realpath(p).catch(() => p);

const nothingStaged = (request: DriverRequest, localPath: string | null): PreparedInput => ({ ok: true, request, localPath, logs: [], shown: (t) => t, release: () => Promise.resolve() });

/** The folder `dir` holds `file` (both resolved): a SAFE_DIRS entry counts for whole folders only. */
const holds = (dir: string, file: string): boolean => {
  const d = `${dir.replace(/\/+$/, '')}/`;
  return d === '/' || `${file.replace(/\/+$/, '')}/`.startsWith(d);
};

/**
 * The datastore's path policy, OpenNebula's `check_restricted` made the driver
 * host's, before anything looks at a local PATH (inspection, STAT's size, a
 * driver's cp): the real path (links resolved) must be in a SAFE_DIRS folder
 * or under no RESTRICTED_DIRS entry. A RESTRICTED_DIRS entry is a plain prefix
 * as OpenNebula's grep reads it (/etc refuses /etc2 too); the default when the
 * template names none is `/`, as the bundled fs driver's. The refusal is
 * check_restricted's text, whatever the file is or whether it exists, so
 * nothing about a file outside the allowed folders is revealed.
 */
export async function pathPolicyRefusal(req: DriverRequest, path: string, shown: string = path): Promise<string | null> {
  const real = await realpath(path).catch(async () => {
    // A file that does not exist is judged by the folder it would be in (readlink -f does the same).
    const parent = await realpath(dirname(path)).catch(() => resolve(dirname(path)));
    return join(parent, basename(path));
  });
  const words = (v: string | undefined, fallback: string): string[] => (v ?? fallback).split(/\s+/).filter((w) => w.startsWith('/'));
  const t = req.datastore.template;
  if (words(t['SAFE_DIRS'], '').some((d) => holds(d, real))) return null;
  if (words(t['RESTRICTED_DIRS'], '/').some((d) => real.startsWith(d))) return `Not allowed to copy image from ${shown}, check RESTRICTED_DIRS in your datastore`;
  return null;
}

/** The input of one action, made local and allowed (see above), its local PATH checked against the datastore's path policy. */
export async function prepareInput(req: DriverRequest, o: StagingOptions, clock: Clock): Promise<Prepared> {
  const p = await stageInput(req, o, clock);
  if (!p.ok || (req.action !== 'CP' && req.action !== 'STAT') || req.datastore.type === 'BACKUP_DS') return p;
  const path = p.request.image?.path ?? '';
  const local = localOf(path);
  // A relative PATH would be read from the driver's working directory (OpenNebula's var folder): never.
  const refusal = local === null ? (path === '' ? null : `Not allowed to copy image from ${path}, check RESTRICTED_DIRS in your datastore`) : await pathPolicyRefusal(p.request, local);
  if (refusal === null) return p;
  await p.release();
  return { ok: false, failure: p.shown(refusal) };
}

async function stageInput(req: DriverRequest, o: StagingOptions, clock: Clock): Promise<Prepared> {
  const { [RESTORE_STAGING_EXTRA]: restoreDir, ...extra } = req.extra;
  const image = req.image;
  if (req.action !== 'CP' || image === null) return nothingStaged(restoreDir === undefined ? req : { ...req, extra }, null);
  if (restoreDir !== undefined) {
    try {
      return nothingStaged(withAllowance({ ...req, extra }, await resolved(restoreDir)), localOf(image.path));
    } catch (e) {
      return { ok: false, failure: (e as Error).message };
    }
  }
  // Any other scheme would reach a driver's own downloader (OpenNebula's fetches ssh://, s3://, docker://…): refused here.
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(image.path)?.[1];
  if (scheme !== undefined && !isUrl(image.path) && scheme.toLowerCase() !== 'file') {
    return { ok: false, failure: `Unsupported PATH scheme ${scheme}://: imgr copies local files and downloads http and https URLs` };
  }
  if (!isUrl(image.path)) return nothingStaged(req, localOf(image.path));

  const url = image.path;
  let allowed: AllowedNetworks;
  try {
    allowed = AllowedNetworks.parse(req.datastore.template[URL_ALLOW_ATTRIBUTE]);
  } catch (e) {
    return { ok: false, failure: `Error downloading ${url}: ${(e as Error).message}` };
  }
  // Named after this process: a later host removes what a dead one left (sweepStaging).
  const dir = await mkdtemp(join(await stagingRoot(o), `cp-${process.pid}-${req.imageId}-`));
  const release = (): Promise<void> => rm(dir, { recursive: true, force: true });
  try {
    const file = join(await resolved(dir), 'image');
    // The image's SIZE (MB, from the STAT of the URL or the template) bounds what is staged.
    const maxBytes = image.size > 0 ? image.size * 1024 * 1024 : undefined;
    const got = await downloadTo(url, file, { allowed, signal: AbortSignal.timeout(Math.max(1, req.deadline - clock.now())), ...(maxBytes !== undefined ? { maxBytes } : {}) });
    const request = withAllowance({ ...req, image: { ...image, path: file } }, await resolved(dir));
    const from = got.url.href === url ? '' : `, from ${got.url.href}`;
    const logs: LogLine[] = [{ severity: 'I', text: `imgr: downloaded ${url} (${got.bytes} bytes${from})` }];
    return { ok: true, request, localPath: file, logs, shown: (t) => t.replaceAll(file, url), release };
  } catch (e) {
    await release();
    return { ok: false, failure: `Error downloading ${url}: ${e instanceof FetchError || e instanceof Error ? e.message : String(e)}` };
  }
}

/**
 * STAT of an http(s) PATH, answered by imgr (a checked HEAD, redirects
 * followed as for a download) instead of the driver, which would reach any
 * address: the size in MiB of its Content-Length, as the fs driver's STAT
 * answers. Null for every other request.
 */
export async function statOfUrl(req: DriverRequest, clock: Clock): Promise<{ result: 'SUCCESS' | 'FAILURE'; info: string } | null> {
  const url = req.image?.path ?? '';
  if (req.action !== 'STAT') return null;
  // As for a CP: no other scheme reaches a driver's downloader (a backup datastore's STAT reads its own).
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(url)?.[1];
  if (scheme !== undefined && !isUrl(url) && scheme.toLowerCase() !== 'file' && req.datastore.type !== 'BACKUP_DS') {
    return { result: 'FAILURE', info: `Cannot determine size for ${url}: imgr copies local files and downloads http and https URLs` };
  }
  if (!isUrl(url)) return null;
  try {
    const allowed = AllowedNetworks.parse(req.datastore.template[URL_ALLOW_ATTRIBUTE]);
    const bytes = await contentLength(url, { allowed, signal: AbortSignal.timeout(Math.max(1, req.deadline - clock.now())) });
    if (bytes === null) return { result: 'FAILURE', info: `Cannot determine size for ${url}` };
    return { result: 'SUCCESS', info: String(Math.ceil(bytes / 1048576)) };
  } catch (e) {
    return { result: 'FAILURE', info: `Cannot determine size for ${url}: ${(e as Error).message}` };
  }
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
};

/**
 * Removes what a driver host that died mid-download left in the staging
 * folder: the folders of processes no longer running (a live host sharing
 * the folder keeps its own). Returns how many were removed.
 */
export async function sweepStaging(o: StagingOptions): Promise<number> {
  if (o.stagingDir === undefined) return 0;
  const root = await stagingRoot(o);
  let removed = 0;
  for (const name of await readdir(root)) {
    const pid = Number(/^cp-(\d+)-/.exec(name)?.[1] ?? NaN);
    if (Number.isInteger(pid) && pid !== process.pid && !alive(pid)) {
      await rm(join(root, name), { recursive: true, force: true });
      removed += 1;
    }
  }
  return removed;
}
