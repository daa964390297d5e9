/**
 * The image inspector on headers crafted here, byte by byte: each format is
 * recognised by its content, sized, and every reference it carries is a
 * violation. Real qemu-img files are in test/int/image-inspector.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { formatMismatch, inspectBuffer, inspectImage, qemuFormat, type ByteSource } from '../../src/inspect/index.js';
import { guid, VHDX_FILE_PARAMETERS, VHDX_METADATA_REGION, VHDX_PARENT_LOCATOR, VHDX_VIRTUAL_DISK_SIZE } from '../../src/inspect/vhd.js';

const MiB = 1024 * 1024;
const kinds = (v: { violations: readonly { kind: string }[] }) => v.violations.map((x) => x.kind);

/** A qcow2 header as qemu writes it: v3, 64 KiB clusters, extensions after the 104-byte header. */
function qcow2(o: { version?: number; size?: number; backing?: string; incompatible?: bigint; dataFile?: string; clusterBits?: number } = {}): Buffer {
  const b = Buffer.alloc(3 * 65536);
  b.write('QFI\xfb', 0, 'latin1');
  const version = o.version ?? 3;
  b.writeUInt32BE(version, 4);
  b.writeUInt32BE(o.clusterBits ?? 16, 20);
  b.writeBigUInt64BE(BigInt(o.size ?? 64 * MiB), 24);
  if (version === 3) {
    b.writeBigUInt64BE(o.incompatible ?? 0n, 72);
    b.writeUInt32BE(4, 96);
    b.writeUInt32BE(104, 100);
  }
  let at = version === 3 ? 104 : 72;
  if (o.dataFile !== undefined) {
    b.writeUInt32BE(0x44415441, at);
    b.writeUInt32BE(o.dataFile.length, at + 4);
    b.write(o.dataFile, at + 8);
    at += 8 + Math.ceil(o.dataFile.length / 8) * 8;
  }
  b.writeUInt32BE(0, at);
  if (o.backing !== undefined) {
    b.writeBigUInt64BE(1024n, 8);
    b.writeUInt32BE(Buffer.byteLength(o.backing), 16);
    b.write(o.backing, 1024);
  }
  return b;
}

/** A hosted sparse VMDK extent: header, then the embedded descriptor at sector 1. */
function sparseVmdk(descriptor: string, o: { capacity?: number; streamFooter?: { capacity: number } } = {}): Buffer {
  const b = Buffer.alloc(128 * 1024);
  b.write('KDMV', 0, 'latin1');
  b.writeUInt32LE(o.streamFooter ? 3 : 1, 4);
  b.writeBigUInt64LE(BigInt(o.capacity ?? 2048 * 64), 12);
  b.writeBigUInt64LE(128n, 20);
  b.writeBigUInt64LE(1n, 28);
  b.writeBigUInt64LE(20n, 36);
  if (o.streamFooter) b.writeBigUInt64LE(0xffffffffffffffffn, 56);
  b.write(descriptor, 512, 'latin1');
  if (o.streamFooter) {
    const f = b.subarray(b.length - 1024, b.length - 512);
    f.write('KDMV', 0, 'latin1');
    f.writeUInt32LE(3, 4);
    f.writeBigUInt64LE(BigInt(o.streamFooter.capacity), 12);
    f.writeBigUInt64LE(1n, 28);
    f.writeBigUInt64LE(20n, 36);
    f.writeBigUInt64LE(300n, 56);
  }
  return b;
}
const descriptor = (createType: string, extents: string[]) =>
  ['# Disk DescriptorFile', 'version=1', 'CID=fffffffe', 'parentCID=ffffffff', `createType="${createType}"`, '', '# Extent description', ...extents, '', 'ddb.virtualHWVersion = "4"', ''].join('\n');

function vhd(type: number, size = 32 * MiB): Buffer {
  const b = Buffer.alloc(2048);
  b.write('conectix', 0, 'latin1');
  b.writeBigUInt64BE(BigInt(size), 48);
  b.writeUInt32BE(type, 60);
  return b;
}

