/**
 * Images are data, never references (#27): crafted files that name a secret
 * (a qcow2 backing file, a qcow2 external data file, a VMDK descriptor) or
 * lie about their format (a raw file declared qcow2, a qcow2 declared raw),
 * through every action of imgr's bundled drivers that reads an image, run
 * the way the driver host runs them (real qemu-img, rsync, restic). Each is
 * refused with the file and the reason, and no byte of the secret, nor a
 * reference to it, reaches any image or any datastore.
 * OpenNebula's own fs driver, wherever imgr hands it a file, is in
 * crafted-images-opennebula.test.ts.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { act, datastoreView, imageView } from '../support/driver-request.js';
import { craft, leaks, makeSecret, plant, refusalOf, type Crafted, type Secret } from '../support/crafted-images.js';
import type { Increment } from '../../src/messages/image-record.js';
import { requestFor, DRIVERS_DIR } from '../support/driver-request.js';
import { actionDocument, actionEnvironment } from '../../src/driver-host/document.js';
import { runScript } from '../../src/driver-host/run.js';
import { inspectFile } from '../../src/inspect/index.js';
import type { DriverAction } from '../../src/messages/driver.js';
import type { DatastoreView } from '../../src/messages/datastore.js';
import type { ImageView } from '../../src/messages/image-record.js';

let dir: string;
let secret: Secret;
let crafted: Crafted[];
let base: string;
const RESTIC_PASSWORD = 'correct horse battery staple';

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'imgr-crafted-'));
  mkdirSync(join(dir, 'in'));
  secret = makeSecret(dir);
  crafted = craft(join(dir, 'in'), secret);
  expect(readFileSync(secret.file, 'utf8').startsWith(secret.marker)).toBe(true);
  base = join(dir, 'ds', '100');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const fsDs = (template: Record<string, string> = {}) => datastoreView(base, { template: { SAFE_DIRS: join(dir, 'in'), RESTRICTED_DIRS: '/', ...template } });
/** Crafted files the tests put in a datastore themselves (an image's SOURCE a VM wrote, a backup made behind imgr's back). */
const placed = new Set<string>();
const placedAt = (c: Crafted, to: string): string => (placed.add(to), plant(c, to));
/** Where images could have been written: the datastores (and their restore staging folders). */
const noLeak = () => expect(leaks(secret, [join(dir, 'ds')], placed)).toEqual([]);
const cases = (): Crafted[] => crafted;
const NAMES = ['qcow2 backing file to a secret', 'qcow2 external data file', 'VMDK descriptor naming a secret', 'raw file declared qcow2', 'qcow2 declared raw'];
const byName = (n: string): Crafted => {
  const c = cases().find((x) => x.name === n);
  if (!c) throw new Error(n);
  return c;
};
/** The kinds that are references (a CP's PATH has no declared format: W22 clears a PATH's FORMAT). */
const REFERENCES = NAMES.slice(0, 3);

describe('fs: a PATH (CP, STAT)', () => {
  for (const n of REFERENCES) {
    it(`CP refuses a ${n}`, async () => {
      const c = byName(n);
      for (const template of [{}, { DRIVER: 'qcow2' }]) {
        const r = await act('CP', fsDs(template), imageView({ path: c.file }));
        expect(r.result).toBe('FAILURE');
        expect(r.info).toMatch(refusalOf(c.file, c));
      }
      noLeak();
    });
  }
  for (const n of NAMES) {
    it(`STAT refuses a ${n} (the template declares its FORMAT)`, async () => {
      const c = byName(n);
      const r = await act('STAT', fsDs(), imageView({ path: c.file, template: { FORMAT: c.declared } }));
      expect(r.result).toBe('FAILURE');
      expect(r.info).toMatch(refusalOf(c.file, c));
    });
  }
  it('the same files as file:// URLs are refused too', async () => {
    const c = byName('qcow2 backing file to a secret');
    const r = await act('CP', fsDs(), imageView({ path: `file://${c.file}` }));
    expect(r.info).toMatch(refusalOf(c.file, c));
  });
});

