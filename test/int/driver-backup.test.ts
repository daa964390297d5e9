/**
 * The rsync and restic backup drivers with the real tools: a backup restored
 * equals the original disk, increments and retention work, removal cleans up.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { act, datastoreView, imageView } from '../support/driver-request.js';
import type { Increment } from '../../src/messages/image-record.js';

let dir: string;
const disk = (): string => join(dir, 'disk.raw');

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'imgr-bk-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const drivers = [
  { mad: 'rsync', template: { RSYNC_HOST: 'localhost' } },
  { mad: 'restic', template: { RESTIC_PASSWORD: 'correct horse battery staple' } },
] as const;

for (const d of drivers) {
  describe(`${d.mad} backups`, () => {
    const ds = () => datastoreView(join(dir, d.mad), { id: 300, dsMad: d.mad, type: 'BACKUP_DS', template: { ...d.template } });
    const source = () => imageView({ id: 11, source: disk(), format: 'raw', state: 'READY' });
    const backup = async (chain: boolean): Promise<{ id: string; size: number }> => {
      const r = await act('BACKUP', ds(), source(), { extra: { DISK_SOURCE: disk(), VM_ID: '4', BACKUP_IMAGE_ID: '12', CHAIN: chain ? 'YES' : 'NO', MODE: 'INCREMENT' } });
      expect(r.result, r.info).toBe('SUCCESS');
      const [id = '', size = '', format] = r.info.split(' ');
      expect(format).toBe('raw');
      return { id, size: Number(size) };
    };
    const backupImage = (incs: { id: string; size: number }[]) =>
      imageView({
        id: 12,
        type: 'BACKUP',
        vms: [4],
        state: 'READY',
        source: incs[0]?.id ?? '',
        increments: incs.map((x, i): Increment => ({ id: i, type: i === 0 ? 'FULL' : 'INCREMENT', parentId: i - 1, source: x.id, size: x.size, date: 0 })),
      });
    const restore = async (img: ReturnType<typeof backupImage>, extra: Record<string, string> = {}) => {
      const r = await act('RESTORE', ds(), img, { extra: { DESTINATION_DS_ID: '1', USERNAME: 'oneadmin', ...extra } });
      expect(r.result, r.info).toBe('SUCCESS');
      const [file, size] = r.info.split(':');
      return { file: file ?? '', size: Number(size) };
    };

    it('a full backup restored equals the original disk; later increments restore their own content', async () => {
      const v1 = randomBytes(2 * 1024 * 1024);
      writeFileSync(disk(), v1);
      const b1 = await backup(false);
      expect(b1.size).toBeGreaterThan(0);
      const v2 = Buffer.from(v1);
      v2.fill(7, 0, 4096);
      writeFileSync(disk(), v2);
      const b2 = await backup(true);
      const chain = backupImage([b1, b2]);
      const last = await restore(chain);
      expect(readFileSync(last.file).equals(v2)).toBe(true);
      expect(last.size).toBe(2);
      const first = await restore(chain, { INCREMENT_ID: '0' });
      expect(readFileSync(first.file).equals(v1)).toBe(true);
    });

    it('a restored qcow2 disk is sized by its virtual size, not by the bytes it takes', async () => {
      execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', disk(), '64M']);
      const b = await backup(false);
      const r = await restore(backupImage([b]));
      expect(r.size).toBe(64);
    });

    it('STAT and MONITOR', async () => {
      writeFileSync(disk(), randomBytes(3 * 1024 * 1024));
      const b = await backup(false);
      expect(await act('STAT', ds(), backupImage([b]))).toMatchObject({ result: 'SUCCESS', info: '3' });
      const m = await act('MONITOR', ds(), null);
      expect(Buffer.from(m.info, 'base64').toString()).toMatch(/^USED_MB=\d+\nTOTAL_MB=\d+\nFREE_MB=\d+\n$/);
    });

    it('INCREMENT_FLATTEN keeps the last KEEP_LAST increments, which still restore', async () => {
      const versions: Buffer[] = [];
      const incs: { id: string; size: number }[] = [];
      for (let i = 0; i < 4; i++) {
        const v = randomBytes(1024 * 1024);
        versions.push(v);
        writeFileSync(disk(), v);
        incs.push(await backup(i > 0));
      }
      const chain = backupImage(incs);
      expect(await act('INCREMENT_FLATTEN', ds(), chain, { extra: { KEEP_LAST: '5' } })).toMatchObject({ result: 'SUCCESS', info: '' });
      const r = await act('INCREMENT_FLATTEN', ds(), chain, { extra: { KEEP_LAST: '2' } });
      expect(r.info).toBe(`1 2:${incs[2]?.id ?? ''},3:${incs[3]?.id ?? ''}`);
      const kept = backupImage(incs.slice(2));
      expect(readFileSync((await restore({ ...kept, increments: kept.increments.map((x, i) => ({ ...x, id: i + 2 })) })).file).equals(versions[3] ?? Buffer.alloc(0))).toBe(true);
      const gone = await act('RESTORE', ds(), backupImage(incs.slice(0, 1)), { extra: { DESTINATION_DS_ID: '1', USERNAME: 'oneadmin' } });
      expect(gone.result, gone.info).toBe('FAILURE');
    });

    it('RM deletes every increment; deleting again still succeeds', async () => {
      writeFileSync(disk(), randomBytes(1024 * 1024));
      const b = await backup(false);
      const img = backupImage([b]);
      expect((await act('RM', ds(), img)).result).toBe('SUCCESS');
      expect((await act('RESTORE', ds(), img, { extra: { DESTINATION_DS_ID: '1', USERNAME: 'x' } })).result).toBe('FAILURE');
      expect((await act('RM', ds(), img)).result).toBe('SUCCESS');
    });

    it('operations the backend cannot do say so', async () => {
      expect(await act('CP', ds(), source())).toMatchObject({ result: 'FAILURE', info: 'cp: Operation not supported' });
    });
  });
}

it('restic refuses to work without a password', async () => {
  const ds = datastoreView(join(dir, 'nopass'), { dsMad: 'restic', type: 'BACKUP_DS', template: {} });
  writeFileSync(disk(), 'x');
  expect(await act('BACKUP', ds, imageView({ source: disk() }), { extra: { DISK_SOURCE: disk() } })).toMatchObject({
    result: 'FAILURE',
    info: 'RESTIC_PASSWORD is not set in the datastore template',
  });
  expect(existsSync(join(dir, 'nopass', 'repo'))).toBe(false);
  expect(readdirSync(dir)).not.toContain('nopass');
});