function vhdx(o: { parent?: boolean; hasParentFlag?: boolean; size?: number } = {}): Buffer {
  const b = Buffer.alloc(1024 * 1024 + 65536);
  b.write('vhdxfile', 0, 'latin1');
  const rt = 192 * 1024;
  b.write('regi', rt, 'latin1');
  b.writeUInt32LE(1, rt + 8);
  VHDX_METADATA_REGION.copy(b, rt + 16);
  b.writeBigUInt64LE(1024n * 1024n, rt + 32);
  b.writeUInt32LE(65536, rt + 40);
  const m = 1024 * 1024;
  b.write('metadata', m, 'latin1');
  const entries: [Buffer, number, Buffer][] = [
    [VHDX_FILE_PARAMETERS, 4096, Buffer.from([0, 0, 0x20, 0, o.hasParentFlag ? 2 : 0, 0, 0, 0])],
    [VHDX_VIRTUAL_DISK_SIZE, 4104, Buffer.from(new BigUint64Array([BigInt(o.size ?? 16 * MiB)]).buffer)],
  ];
  if (o.parent) entries.push([VHDX_PARENT_LOCATOR, 4112, Buffer.from('parent')]);
  b.writeUInt16LE(entries.length, m + 10);
  entries.forEach(([id, off, data], i) => {
    id.copy(b, m + 32 + 32 * i);
    b.writeUInt32LE(off, m + 32 + 32 * i + 16);
    b.writeUInt32LE(data.length, m + 32 + 32 * i + 20);
    data.copy(b, m + off);
  });
  return b;
}

describe('format by content', () => {
  it('raw: anything without a known header, sized by its length', async () => {
    expect(await inspectBuffer(Buffer.alloc(3 * MiB + 5, 0xab))).toEqual({ format: 'raw', virtualSize: 3 * MiB + 5, violations: [] });
    expect(await inspectBuffer(Buffer.alloc(0))).toEqual({ format: 'raw', virtualSize: 0, violations: [] });
  });

  it('qcow2 v2 and v3: virtual size from the header, no violation', async () => {
    expect(await inspectBuffer(qcow2({ size: 10 * MiB }))).toEqual({ format: 'qcow2', virtualSize: 10 * MiB, violations: [] });
    expect(await inspectBuffer(qcow2({ version: 2, size: 5 * MiB }))).toEqual({ format: 'qcow2', virtualSize: 5 * MiB, violations: [] });
  });

  it('vhd (dynamic), vhdx, vdi, luks, iso, sparse vmdk', async () => {
    expect(await inspectBuffer(vhd(3))).toEqual({ format: 'vhd', virtualSize: 32 * MiB, violations: [] });
    expect(await inspectBuffer(vhdx())).toEqual({ format: 'vhdx', virtualSize: 16 * MiB, violations: [] });
    const vdi = Buffer.alloc(1024);
    vdi.writeUInt32LE(0xbeda107f, 0x40);
    vdi.writeUInt32LE(1, 0x4c);
    vdi.writeBigUInt64LE(BigInt(8 * MiB), 0x170);
    expect(await inspectBuffer(vdi)).toEqual({ format: 'vdi', virtualSize: 8 * MiB, violations: [] });
    const luks = Buffer.alloc(8192);
    luks.write('LUKS\xba\xbe', 0, 'latin1');
    luks.writeUInt16BE(1, 6);
    luks.writeUInt32BE(8, 104);
    expect(await inspectBuffer(luks)).toEqual({ format: 'luks', virtualSize: 8192 - 4096, violations: [] });
    const iso = Buffer.alloc(0x9000);
    iso.write('\x01CD001', 0x8000, 'latin1');
    iso.writeUInt32LE(18, 0x8050);
    iso.writeUInt16LE(2048, 0x8080);
    expect(await inspectBuffer(iso)).toEqual({ format: 'iso', virtualSize: iso.length, violations: [] });
    const vmdk = sparseVmdk(descriptor('monolithicSparse', ['RW 131072 SPARSE "disk.vmdk"']));
    expect(await inspectBuffer(vmdk)).toEqual({ format: 'vmdk', virtualSize: 64 * MiB, violations: [] });
  });

  it('qemu-img -f names: vhd is vpc, an ISO and a LUKS container are read as raw', () => {
    expect([qemuFormat('vhd'), qemuFormat('iso'), qemuFormat('luks'), qemuFormat('qcow2'), qemuFormat('raw')]).toEqual(['vpc', 'raw', 'raw', 'qcow2', 'raw']);
  });

  it('reads only bounded regions, never the whole file', async () => {
    const size = 50 * 1024 * MiB;
    const reads: [number, number][] = [];
    const head = qcow2({ size: 7 * MiB });
    const src: ByteSource = {
      size,
      read: (offset, length) => {
        reads.push([offset, length]);
        return Promise.resolve(offset < head.length ? head.subarray(offset, Math.min(head.length, offset + length)) : Buffer.alloc(Math.min(length, 4096)));
      },
    };
    expect((await inspectImage(src)).format).toBe('qcow2');
    expect(reads.every(([, l]) => l <= MiB)).toBe(true);
    expect(reads.reduce((a, [, l]) => a + l, 0)).toBeLessThan(2 * MiB);
  });
});

