/**
 * <data> is imgr's alone (issue 27): the folder 0700 and every file directly
 * in it 0600, whatever modes it was found with; the folders inside keep
 * theirs. (The tour test checks the same on a system `npm start` runs.)
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { privateFile, secureDataDir } from '../../src/platform/data-dir.js';

const root = mkdtempSync(join(tmpdir(), 'imgr-data-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const mode = (p: string): number => statSync(p).mode & 0o777;

describe('the data directory', () => {
  it('left open by an earlier version, is closed: 0700, its files 0600, its folders as they were', async () => {
    const data = join(root, 'old');
    mkdirSync(join(data, 'datastores'), { recursive: true });
    chmodSync(data, 0o755);
    chmodSync(join(data, 'datastores'), 0o750);
    for (const f of ['imgr.log', 'principals.json', 'nats.conf', 'nats.pid', 'api-token']) {
      writeFileSync(join(data, f), 'x');
      chmodSync(join(data, f), 0o644);
    }
    await secureDataDir(data);
    expect(mode(data)).toBe(0o700);
    for (const f of ['imgr.log', 'principals.json', 'nats.conf', 'nats.pid', 'api-token']) expect(mode(join(data, f)), f).toBe(0o600);
    expect(mode(join(data, 'datastores'))).toBe(0o750);
  });

  it('made new, is 0700', async () => {
    const data = join(root, 'new', 'data');
    await secureDataDir(data);
    expect(mode(data)).toBe(0o700);
  });

  it('a file a writer opens later is made 0600 first, or made so if it exists', () => {
    const log = join(root, 'imgr.log');
    privateFile(log);
    expect(mode(log)).toBe(0o600);
    chmodSync(log, 0o644);
    privateFile(log);
    expect(mode(log)).toBe(0o600);
  });
});