describe('fs: an image SOURCE a VM could have written (CLONE, SNAP_FLATTEN, SNAP_REVERT, SNAP_DELETE)', () => {
  let n = 0;
  /** A crafted file as the SOURCE of an image of the datastore, recorded in its declared format. */
  const source = (c: Crafted): string => {
    mkdirSync(base, { recursive: true });
    return placedAt(c, join(base, `planted${++n}`));
  };
  for (const name of NAMES) {
    it(`CLONE, plain and converting to the datastore's DRIVER, refuses a ${name}`, async () => {
      const c = byName(name);
      const src = source(c);
      for (const template of [{}, { DRIVER: 'qcow2' }, { DRIVER: 'raw' }]) {
        const r = await act('CLONE', fsDs(template), imageView({ path: src, format: c.declared }));
        expect(r.result).toBe('FAILURE');
        expect(r.info).toMatch(refusalOf(src, c));
      }
      noLeak();
    });
    it(`SNAP_FLATTEN, SNAP_REVERT and SNAP_DELETE refuse a ${name}`, async () => {
      const c = byName(name);
      const src = source(c);
      const before = readFileSync(src);
      for (const action of ['SNAP_FLATTEN', 'SNAP_REVERT', 'SNAP_DELETE'] as const) {
        const r = await act(action, fsDs(), imageView({ source: src, format: c.declared, targetSnapshot: 0, state: 'LOCKED' }));
        expect(r.result).toBe('FAILURE');
        expect(r.info).toMatch(refusalOf(src, c));
      }
      expect(readFileSync(src).equals(before)).toBe(true);
      noLeak();
    });
  }
  it('a target snapshot in <SOURCE>.snap that names a secret is refused too', async () => {
    const src = source(byName('qcow2 declared raw'));
    mkdirSync(`${src}.snap`);
    const c = byName('qcow2 backing file to a secret');
    const snap = placedAt(c, `${src}.snap/0`);
    const r = await act('SNAP_FLATTEN', fsDs(), imageView({ source: src, format: 'qcow2', targetSnapshot: 0 }));
    expect(r.info).toMatch(refusalOf(snap, c));
    noLeak();
  });
});

describe('what an action made is inspected when it lands', () => {
  /**
   * A driver whose copy is not what the host inspected (the PATH was swapped
   * after its check, or the driver fetched something itself): it puts the
   * datastore template's SWAP_IN in the datastore and reports REPORT.
   */
  const swapping = (): string => {
    const drivers = join(dir, 'swap-drivers');
    mkdirSync(join(drivers, 'swap'), { recursive: true });
    const script = ['#!/usr/bin/env bash', 'cat >/dev/null', 'dst="$IMGR_DS_BASE_PATH/swapped-$IMGR_REQUEST_ID"', 'mkdir -p "$IMGR_DS_BASE_PATH"', 'cp -- "$IMGR_DS_TEMPLATE_SWAP_IN" "$dst"', 'echo "$dst $IMGR_DS_TEMPLATE_REPORT"', ''].join('\n');
    for (const a of ['cp', 'clone']) writeFileSync(join(drivers, 'swap', a), script, { mode: 0o755 });
    return drivers;
  };
  const clean = (): string => {
    const f = join(dir, 'in', 'clean.raw');
    writeFileSync(f, Buffer.alloc(4096, 1));
    return f;
  };
  for (const name of NAMES) {
    it(`a CP and a CLONE whose result is a ${name}: FAILURE naming the new file, which is removed`, async () => {
      const c = byName(name);
      const ds = datastoreView(base, { dsMad: 'swap', template: { SWAP_IN: c.file, REPORT: c.declared, SAFE_DIRS: join(dir, 'in') } });
      for (const action of ['CP', 'CLONE'] as const) {
        const r = await act(action, ds, imageView({ path: clean(), format: 'raw' }), { driversDir: swapping() });
        expect(r.result).toBe('FAILURE');
        const made = /^Image (\S+) refused/.exec(r.info)?.[1] ?? '';
        expect(made.startsWith(`${base}/swapped-`), r.info).toBe(true);
        expect(r.info).toMatch(refusalOf(made, c));
        expect(existsSync(made)).toBe(false);
      }
      noLeak();
    });
  }
});