describe('violations', () => {
  it('qcow2 backing file, named', async () => {
    const r = await inspectBuffer(qcow2({ backing: '/var/lib/imgr/credentials/manager' }));
    expect(r.violations).toEqual([{ kind: 'backing-file', message: 'qcow2 backing file "/var/lib/imgr/credentials/manager"', reference: '/var/lib/imgr/credentials/manager' }]);
  });

  it('qcow2 external data file: the incompatible bit and the data-file extension, each on its own', async () => {
    expect(kinds(await inspectBuffer(qcow2({ incompatible: 1n << 2n })))).toEqual(['data-file']);
    const ext = await inspectBuffer(qcow2({ dataFile: '/etc/shadow' }));
    expect(ext.violations).toEqual([{ kind: 'data-file', message: 'qcow2 external data file "/etc/shadow"', reference: '/etc/shadow' }]);
  });

  it('qcow2 unknown incompatible features are refused; the known ones (dirty, compression type, extended L2) are not', async () => {
    expect(kinds(await inspectBuffer(qcow2({ incompatible: 1n << 5n })))).toEqual(['unknown-features']);
    expect(kinds(await inspectBuffer(qcow2({ incompatible: 1n << 40n })))).toEqual(['unknown-features']);
    expect(kinds(await inspectBuffer(qcow2({ incompatible: 0b11001n })))).toEqual([]);
  });

  it('qcow version 1 and a truncated or odd qcow2 header are refused', async () => {
    expect(kinds(await inspectBuffer(qcow2({ version: 1 })))).toEqual(['unsupported']);
    expect(kinds(await inspectBuffer(qcow2({ version: 4 })))).toEqual(['malformed']);
    expect(kinds(await inspectBuffer(qcow2().subarray(0, 40)))).toEqual(['malformed']);
    expect(kinds(await inspectBuffer(qcow2({ clusterBits: 40 })))).toEqual(['malformed']);
  });

  it('QED backing file', async () => {
    const b = Buffer.alloc(4096);
    b.write('QED\0', 0, 'latin1');
    b.writeBigUInt64LE(1n, 16);
    b.writeBigUInt64LE(BigInt(MiB), 48);
    b.writeUInt32LE(1024, 56);
    b.writeUInt32LE(11, 60);
    b.write('/etc/shadow', 1024);
    const r = await inspectBuffer(b);
    expect(r).toMatchObject({ format: 'qed', virtualSize: MiB });
    expect(r.violations).toEqual([{ kind: 'backing-file', message: 'QED backing file "/etc/shadow"', reference: '/etc/shadow' }]);
  });

  it('a VMDK descriptor file is refused whatever it names, and names its extents', async () => {
    const text = descriptor('monolithicFlat', ['RW 2048 FLAT "/etc/shadow" 0']);
    const r = await inspectBuffer(Buffer.from(text));
    expect(r.format).toBe('vmdk');
    expect(kinds(r)).toEqual(['vmdk-descriptor', 'vmdk-extent']);
    expect(r.violations[1]?.reference).toBe('/etc/shadow');
    // qemu's probe: the first line that is not a comment is "version=N".
    expect((await inspectBuffer(Buffer.from('# anything\nversion=1\nRW 1 FLAT "x" 0\n'))).format).toBe('vmdk');
    expect((await inspectBuffer(Buffer.from('hello\nversion=1\n'))).format).toBe('raw');
  });

  it('a sparse VMDK whose descriptor names another extent, another type or has no capacity is refused', async () => {
    const other = await inspectBuffer(sparseVmdk(descriptor('monolithicSparse', ['RW 131072 SPARSE "/etc/shadow"'])));
    expect(kinds(other)).toEqual(['vmdk-extent']);
    const two = await inspectBuffer(sparseVmdk(descriptor('monolithicSparse', ['RW 131072 SPARSE "disk.vmdk"', 'RW 2048 FLAT "secret" 0'])));
    expect(kinds(two)).toEqual(['vmdk-extent', 'vmdk-extent']);
    const flat = await inspectBuffer(sparseVmdk(descriptor('twoGbMaxExtentFlat', ['RW 131072 SPARSE "disk.vmdk"'])));
    expect(kinds(flat)).toEqual(['vmdk-descriptor']);
    const noCapacity = await inspectBuffer(sparseVmdk(descriptor('monolithicSparse', ['RW 131072 SPARSE "disk.vmdk"']), { capacity: 0 }));
    expect(kinds(noCapacity)).toEqual(['vmdk-extent']);
    const junk = await inspectBuffer(sparseVmdk(descriptor('monolithicSparse', ['RW 131072 SPARSE "disk.vmdk"', 'include "/etc/shadow"'])));
    expect(kinds(junk)).toEqual(['vmdk-descriptor']);
  });

  it('a stream-optimized VMDK takes its capacity from its footer', async () => {
    const r = await inspectBuffer(sparseVmdk(descriptor('streamOptimized', ['RW 4096 SPARSE "s.vmdk"']), { capacity: 0, streamFooter: { capacity: 4096 } }));
    expect(r).toEqual({ format: 'vmdk', virtualSize: 4096 * 512, violations: [] });
  });

  it('differencing disks: VHD type 4, VHDX with a parent locator or the has-parent flag, VDI undo/diff', async () => {
    expect(kinds(await inspectBuffer(vhd(4)))).toEqual(['differencing']);
    expect(kinds(await inspectBuffer(vhdx({ parent: true })))).toEqual(['parent-locator']);
    expect(kinds(await inspectBuffer(vhdx({ hasParentFlag: true })))).toEqual(['differencing']);
    const vdi = Buffer.alloc(1024);
    vdi.writeUInt32LE(0xbeda107f, 0x40);
    vdi.writeUInt32LE(4, 0x4c);
    expect(kinds(await inspectBuffer(vdi))).toEqual(['differencing']);
  });

  it('other formats qemu would guess (bochs, parallels) and a file that is both qcow2 and an ISO are refused', async () => {
    expect(kinds(await inspectBuffer(Buffer.from('Bochs Virtual HD Image\0\0\0\0')))).toEqual(['unsupported']);
    expect(kinds(await inspectBuffer(Buffer.from('WithoutFreeSpace\0\0\0\0')))).toEqual(['unsupported']);
    const both = qcow2();
    both.write('\x01CD001', 0x8000, 'latin1');
    expect(kinds(await inspectBuffer(both))).toEqual(['malformed']);
  });

  it('GUIDs are stored with their first three fields little-endian', () => {
    expect(guid('00112233-4455-6677-8899-AABBCCDDEEFF').toString('hex')).toBe('33221100554477668899aabbccddeeff');
  });
});

describe('declared format against content', () => {
  it('a raw file claiming qcow2 and a qcow2 declared raw are mismatches; vpc, vhd, iso, luks and unknown names are not', async () => {
    const raw = await inspectBuffer(Buffer.alloc(1024));
    const q = await inspectBuffer(qcow2());
    expect(formatMismatch('qcow2', raw)?.message).toBe('content is raw, declared qcow2');
    expect(formatMismatch('RAW', q)?.message).toBe('content is qcow2, declared raw');
    expect(formatMismatch('qcow2', q)).toBeNull();
    expect(formatMismatch('raw', raw)).toBeNull();
    expect(formatMismatch('vpc', await inspectBuffer(vhd(3)))).toBeNull();
    // A fixed VHD: raw data and a footer at the end, which qemu probes as raw.
    expect(formatMismatch('vpc', raw)).toBeNull();
    expect(formatMismatch('raw', await inspectBuffer(vhd(4)))?.message).toBe('content is vhd, declared raw');
    expect(formatMismatch('save_as', q)).toBeNull();
    expect(formatMismatch('', q)).toBeNull();
  });
});
