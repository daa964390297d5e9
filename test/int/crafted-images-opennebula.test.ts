/**
 * Images are data, never references (#27), for OpenNebula's own fs driver
 * (../shared/opennebula, unchanged) wherever imgr hands it a file: a
 * registration from a local PATH or a URL (its cp converts with qemu-img
 * without naming a format, so a qcow2 backing file would be read into the
 * user's image), a STAT, a clone that converts to the datastore's DRIVER, and
 * snapshot operations on an image a VM wrote a crafted header into (or a
 * crafted file in its <SOURCE>.snap folder). Each is refused with the file
 * and the reason through the real manager and driver host, the image goes to
 * ERROR (or the command is refused), and no datastore holds a byte of the
 * secret or a reference to it.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { basename } from 'node:path';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestNats } from '../support/nats.js';
import { startWithOpenNebulaFs } from '../support/opennebula-system.js';
import { serveBytes } from '../support/http-file.js';
import { eventually } from '../support/eventually.js';
import { openNebulaTree } from '../support/opennebula.js';
import { craft, leaks, makeSecret, type Crafted, type Secret } from '../support/crafted-images.js';
import type { Manager } from '../../src/manager.js';
import type { DriverHost } from '../../src/driver-host/driver-host.js';
import type { ImgrClient } from '../../src/client/index.js';
import type { CommandInput, Outcome } from '../../src/messages/wire.js';

let nats: TestNats;
let manager: Manager;
let host: DriverHost;
let c: ImgrClient;
let tree: ReturnType<typeof openNebulaTree>;
let dir: string;
let secret: Secret;
let crafted: Crafted[];
let fs: number;
let qcow: number;
const placed = new Set<string>();

const ok = async (cmd: CommandInput): Promise<Extract<Outcome, { status: 'accepted' }>> => {
  const o = await c.send(cmd);
  if (o.status !== 'accepted') throw new Error(`${cmd.type}: ${o.code} ${o.message}`);
  return o;
};
const view = (id: number) => manager.host.image(id);
const settled = (id: number) => eventually(() => (view(id)?.state === 'READY' || view(id)?.state === 'ERROR') && view(id), `image ${id} settled`);
const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const byName = (n: string): Crafted => {
  const x = crafted.find((k) => k.name === n);
  if (!x) throw new Error(n);
  return x;
};
const NAMES = ['qcow2 backing file to a secret', 'qcow2 external data file', 'VMDK descriptor naming a secret', 'raw file declared qcow2', 'qcow2 declared raw'];
const REFERENCES = NAMES.slice(0, 3);
const noLeak = () => expect(leaks(secret, [join(dir, 'datastores')], placed)).toEqual([]);

beforeAll(async () => {
  tree = openNebulaTree();
  dir = mkdtempSync(join(tmpdir(), 'imgr-one-crafted-'));
  mkdirSync(join(dir, 'in'));
  secret = makeSecret(dir);
  crafted = craft(join(dir, 'in'), secret);
  ({ nats, manager, host, client: c } = await startWithOpenNebulaFs(dir, tree.location));
  const create = async (template: Record<string, string>): Promise<number> => {
    const id = await c.nextId('datastore');
    await ok({ type: 'datastore.create', datastoreId: id, template: { RESTRICTED_DIRS: '/', SAFE_DIRS: join(dir, 'in'), IMGR_URL_ALLOWED_NETWORKS: '127.0.0.1/32', ...template } });
    return id;
  };
  fs = await create({ NAME: 'one-fs', DS_MAD: 'one-fs', TM_MAD: 'shared' });
  // TM_MAD qcow2: DRIVER qcow2, so OpenNebula's cp and clone convert what they copy with qemu-img.
  qcow = await create({ NAME: 'one-fs-qcow2', DS_MAD: 'one-fs', TM_MAD: 'qcow2' });
  await eventually(() => [fs, qcow].every((d) => manager.host.datastore(d)?.monitoredAt !== null), 'every datastore monitored');
});

afterAll(async () => {
  await host.stop();
  await c.close();
  await manager.stop();
  await nats.dispose();
  tree.dispose();
  rmSync(dir, { recursive: true, force: true });
});

async function register(ds: number, template: Record<string, string>): Promise<number> {
  const id = await c.nextId('image');
  await ok({ type: 'image.allocate', imageId: id, datastoreId: ds, template: { NAME: `crafted-${id}`, ...template } });
  await settled(id);
  return id;
}

describe("OpenNebula's fs: registrations", () => {
  for (const n of REFERENCES) {
    it(`a ${n} as a local PATH, into a plain and a converting datastore: ERROR, refused by name`, async () => {
      const k = byName(n);
      for (const ds of [fs, qcow]) {
        const id = await register(ds, { PATH: k.file, SIZE: '1' });
        expect(view(id)?.state).toBe('ERROR');
        expect(view(id)?.error).toMatch(new RegExp(`Image ${esc(k.file)} refused: .*${k.reason.source}.*\\(images are data, never references\\)`));
        expect(view(id)?.source).toBe('');
      }
      noLeak();
    });

    it(`a ${n} as an http URL: downloaded by imgr, refused by the URL's name`, async () => {
      const k = byName(n);
      const server = await serveBytes(readFileSync(k.file));
      try {
        const id = await register(qcow, { PATH: server.url, SIZE: '1' });
        expect(view(id)?.state).toBe('ERROR');
        expect(view(id)?.error).toMatch(new RegExp(`Image ${esc(server.url)} refused: `));
      } finally {
        server.close();
      }
      noLeak();
    });
  }

  for (const n of NAMES) {
    it(`a ${n} without SIZE: its STAT is refused, and so is the registration`, async () => {
      const k = byName(n);
      const o = await c.send({ type: 'image.allocate', imageId: await c.nextId('image'), datastoreId: fs, template: { NAME: 'stat', PATH: k.file, FORMAT: k.declared } });
      expect(o).toMatchObject({ status: 'rejected', code: 'IMG_ERR_STAT_FAILED' });
      expect(o.status === 'rejected' && o.message).toMatch(new RegExp(`Image ${esc(k.file)} refused: .*${k.reason.source}`));
    });
  }
});

describe("OpenNebula's fs: an image a VM wrote a crafted header into", () => {
  /** A persistent image of `ds` whose SOURCE now holds the crafted bytes (its VM wrote them). */
  const written = async (ds: number, k: Crafted): Promise<{ id: number; source: string }> => {
    const clean = join(dir, 'in', `clean-${ds}.raw`);
    copyFileSync(crafted.find((x) => x.name === 'raw file declared qcow2')?.file ?? '', clean);
    const id = await register(ds, { PATH: clean, SIZE: '1', PERSISTENT: 'YES' });
    const source = view(id)?.source ?? '';
    expect(view(id)?.state, view(id)?.error ?? '').toBe('READY');
    copyFileSync(k.file, source);
    placed.add(source);
    return { id, source };
  };
  /** The record's format and the content: a file declared raw that is qcow2 is named as such. */
  const reasonFor = (ds: number, k: Crafted): string => {
    const recorded = ds === qcow ? 'qcow2' : 'raw';
    if (k.name === 'raw file declared qcow2') return recorded === 'qcow2' ? 'content is raw, declared qcow2' : '';
    if (k.name === 'qcow2 declared raw') return recorded === 'raw' ? 'content is qcow2, declared raw' : '';
    return k.reason.source;
  };

  for (const n of NAMES) {
    it(`clone of an image holding a ${n}, into the converting datastore: ERROR, the origin released`, async () => {
      const k = byName(n);
      for (const ds of [fs, qcow]) {
        const reason = reasonFor(ds, k);
        if (reason === '') continue;
        const { id, source } = await written(ds, k);
        const copy = await c.nextId('image');
        await ok({ type: 'image.clone', imageId: copy, originId: id, name: `copy-${copy}`, datastoreId: qcow });
        await settled(copy);
        expect(view(copy)?.state).toBe('ERROR');
        expect(view(copy)?.error).toMatch(new RegExp(`Image ${esc(source)} refused: .*${reason}`));
        await eventually(() => view(id)?.clones.length === 0, 'origin released');
      }
      noLeak();
    });

    it(`snapshot flatten, revert and delete of an image holding a ${n}: refused, the image unchanged`, async () => {
      const k = byName(n);
      for (const ds of [fs, qcow]) {
        const reason = reasonFor(ds, k);
        if (reason === '') continue;
        const { id, source } = await written(ds, k);
        mkdirSync(`${source}.snap`, { recursive: true });
        await ok({ type: 'image.acquire', imageId: id, vmId: 7, mode: 'deploy' });
        const snap = (s: number) => ({ id: s, name: `s${s}`, date: s, parent: -1, children: [], active: false, size: 1 });
        await ok({ type: 'image.setSnapshots', imageId: id, snapshots: { mode: 'DENY', currentBase: -1, nextSnapshot: 2, list: [snap(0), snap(1)] } });
        await ok({ type: 'image.release', imageId: id, vmId: 7 });
        const before = readFileSync(source);
        const actions = [
          ['image.snapshotFlatten', 'Error flattening image snapshot'],
          ['image.snapshotRevert', `Error reverting image ${id} to snapshot 0`],
          ['image.snapshotDelete', `Error removing snapshot 0 from image ${id}`],
        ] as const;
        for (const [type, what] of actions) {
          await ok({ type, imageId: id, snapshotId: 0 });
          await eventually(() => view(id)?.state === 'READY' && view(id)?.error?.includes(what) === true, `${type} answered`);
          expect(view(id)?.error).toMatch(new RegExp(`${esc(what)}.*Image ${esc(source)} refused: .*${reason}`));
        }
        expect(readFileSync(source).equals(before)).toBe(true);
        expect(view(id)?.snapshots.list.map((s) => s.id)).toEqual([0, 1]);
      }
      noLeak();
    });
  }

  it('a crafted target snapshot in <SOURCE>.snap (the qcow2 layout) is refused too', async () => {
    const k = byName('qcow2 backing file to a secret');
    const { id, source } = await written(qcow, byName('qcow2 declared raw'));
    mkdirSync(`${source}.snap`, { recursive: true });
    copyFileSync(k.file, `${source}.snap/0`);
    placed.add(`${source}.snap/0`);
    await ok({ type: 'image.acquire', imageId: id, vmId: 8, mode: 'deploy' });
    await ok({ type: 'image.setSnapshots', imageId: id, snapshots: { mode: 'DENY', currentBase: -1, nextSnapshot: 1, list: [{ id: 0, name: 's0', date: 0, parent: -1, children: [], active: true, size: 1 }] } });
    await ok({ type: 'image.release', imageId: id, vmId: 8 });
    await ok({ type: 'image.snapshotFlatten', imageId: id, snapshotId: 0 });
    await eventually(() => view(id)?.state === 'READY' && view(id)?.error !== null, 'flatten answered');
    expect(view(id)?.error).toMatch(new RegExp(`Image ${esc(`${source}.snap/0`)} refused: qcow2 backing file "${esc(secret.file)}"`));
    noLeak();
  });
});