const backupDrivers = [
  { mad: 'rsync', template: { RSYNC_HOST: 'localhost' } },
  { mad: 'restic', template: { RESTIC_PASSWORD } },
] as const;

for (const d of backupDrivers) {
  describe(`${d.mad}: BACKUP of a crafted disk, RESTORE of a crafted backup`, () => {
    const bds = () => datastoreView(join(dir, 'ds', d.mad), { id: 300, dsMad: d.mad, type: 'BACKUP_DS', template: { ...d.template } });
    for (const name of NAMES) {
      it(`BACKUP refuses a ${name}`, async () => {
        const c = byName(name);
        const r = await act('BACKUP', bds(), imageView({ id: 11, source: c.file, format: c.declared, state: 'READY' }), {
          extra: { DISK_SOURCE: c.file, DISK_FORMAT: c.declared, VM_ID: '4', BACKUP_IMAGE_ID: '12', CHAIN: 'NO', MODE: 'FULL' },
        });
        expect(r.result).toBe('FAILURE');
        expect(r.info).toMatch(refusalOf(c.file, c));
        noLeak();
      });
    }
    for (const name of REFERENCES) {
      it(`RESTORE of a backup that holds a ${name} (made behind imgr's back) is refused and its staged disk removed`, async () => {
        const c = byName(name);
        const id = storeBackup(d.mad, bds().basePath, c.file);
        const image = imageView({
          id: 12,
          type: 'BACKUP',
          vms: [4],
          state: 'READY',
          source: id,
          increments: [{ id: 0, type: 'FULL', parentId: -1, source: id, size: 1, date: 0 } satisfies Increment],
        });
        const r = await act('RESTORE', bds(), image, { extra: { DESTINATION_DS_ID: '1', USERNAME: 'oneadmin' } });
        expect(r.result).toBe('FAILURE');
        expect(r.info).toMatch(new RegExp(`^Image ${join(bds().basePath, '.restore').replace(/[.]/g, '\\.')}/.*/disk\\.0 refused: .*${c.reason.source}`));
        const staged = join(bds().basePath, '.restore');
        expect(readdirSync(staged).flatMap((x) => readdirSync(join(staged, x)))).toEqual([]);
        noLeak();
      });
    }
  });
}

/** A backup holding `file` as disk.0, written straight into the backend (as a compromised or older imgr might have). */
function storeBackup(mad: string, basePath: string, file: string): string {
  const id = `9${Date.now()}${Math.floor(Math.random() * 1000)}`.slice(0, 16);
  if (mad === 'rsync') {
    mkdirSync(join(basePath, '4', id), { recursive: true });
    execFileSync('cp', ['--', file, join(basePath, '4', id, 'disk.0')]);
    placed.add(join(basePath, '4', id, 'disk.0'));
    return id;
  }
  const env = { ...process.env, RESTIC_PASSWORD, RESTIC_REPOSITORY: join(basePath, 'repo'), RESTIC_CACHE_DIR: join(basePath, '.cache') };
  if (!existsSync(join(basePath, 'repo', 'config'))) execFileSync('restic', ['init', '-q'], { env });
  const out = execFileSync('restic', ['backup', '-q', '--json', '--host', 'imgr', '--stdin', '--stdin-filename', 'disk.0'], { env, input: readFileSync(file), encoding: 'utf8' });
  const snap = /"snapshot_id":"([0-9a-f]{8})/.exec(out)?.[1];
  if (!snap) throw new Error(`restic printed no snapshot: ${out}`);
  return snap;
}

describe('dummy: even a driver that never opens a file gets no crafted one', () => {
  it('CP and STAT of a crafted PATH are refused before the dummy driver runs', async () => {
    const c = byName('qcow2 backing file to a secret');
    const ds = datastoreView(base, { dsMad: 'dummy', tmMad: 'dummy' });
    for (const action of ['CP', 'STAT'] as const) expect((await act(action, ds, imageView({ path: c.file }))).info).toMatch(refusalOf(c.file, c));
  });
});

