/**
 * Every action of every bundled driver, run exactly as the driver host runs
 * it, with hostile values in every field a driver reads: shell syntax,
 * newlines, option-like values, path traversal and huge values. Nothing may
 * run (no marker file appears), nothing outside the datastores may be
 * touched (the victim file stays), and each call ends as a clean success or
 * failure.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { act, datastoreView, DRIVERS_DIR, imageView } from '../support/driver-request.js';
import type { DriverAction } from '../../src/messages/driver.js';
import type { ImageView } from '../../src/messages/image-record.js';
import type { DatastoreView } from '../../src/messages/datastore.js';

let dir: string;
let marks: string;
let victim: string;
const VICTIM_TEXT = 'must survive every driver call';

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'imgr-inject-'));
  marks = join(dir, 'marks');
  mkdirSync(marks);
  mkdirSync(join(dir, 'outside'));
  victim = join(dir, 'outside', 'victim');
  writeFileSync(victim, VICTIM_TEXT);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const payloads = (): Record<string, string> => {
  const m = (n: number) => join(marks, String(n));
  const shell = `a'b"c;touch ${m(1)};$(touch ${m(2)})\`touch ${m(3)}\`|touch ${m(4)}&&touch ${m(5)} #`;
  return {
    shell,
    newline: `x\ntouch ${m(6)}\n`,
    'long option': `--password-command=touch ${m(7)}`,
    'short option': `-oProxyCommand=touch ${m(8)}`,
    traversal: `../../../../../../../../..${victim}`,
    'qemu options': `1,file.filename=${victim}`,
    huge: `${'A'.repeat(100_000)}${shell}`,
  };
};

interface Request {
  image: ImageView | null;
  ds: DatastoreView;
  extra: Record<string, string>;
}
type Field = [name: string, set: (r: Request, v: string) => void];

const imageField = (k: keyof ImageView & ('source' | 'path' | 'format' | 'fs' | 'name')): Field => [`image ${k}`, (r, v) => r.image && Object.assign(r.image, { [k]: v })];
const imageTemplate = (k: string): Field => [`image template ${k}`, (r, v) => r.image && (r.image.template = { ...r.image.template, [k]: v })];
const dsTemplate = (k: string): Field => [`datastore template ${k}`, (r, v) => (r.ds.template = { ...r.ds.template, [k]: v })];
const extra = (k: string): Field => [`extra ${k}`, (r, v) => (r.extra[k] = v)];

/** Every string a bundled driver reads from its request, by driver (dummy reads nothing: it gets them all). */
const BACKUP_FIELDS: Field[] = [
  imageField('source'),
  ['image increment source', (r, v) => r.image?.increments[0] && (r.image.increments[0].source = v)],
  ['datastore base path', (r, v) => (r.ds.basePath = v)],
  extra('DISK_SOURCE'),
  extra('VM_ID'),
  extra('KEEP_LAST'),
  extra('BACKUP_IMAGE_ID'),
  extra('CHAIN'),
  extra('INCREMENT_ID'),
];
const FIELDS: Record<string, Field[]> = {
  fs: [
    imageField('source'),
    imageField('path'),
    imageField('format'),
    imageField('fs'),
    imageField('name'),
    imageTemplate('MD5'),
    imageTemplate('SHA1'),
    ['datastore base path', (r, v) => (r.ds.basePath = v)],
    dsTemplate('DRIVER'),
    dsTemplate('SAFE_DIRS'),
    dsTemplate('RESTRICTED_DIRS'),
  ],
  rsync: [...BACKUP_FIELDS, dsTemplate('RSYNC_HOST'), dsTemplate('RSYNC_USER')],
  restic: [...BACKUP_FIELDS, dsTemplate('RESTIC_PASSWORD')],
};
FIELDS['dummy'] = [...new Map(Object.values(FIELDS).flat().map((f) => [f[0], f])).values(), extra('MODE')];