describe("OpenNebula's fs: the references that are imgr's own still work", () => {
  it('a qcow2 snapshot chain kept in <SOURCE>.snap (absolute names, and relative through the folder\'s self link) is flattened', async () => {
    const clean = join(dir, 'in', 'own.raw');
    copyFileSync(crafted.find((x) => x.name === 'raw file declared qcow2')?.file ?? '', clean);
    const id = await register(qcow, { PATH: clean, SIZE: '1', PERSISTENT: 'YES' });
    const src = view(id)?.source ?? '';
    const snap = `${src}.snap`;
    // The layout OpenNebula's qcow2 transfer driver leaves: 0 standalone, each later one an overlay of the one before.
    mkdirSync(snap);
    symlinkSync('.', join(snap, `${basename(src)}.snap`));
    const qemu = (...a: string[]) => execFileSync('qemu-img', a, { stdio: 'ignore' });
    const io = (cmd: string, f: string) => execFileSync('qemu-io', ['-c', cmd, f], { encoding: 'utf8' });
    qemu('create', '-q', '-f', 'qcow2', join(snap, '0'), '1M');
    io('write -P 0x11 0 4k', join(snap, '0'));
    qemu('create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', join(snap, '0'), join(snap, '1'));
    io('write -P 0x22 4k 4k', join(snap, '1'));
    qemu('create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', `${basename(src)}.snap/1`, join(snap, '2'));
    io('write -P 0x33 8k 4k', join(snap, '2'));
    await ok({ type: 'image.acquire', imageId: id, vmId: 9, mode: 'deploy' });
    const s = (n: number) => ({ id: n, name: `q${n}`, date: n, parent: n - 1, children: [], active: n === 2, size: 1 });
    await ok({ type: 'image.setSnapshots', imageId: id, snapshots: { mode: 'DENY', currentBase: -1, nextSnapshot: 3, list: [s(0), s(1), s(2)] } });
    await ok({ type: 'image.release', imageId: id, vmId: 9 });
    await ok({ type: 'image.snapshotFlatten', imageId: id, snapshotId: 2 });
    await eventually(() => view(id)?.state === 'READY' && view(id)?.targetSnapshot === -1, 'flatten answered');
    expect(view(id)?.error).toBeNull();
    expect(view(id)?.snapshots.list).toEqual([]);
    expect(existsSync(snap)).toBe(false);
    // The whole chain is in the image now, and it names nothing.
    const byte = (at: number) => io(`read -v ${at} 1`, src).split(/\s+/)[1];
    expect([byte(0), byte(4096), byte(8192)]).toEqual(['11', '22', '33']);
    expect(execFileSync('qemu-img', ['info', '-U', '--output=json', '-f', 'qcow2', src], { encoding: 'utf8' })).not.toMatch(/backing-filename/);
  });
});
