/**
 * A local PATH is judged by the datastore's path policy (SAFE_DIRS,
 * RESTRICTED_DIRS, its real path) before anything looks at it: the driver
 * host refuses, with OpenNebula's check_restricted text, the STAT or CP of a
 * file outside the allowed folders before inspecting it, sizing it or handing
 * it to a driver, so nothing about it is revealed (whether it exists, what it
 * is, how big). Run as the driver host runs the bundled fs driver and
 * OpenNebula's own, unchanged. And the bundled cp copies the file it checked:
 * a link swapped between its check and its copy changes nothing.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DRIVERS_DIR, datastoreView, imageView, requestFor } from '../support/driver-request.js';
import { openNebulaTree } from '../support/opennebula.js';
import { runAction } from '../../src/driver-host/driver-host.js';
import { systemClock } from '../../src/platform/clock.js';
import type { DriverAction } from '../../src/messages/driver.js';

let dir: string;
let safe: string;
let outside: string;
let tree: ReturnType<typeof openNebulaTree>;

beforeAll(() => {
  tree = openNebulaTree();
  dir = mkdtempSync(join(tmpdir(), 'imgr-policy-'));
  safe = join(dir, 'import');
  outside = join(dir, 'outside');
  mkdirSync(safe);
  mkdirSync(outside);
  writeFileSync(join(safe, 'disk.raw'), Buffer.alloc(2 * 1024 * 1024, 1));
  writeFileSync(join(outside, 'secret'), 'the manager password');
  mkdirSync(join(outside, 'big-folder'));
  writeFileSync(join(outside, 'big-folder', 'f'), Buffer.alloc(3 * 1024 * 1024, 2));
  writeFileSync(join(outside, 'unreadable'), 'x');
  chmodSync(join(outside, 'unreadable'), 0);
  // A qcow2 backed by the secret: inspecting it would say so (what it is), which is already too much.
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', join(outside, 'secret'), join(outside, 'backed.qcow2'), '1M']);
  symlinkSync(join(outside, 'secret'), join(safe, 'link-to-secret'));
  symlinkSync(join(outside, 'big-folder'), join(safe, 'link-to-folder'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  tree.dispose();
});

const MADS = ['fs', 'one-fs'] as const;
const run = (mad: (typeof MADS)[number], action: DriverAction, path: string, template: Record<string, string> = {}) => {
  const ds = datastoreView(join(dir, `ds-${mad}`), { id: 100, dsMad: mad, template: { SAFE_DIRS: safe, RESTRICTED_DIRS: '/', ...template } });
  const req = requestFor(action, ds, imageView({ id: 9, path, size: 4, type: 'OS' }));
  return runAction(req, { driversDir: DRIVERS_DIR, opennebula: { location: tree.location, drivers: { 'one-fs': 'fs' } }, graceMs: 500, maxStdoutBytes: 65536 }, systemClock);
};
const refusal = (path: string): string => `Not allowed to copy image from ${path}, check RESTRICTED_DIRS in your datastore`;

describe.each(MADS)('the %s driver behind the driver host', (mad) => {
  it('STAT and CP of a file in SAFE_DIRS work', async () => {
    expect(await run(mad, 'STAT', join(safe, 'disk.raw'))).toMatchObject({ result: 'SUCCESS', info: '2' });
    const cp = await run(mad, 'CP', join(safe, 'disk.raw'));
    expect(cp.result, cp.info).toBe('SUCCESS');
  });

  // Each a different answer before: a size, "No such file", "Permission denied", an inspection's reasons, a du of the folder.
  const outsidePaths = (): Record<string, string> => ({
    'a readable file': join(outside, 'secret'),
    'a file that does not exist': join(outside, 'nothing-here'),
    'an unreadable file': join(outside, 'unreadable'),
    'a qcow2 naming another file': join(outside, 'backed.qcow2'),
    'a folder': join(outside, 'big-folder'),
    'a link in SAFE_DIRS to a file outside': join(safe, 'link-to-secret'),
    'a link in SAFE_DIRS to a folder outside': join(safe, 'link-to-folder'),
    'a path that leaves SAFE_DIRS by ..': `${safe}/../outside/secret`,
    'a file:// path': `file://${join(outside, 'secret')}`,
    'a SAFE_DIRS sibling with the same prefix': `${safe}2/disk.raw`,
  });
  it.each(['STAT', 'CP'] as const)('%s of anything outside gets one answer, check_restricted\'s, whatever it is', async (action) => {
    for (const [what, path] of Object.entries(outsidePaths())) {
      const r = await run(mad, action, path);
      // A file:// PATH is named as the local path it is (as the bundled cp names it).
      const named = path.replace(/^file:\/\//, '');
      expect({ what, ...r, logs: undefined, commandLine: undefined }).toEqual({ what, result: 'FAILURE', info: refusal(named), logs: undefined, commandLine: undefined });
      expect(r.logs, what).toEqual([]);
    }
  });

  it('a relative PATH (read from the driver\'s working folder) is refused the same way', async () => {
    for (const action of ['STAT', 'CP'] as const) expect(await run(mad, action, 'etc/datastore/datastore.conf')).toMatchObject({ result: 'FAILURE', info: refusal('etc/datastore/datastore.conf') });
  });

  it('RESTRICTED_DIRS entries are prefixes as OpenNebula reads them; SAFE_DIRS entries are whole folders', async () => {
    // SAFE_DIRS names the whole test folder; RESTRICTED_DIRS the "outside" prefix within it.
    const r = await run(mad, 'STAT', join(outside, 'secret'), { SAFE_DIRS: join(dir, 'import'), RESTRICTED_DIRS: join(dir, 'out') });
    expect(r).toMatchObject({ result: 'FAILURE', info: refusal(join(outside, 'secret')) });
    expect(await run(mad, 'STAT', join(safe, 'disk.raw'), { SAFE_DIRS: '', RESTRICTED_DIRS: join(dir, 'outside') })).toMatchObject({ result: 'SUCCESS' });
  });
});

describe("the bundled cp copies the file it checked", () => {
  it('a link swapped between the check and the copy changes nothing (copied: the file opened)', () => {
    const base = join(dir, 'race-ds');
    const link = join(safe, 'swapped');
    rmSync(link, { force: true });
    symlinkSync(join(safe, 'disk.raw'), link);
    // readlink, when the path check calls it on the PATH (or on what was opened), swaps the link to the secret as it returns: the race, made certain.
    const bin = join(dir, 'bin');
    mkdirSync(bin, { recursive: true });
    const real = execFileSync('bash', ['-c', 'command -v readlink'], { encoding: 'utf8' }).trim();
    writeFileSync(join(bin, 'readlink'), `#!/bin/bash\n${real} "$@"\nrc=$?\ncase "$*" in *${link}*|*/proc/self/fd/*) ln -sfn ${JSON.stringify(join(outside, 'secret'))} ${JSON.stringify(link)} ;; esac\nexit $rc\n`, { mode: 0o755 });
    const out = execFileSync(join(DRIVERS_DIR, 'fs', 'cp'), ['9'], {
      input: '',
      encoding: 'utf8',
      env: { ...process.env, PATH: `${bin}:${process.env['PATH'] ?? ''}`, IMGR_DS_BASE_PATH: base, IMGR_IMAGE_PATH: link, IMGR_REQUEST_ID: 'race', IMGR_DS_TEMPLATE_SAFE_DIRS: safe, IMGR_DS_TEMPLATE_RESTRICTED_DIRS: '/', IMGR_IMAGE_PATH_FORMAT: 'raw' },
    });
    const copied = out.trim().split(' ')[0] ?? '';
    expect(readdirSync(base)).toHaveLength(1);
    expect(readFileSync(copied).equals(readFileSync(join(safe, 'disk.raw')))).toBe(true);
    expect(readFileSync(copied, 'latin1')).not.toContain('the manager password');
  });

  it.each(['cp', 'stat'])('%s fails clearly if a URL ever reaches it (the driver host downloads and sizes URLs itself)', (script) => {
    let err = '';
    try {
      execFileSync(join(DRIVERS_DIR, 'fs', script), ['9'], { input: '', encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, IMGR_DS_BASE_PATH: join(dir, 'url-ds'), IMGR_IMAGE_PATH: 'http://127.0.0.1:9/disk' } });
    } catch (e) {
      err = (e as { stderr: string }).stderr;
    }
    expect(err).toMatch(/a URL reaches no driver, the driver host (downloads|sizes) it/);
  });
});
