/**
 * Principle 8 through the command boundary, with OpenNebula's own fs driver
 * (unchanged) and imgr's bundled fs behind a real manager and driver host.
 * Every attribute of an image or a datastore that a driver reads
 * (driver-values.ts, whose coverage of the scripts test/unit/driver-values
 * derives from the scripts) is sent with hostile values (`;`, `$(…)`,
 * backticks, quotes, newline, `|`, `&`): each command is refused with
 * OBJ_ERR_ATTR_VALUE, no STAT runs for it, and no marker file appears. What
 * does pass (free text: a NAME within §7.1.4 with backticks and parentheses,
 * a DESCRIPTION and other attributes full of shell syntax) goes through every
 * action of both drivers (STAT, CP, MKFS, CLONE, RM) and runs nothing.
 *
 * The reproduced door: `FS = "ext4; touch <dir>/pwned; echo"` on an `one-fs`
 * datastore made OpenNebula's mkfs run `eval $(echo "echo \$FS_OPTS_$FS")`.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestNats } from '../support/nats.js';
import { startWithOpenNebulaFs } from '../support/opennebula-system.js';
import { eventually } from '../support/eventually.js';
import { openNebulaTree } from '../support/opennebula.js';
import type { Manager } from '../../src/manager.js';
import type { DriverHost } from '../../src/driver-host/driver-host.js';
import type { ImgrClient } from '../../src/client/index.js';
import { DATASTORE_VALUE_FORMS, IMAGE_VALUE_FORMS } from '../../src/messages/driver-values.js';
import type { CommandInput, Outcome } from '../../src/messages/wire.js';

let nats: TestNats;
let manager: Manager;
let host: DriverHost;
let c: ImgrClient;
let tree: ReturnType<typeof openNebulaTree>;
let dir: string;
let marks: string;
let src: string;
let oneFs: number;
let fs: number;
const content = Buffer.alloc(1024 * 1024 + 5, 7);
const md5 = createHash('md5').update(content).digest('hex');
const ODD = 'odd.name_-+@%=,:~.raw';

const hostile = (): string[] => {
  const m = (n: string): string => join(marks, n);
  return [
    `ext4; touch ${m('semicolon')}; echo`,
    `$(touch ${m('dollar')})`,
    `\`touch ${m('backtick')}\``,
    `x'; touch ${m('quote')}; '`,
    `x"; touch ${m('dquote')}; "`,
    `raw\ntouch ${m('newline')}`,
    `raw | touch ${m('pipe')}`,
    `raw & touch ${m('amp')} &`,
    `${src}/disk.raw'; touch ${m('path-quote')}; echo '`,
  ];
};

const send = (cmd: CommandInput): Promise<Outcome> => c.send(cmd);
const ok = async (cmd: CommandInput): Promise<void> => {
  const o = await send(cmd);
  if (o.status !== 'accepted') throw new Error(`${cmd.type}: ${o.code} ${o.message}`);
};
const view = (id: number) => manager.host.image(id);
const ready = (id: number) => eventually(() => (view(id)?.state === 'READY' || view(id)?.state === 'ERROR') && view(id), `image ${id} settled`);
const nothingRan = (): void => expect(readdirSync(marks)).toEqual([]);

beforeAll(async () => {
  tree = openNebulaTree();
  dir = mkdtempSync(join(tmpdir(), 'imgr-inject-boundary-'));
  marks = join(dir, 'marks');
  src = join(dir, 'src');
  mkdirSync(marks);
  mkdirSync(src);
  writeFileSync(join(src, 'disk.raw'), content);
  // Every character a path may hold beyond letters and digits (driver-values.ts).
  writeFileSync(join(src, ODD), content);
  ({ nats, manager, host, client: c } = await startWithOpenNebulaFs(dir, tree.location));
  const create = async (template: Record<string, string>): Promise<number> => {
    const id = await c.nextId('datastore');
    await ok({ type: 'datastore.create', datastoreId: id, template: { RESTRICTED_DIRS: '/', SAFE_DIRS: src, ...template } });
    return id;
  };
  oneFs = await create({ NAME: 'one-fs', DS_MAD: 'one-fs', TM_MAD: 'shared' });
  fs = await create({ NAME: 'bundled-fs', DS_MAD: 'fs', TM_MAD: 'shared' });
  await eventually(() => [oneFs, fs].every((d) => manager.host.datastore(d)?.monitoredAt !== null), 'datastores monitored');
});

afterAll(async () => {
  await host.stop();
  await c.close();
  await manager.stop();
  await nats.dispose();
  tree.dispose();
  rmSync(dir, { recursive: true, force: true });
});

describe('hostile values never pass the command boundary', () => {
  it("the reproduced door: FS 'ext4; touch <dir>/pwned; echo' on a one-fs datastore is refused, and nothing runs", async () => {
    const id = await c.nextId('image');
    const pwned = join(dir, 'pwned');
    const o = await send({ type: 'image.allocate', imageId: id, datastoreId: oneFs, template: { NAME: 'pwn', TYPE: 'DATABLOCK', SIZE: '1', FS: `ext4; touch ${pwned}; echo` } });
    expect(o).toMatchObject({ status: 'rejected', code: 'OBJ_ERR_ATTR_VALUE', message: `Invalid FS "ext4; touch ${pwned}; echo": it must be one of ext2, ext3, ext4, xfs` });
    expect(view(id)).toBeUndefined();
    expect(existsSync(pwned)).toBe(false);
  });

  it.each(Object.keys(IMAGE_VALUE_FORMS))('image attribute %s: every hostile value is refused (OBJ_ERR_ATTR_VALUE), on both drivers, with no STAT run', async (attr) => {
    for (const ds of [oneFs, fs]) {
      for (const v of hostile()) {
        const id = await c.nextId('image');
        // PATH without SIZE: the size would come from a STAT, which must not run either.
        const base = attr === 'PATH' ? { NAME: `inj-${id}`, TYPE: 'OS' } : { NAME: `inj-${id}`, TYPE: 'DATABLOCK', SIZE: '1' };
        const o = await send({ type: 'image.allocate', imageId: id, datastoreId: ds, template: { ...base, [attr]: v } });
        expect(o.status === 'rejected' ? o.code : o.status, `${attr} = ${JSON.stringify(v)}`).toBe('OBJ_ERR_ATTR_VALUE');
      }
    }
    nothingRan();
  });

  it.each(Object.keys(DATASTORE_VALUE_FORMS))('datastore attribute %s: every hostile value is refused (OBJ_ERR_ATTR_VALUE)', async (attr) => {
    for (const v of hostile()) {
      const id = await c.nextId('datastore');
      const o = await send({ type: 'datastore.create', datastoreId: id, template: { NAME: `inj-${id}`, DS_MAD: 'one-fs', TM_MAD: 'shared', [attr]: v } });
      expect(o.status === 'rejected' ? o.code : o.status, `${attr} = ${JSON.stringify(v)}`).toBe('OBJ_ERR_ATTR_VALUE');
    }
    nothingRan();
  });
});

describe('free text that passes reaches the drivers and runs nothing', () => {
  it.each([
    ['one-fs', () => oneFs],
    ['fs', () => fs],
  ])('%s: STAT, CP, MKFS, CLONE and RM with shell syntax in the NAME, DESCRIPTION and other attributes', async (_name, ds) => {
    const free = hostile().join(' ');
    const attrs = { DESCRIPTION: free, LABELS: free, SOMETHING_ELSE: free, PERSISTENT_TYPE: free };
    const nameOf = (id: number): string => `disk \`touch ${id}\` (${id}) * ? ! ~ [x]`;
    const made: number[] = [];
    const register = async (template: Record<string, string>): Promise<number> => {
      const id = await c.nextId('image');
      await ok({ type: 'image.allocate', imageId: id, datastoreId: ds(), template: { NAME: nameOf(id), ...attrs, ...template } });
      const v = await ready(id);
      expect(v.state, `${JSON.stringify(template)}: ${v.template['ERROR'] ?? ''}`).toBe('READY');
      made.push(id);
      return id;
    };
    // A STAT (no SIZE), then a CP with its MD5 checked.
    await register({ PATH: join(src, 'disk.raw'), MD5: md5 });
    await register({ PATH: join(src, ODD), SHA1: createHash('sha1').update(content).digest('hex') });
    // MKFS with a file system, and an empty qcow2.
    await register({ TYPE: 'DATABLOCK', SIZE: '8', FS: 'ext4', FORMAT: 'raw' });
    const origin = await register({ TYPE: 'DATABLOCK', SIZE: '2', FORMAT: 'qcow2' });
    const copy = await c.nextId('image');
    await ok({ type: 'image.clone', imageId: copy, originId: origin, name: nameOf(copy), datastoreId: ds() });
    expect((await ready(copy)).state).toBe('READY');
    made.push(copy);
    for (const id of made) await ok({ type: 'image.delete', imageId: id });
    await eventually(() => made.every((id) => view(id) === undefined || view(id)?.state === 'REMOVED'), 'all deleted');
    nothingRan();
  });
});