const actionsOf = (mad: string): DriverAction[] =>
  readdirSync(join(DRIVERS_DIR, mad))
    .filter((f) => !f.includes('.') && f !== 'action')
    .map((f) => f.toUpperCase() as DriverAction)
    .sort();

/** A valid request per driver, on real files, so that a hostile field is reached and not refused for another reason. */
function baseline(mad: string, base: string): () => Request {
  mkdirSync(base, { recursive: true });
  if (mad === 'fs') {
    const source = join(base, 'a1b2c3');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', source, '1M']);
    execFileSync('qemu-img', ['snapshot', '-c', '1', source]);
    writeFileSync(join(dir, 'import.raw'), Buffer.alloc(4096, 1));
    return () => ({
      image: imageView({ id: 7, source, path: join(dir, 'import.raw'), format: 'qcow2', size: 1, targetSnapshot: 1 }),
      ds: datastoreView(base, { id: 100, dsMad: 'fs', template: { SAFE_DIRS: dir, RESTRICTED_DIRS: '/' } }),
      extra: {},
    });
  }
  const template = mad === 'restic' ? { RESTIC_PASSWORD: 'inject-test-password' } : mad === 'rsync' ? { RSYNC_HOST: 'localhost' } : {};
  const disk = join(dir, `${mad}-disk.raw`);
  writeFileSync(disk, Buffer.alloc(64 * 1024, 3));
  const ds = (): DatastoreView => datastoreView(base, { id: 300, dsMad: mad, type: 'BACKUP_DS', template: { ...template } });
  let backupId = 'ffffffff';
  if (mad !== 'dummy') {
    execFileSync(join(DRIVERS_DIR, mad, 'backup'), ['11'], {
      input: '',
      env: { ...process.env, IMGR_DS_BASE_PATH: base, IMGR_EXTRA_DISK_SOURCE: disk, IMGR_EXTRA_VM_ID: '4', IMGR_EXTRA_BACKUP_IMAGE_ID: '12', ...Object.fromEntries(Object.entries(template).map(([k, v]) => [`IMGR_DS_TEMPLATE_${k}`, v])) },
    })
      .toString()
      .split(' ')
      .forEach((w, i) => i === 0 && (backupId = w));
  }
  return () => ({
    image: imageView({
      id: 12,
      type: 'BACKUP',
      vms: [4],
      state: 'READY',
      source: backupId,
      increments: [{ id: 0, type: 'FULL', parentId: -1, source: backupId, size: 1, date: 0 }],
    }),
    ds: ds(),
    extra: { DISK_SOURCE: disk, VM_ID: '4', BACKUP_IMAGE_ID: '12', CHAIN: 'NO', KEEP_LAST: '1', INCREMENT_ID: '0', MODE: 'FULL' },
  });
}

const nothingRan = (): void => {
  expect(readdirSync(marks)).toEqual([]);
  expect(readFileSync(victim, 'utf8')).toBe(VICTIM_TEXT);
  expect(existsSync(join(dir, 'outside'))).toBe(true);
};

describe.each(['dummy', 'fs', 'rsync', 'restic'])('the %s driver with hostile values', (mad) => {
  let make: () => Request;
  beforeAll(() => (make = baseline(mad, join(dir, `${mad}-ds`))));

  it.each(actionsOf(mad))('%s: runs nothing and touches nothing outside its datastore', async (action) => {
    for (const [field, set] of FIELDS[mad] ?? []) {
      // The payloads of one field run side by side: each is its own request, as concurrent driver calls are.
      const results = await Promise.all(
        Object.entries(payloads()).map(async ([kind, value]) => {
          const r = make();
          set(r, value);
          return { kind, result: await act(action, r.ds, r.image, { extra: r.extra, timeoutMs: 30_000 }) };
        }),
      );
      for (const { kind, result } of results) {
        expect(['SUCCESS', 'FAILURE'], `${action} with a ${kind} ${field}: ${result.info}`).toContain(result.result);
        if (result.result === 'FAILURE') expect(result.info.length, `${action} ${field} ${kind}`).toBeGreaterThan(0);
      }
      nothingRan();
    }
  });
});
