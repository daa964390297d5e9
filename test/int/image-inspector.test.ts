/**
 * The inspector on files real qemu-img made, and the one rule about
 * references (checkImageFile): a qcow2 backing chain is allowed only inside
 * the image's own `.snap` folder, resolved the way qemu resolves it.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inspectFile } from '../../src/inspect/index.js';
import { checkImageFile } from '../../src/inspect/guard.js';

let dir: string;
let secret: string;
const qemu = (...args: string[]) => execFileSync('qemu-img', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const virtualSize = (file: string, format: string): number => (JSON.parse(qemu('info', '-U', '--output=json', '-f', format, file)) as { 'virtual-size': number })['virtual-size'];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'imgr-inspect-'));
  secret = join(dir, 'secret');
  writeFileSync(secret, 'TOPSECRET-'.repeat(100));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('files qemu-img made', () => {
  const cases: [string, string[], string, string][] = [
    ['raw', [], 'raw', 'raw'],
    ['qcow2', [], 'qcow2', 'qcow2'],
    ['qcow2-v2', ['-o', 'compat=0.10'], 'qcow2', 'qcow2'],
    ['qed', [], 'qed', 'qed'],
    ['vmdk', [], 'vmdk', 'vmdk'],
    ['vmdk-stream', ['-o', 'subformat=streamOptimized'], 'vmdk', 'vmdk'],
    ['vpc', [], 'vhd', 'vpc'],
    ['vhdx', [], 'vhdx', 'vhdx'],
    ['vdi', [], 'vdi', 'vdi'],
  ];
  for (const [name, opts, format, qemuName] of cases) {
    it(`${name}: ${format}, sized as qemu sizes it, no violation`, async () => {
      const file = join(dir, `plain.${name}`);
      qemu('create', '-q', '-f', qemuName, ...opts, file, '48M');
      const r = await inspectFile(file);
      expect(r).toEqual({ format, virtualSize: virtualSize(file, qemuName), violations: [] });
    });
  }

  it('qcow2 with a backing file, with a data file; QED with a backing file; a flat VMDK (a descriptor)', async () => {
    qemu('create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', secret, join(dir, 'b.qcow2'));
    qemu('create', '-q', '-f', 'qcow2', '-o', `data_file=${secret},data_file_raw=on`, join(dir, 'd.qcow2'), '1M');
    qemu('create', '-q', '-f', 'qed', '-F', 'raw', '-b', secret, join(dir, 'b.qed'));
    qemu('create', '-q', '-f', 'vmdk', '-o', 'subformat=monolithicFlat', join(dir, 'flat.vmdk'), '1M');
    expect((await inspectFile(join(dir, 'b.qcow2'))).violations).toEqual([{ kind: 'backing-file', message: `qcow2 backing file "${secret}"`, reference: secret }]);
    expect((await inspectFile(join(dir, 'd.qcow2'))).violations.map((v) => [v.kind, v.reference])).toEqual([
      ['data-file', undefined],
      ['data-file', secret],
    ]);
    expect((await inspectFile(join(dir, 'b.qed'))).violations.map((v) => v.kind)).toEqual(['backing-file']);
    const flat = await inspectFile(join(dir, 'flat.vmdk'));
    expect(flat.violations.map((v) => [v.kind, v.reference])).toEqual([
      ['vmdk-descriptor', undefined],
      ['vmdk-extent', 'flat-flat.vmdk'],
    ]);
  });

  it('a VHD differencing disk (qemu-img cannot make one: its footer type is changed to 4)', async () => {
    const file = join(dir, 'diff.vhd');
    qemu('create', '-q', '-f', 'vpc', file, '8M');
    const b = readFileSync(file);
    b.writeUInt32BE(4, 60);
    writeFileSync(file, b);
    expect((await inspectFile(file)).violations.map((v) => v.kind)).toEqual(['differencing']);
  });
});

describe('checkImageFile: the references imgr allows', () => {
  const image = () => {
    const src = join(mkdtempSync(join(dir, 'ds-')), 'abc123');
    qemu('create', '-q', '-f', 'qcow2', src, '8M');
    mkdirSync(`${src}.snap`);
    return src;
  };

  it('a missing file and a folder are not inspected; a FIFO is refused', async () => {
    expect(await checkImageFile(join(dir, 'nothing-here'))).toEqual({ refusal: null, inspection: null });
    expect(await checkImageFile(dir)).toEqual({ refusal: null, inspection: null });
    const fifo = join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    expect((await checkImageFile(fifo)).refusal).toBe(`Image ${fifo} refused: not a regular file (images are data, never references)`);
  });

  it('a plain image passes and says what it is; a declared format the content contradicts is refused', async () => {
    const src = image();
    expect(await checkImageFile(src, { declared: 'qcow2' })).toEqual({ refusal: null, inspection: { format: 'qcow2', virtualSize: 8 * 1024 * 1024, violations: [] } });
    expect((await checkImageFile(src, { declared: 'raw' })).refusal).toBe(`Image ${src} refused: content is qcow2, declared raw (images are data, never references)`);
  });

  it("OpenNebula's qcow2 snapshot layout: a chain inside <SOURCE>.snap, by absolute or relative name or the folder's self link, passes", async () => {
    const src = image();
    const snap = `${src}.snap`;
    qemu('create', '-q', '-f', 'qcow2', join(snap, '0'), '8M');
    qemu('create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', join(snap, '0'), join(snap, '1'));
    symlinkSync('.', join(snap, 'abc123.snap'));
    qemu('create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', 'abc123.snap/1', join(snap, '2'));
    qemu('create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', '1', join(snap, '3'));
    for (const n of ['1', '2', '3']) expect((await checkImageFile(join(snap, n), { snapshots: snap })).refusal).toBeNull();
    // Without the allowance (any other action), a backing file is a backing file.
    expect((await checkImageFile(join(snap, '1'))).refusal).toMatch(/refused: qcow2 backing file/);
  });

  it('a chain that leaves the folder anywhere is refused, naming the link that leaves', async () => {
    const src = image();
    const snap = `${src}.snap`;
    qemu('create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', secret, join(snap, '0'));
    qemu('create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', join(snap, '0'), join(snap, '1'));
    const r = await checkImageFile(join(snap, '1'), { snapshots: snap });
    expect(r.refusal).toBe(`Image ${join(snap, '1')} refused: qcow2 backing file "${join(snap, '0')}": qcow2 backing file "${secret}" (images are data, never references)`);

    // ../ out of the folder, a link inside it that points out, another image's folder, a protocol, the folder itself.
    const other = image();
    qemu('create', '-q', '-f', 'qcow2', join(`${other}.snap`, '0'), '1M');
    symlinkSync(secret, join(snap, 'link'));
    for (const [n, backing] of [
      ['a', '../../secret'],
      ['b', 'link'],
      ['c', join(`${other}.snap`, '0')],
      ['d', `json:{"file.driver":"file","file.filename":"${secret}"}`],
    ] as const) {
      writeFileSync(join(snap, n), '');
      qemu('create', '-q', '-f', 'qcow2', '-u', '-F', 'raw', '-b', backing, join(snap, n), '1M');
      expect((await checkImageFile(join(snap, n), { snapshots: snap })).refusal, backing).toMatch(/refused: qcow2 backing file/);
    }
  });

  it('a loop of backing files ends in a refusal', async () => {
    const src = image();
    const snap = `${src}.snap`;
    qemu('create', '-q', '-f', 'qcow2', '-u', '-F', 'qcow2', '-b', join(snap, 'y'), join(snap, 'x'), '1M');
    qemu('create', '-q', '-f', 'qcow2', '-u', '-F', 'qcow2', '-b', join(snap, 'x'), join(snap, 'y'), '1M');
    expect((await checkImageFile(join(snap, 'x'), { snapshots: snap })).refusal).toMatch(/refused/);
  });

  it('a data file is refused even inside the folder', async () => {
    const src = image();
    const snap = `${src}.snap`;
    writeFileSync(join(snap, 'data'), Buffer.alloc(1024 * 1024));
    qemu('create', '-q', '-f', 'qcow2', '-o', `data_file=${join(snap, 'data')}`, join(snap, '0'), '1M');
    expect((await checkImageFile(join(snap, '0'), { snapshots: snap })).refusal).toMatch(/external data file/);
  });
});