describe("the bundled drivers alone, without the host's inspection (defence in depth)", () => {
  /** A driver script run without the driver host: nothing inspected, no IMGR_IMAGE_PATH_FORMAT. */
  const alone = async (action: DriverAction, ds: DatastoreView, image: ImageView, extra: Record<string, string> = {}) => {
    const req = requestFor(action, ds, image, { extra });
    const x = await runScript({
      script: join(DRIVERS_DIR, ds.dsMad, action.toLowerCase()),
      args: [String(req.imageId)],
      stdin: Buffer.from(actionDocument(req)).toString('base64'),
      env: actionEnvironment(req),
      timeoutMs: 60_000,
      graceMs: 500,
      maxStdoutBytes: 65536,
    });
    return { ok: x.exitCode === 0, out: x.stdout.trim(), err: x.stderr.join(' ') };
  };

  it('fs CLONE converts with the recorded format: a qcow2 recorded raw is copied as its bytes, never read through its backing file', async () => {
    const c = byName('qcow2 backing file to a secret');
    const r = await alone('CLONE', fsDs({ DRIVER: 'qcow2' }), imageView({ path: c.file, format: 'raw' }));
    expect(r.ok, r.err).toBe(true);
    const [copy = ''] = r.out.split(' ');
    // Its guest sees the qcow2's bytes (the secret's name among them, as data); not one byte of the secret.
    expect(readFileSync(copy).includes(secret.marker)).toBe(false);
    expect(await inspectFile(copy)).toMatchObject({ format: 'qcow2', violations: [] });
    rmSync(copy);
    noLeak();
  });

  it('fs CLONE, SNAP_FLATTEN and SNAP_REVERT refuse a qcow2 that names another file', async () => {
    mkdirSync(base, { recursive: true });
    for (const name of ['qcow2 backing file to a secret', 'qcow2 external data file']) {
      const c = byName(name);
      const clone = await alone('CLONE', fsDs({ DRIVER: 'raw' }), imageView({ path: c.file, format: 'qcow2' }));
      expect(clone).toMatchObject({ ok: false, err: `Image ${c.file} refused: it names another file (images are data, never references)` });
      const src = placedAt(c, join(base, `alone${name.length}`));
      for (const action of ['SNAP_FLATTEN', 'SNAP_REVERT'] as const) {
        expect(await alone(action, fsDs(), imageView({ source: src, format: 'qcow2', targetSnapshot: 0 }))).toMatchObject({ ok: false, err: `Image ${src} refused: it names another file (images are data, never references)` });
      }
    }
    noLeak();
  });

  it('fs STAT and CP read a VMDK descriptor as the raw text it is, never opening the extent it names', async () => {
    const c = byName('VMDK descriptor naming a secret');
    // Read as a VMDK, its extent says 10 MiB; as raw it is one line of text.
    expect(await alone('STAT', fsDs(), imageView({ path: c.file }))).toMatchObject({ ok: true, out: '1' });
    const cp = await alone('CP', fsDs(), imageView({ path: c.file }));
    expect(cp.ok, cp.err).toBe(true);
    expect(cp.out.split(' ')[1]).toBe('raw');
    rmSync(cp.out.split(' ')[0] ?? '', { force: true });
  });

  it('rsync RESTORE sizes a restored VMDK descriptor by its own length, never by the extent it names', async () => {
    const c = byName('VMDK descriptor naming a secret');
    const bds = datastoreView(join(dir, 'ds', 'rsync-alone'), { id: 301, dsMad: 'rsync', type: 'BACKUP_DS', template: { RSYNC_HOST: 'localhost' } });
    const id = storeBackup('rsync', bds.basePath, c.file);
    const image = imageView({ id: 12, type: 'BACKUP', vms: [4], state: 'READY', source: id, increments: [{ id: 0, type: 'FULL', parentId: -1, source: id, size: 1, date: 0 }] });
    const r = await alone('RESTORE', bds, image, { DESTINATION_DS_ID: '1', USERNAME: 'oneadmin' });
    expect(r.ok, r.err).toBe(true);
    const [file = '', size] = r.out.split(':');
    expect(size).toBe('1');
    placed.add(file);
  });
});
