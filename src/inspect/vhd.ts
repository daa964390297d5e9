import { u64be, u64le, type ByteSource } from './source.js';
import type { Inspection, Violation } from './types.js';

/**
 * VHD (qemu's vpc), big-endian footer copied at the start of dynamic and
 * differencing disks: "conectix", current size (u64) at 48, disk type (u32)
 * at 60: 2 fixed, 3 dynamic, 4 differencing (its parent is another file).
 */
export const VHD_MAGIC = Buffer.from('conectix', 'latin1');

export function inspectVhd(head: Buffer): Inspection {
  if (head.length < 64) return { format: 'vhd', virtualSize: null, violations: [{ kind: 'malformed', message: 'VHD footer truncated' }] };
  const type = head.readUInt32BE(60);
  const violations: Violation[] = type === 4 ? [{ kind: 'differencing', message: 'VHD differencing disk (its parent is another file)' }] : [];
  return { format: 'vhd', virtualSize: u64be(head, 48), violations };
}

/**
 * VHDX, little-endian: "vhdxfile"; region tables ("regi") at 192 and 256
 * KiB list regions by GUID; the metadata region's table ("metadata", entry
 * count u16 at 10, entries of 32 bytes from 32) holds the file parameters
 * (flags bit 1: has a parent), the virtual disk size (u64) and, for a
 * differencing disk, a parent locator naming the parent file.
 */
export const VHDX_MAGIC = Buffer.from('vhdxfile', 'latin1');

/** A GUID as VHDX stores it: the first three fields little-endian, the rest as written. */
export function guid(s: string): Buffer {
  const h = s.replace(/-/g, '');
  const b = Buffer.from(h, 'hex');
  return Buffer.concat([Buffer.from(b.subarray(0, 4)).reverse(), Buffer.from(b.subarray(4, 6)).reverse(), Buffer.from(b.subarray(6, 8)).reverse(), b.subarray(8)]);
}
export const VHDX_METADATA_REGION = guid('8B7CA206-4790-4B9A-B8FE-575F050F886E');
export const VHDX_FILE_PARAMETERS = guid('CAA16737-FA36-4D43-B3B6-33F0AA44E76B');
export const VHDX_VIRTUAL_DISK_SIZE = guid('2FA54224-CD1B-4876-B211-5DBED83BF4B8');
export const VHDX_PARENT_LOCATOR = guid('A8D35F2D-B30B-454D-ABF7-D3D84834AB0C');

export async function inspectVhdx(src: ByteSource): Promise<Inspection> {
  const bad = (message: string): Inspection => ({ format: 'vhdx', virtualSize: null, violations: [{ kind: 'malformed', message }] });
  const table = await src.read(192 * 1024, 64 * 1024);
  if (table.length < 16 || table.toString('latin1', 0, 4) !== 'regi') return bad('VHDX region table missing');
  const count = table.readUInt32LE(8);
  if (count > 2047) return bad(`VHDX region table of ${count} entries`);
  let meta: { offset: number; length: number } | null = null;
  for (let i = 0; i < count && 16 + 32 * (i + 1) <= table.length; i++) {
    const e = table.subarray(16 + 32 * i, 16 + 32 * (i + 1));
    if (e.subarray(0, 16).equals(VHDX_METADATA_REGION)) meta = { offset: u64le(e, 16), length: e.readUInt32LE(24) };
  }
  if (meta === null) return bad('VHDX without a metadata region');
  const mt = await src.read(meta.offset, Math.min(meta.length, 64 * 1024));
  if (mt.length < 32 || mt.toString('latin1', 0, 8) !== 'metadata') return bad('VHDX metadata table missing');
  const entries = mt.readUInt16LE(10);
  const violations: Violation[] = [];
  let virtualSize: number | null = null;
  for (let i = 0; i < entries && 32 + 32 * (i + 1) <= mt.length; i++) {
    const e = mt.subarray(32 + 32 * i, 32 + 32 * (i + 1));
    const id = e.subarray(0, 16);
    const at = meta.offset + e.readUInt32LE(16);
    if (id.equals(VHDX_PARENT_LOCATOR)) violations.push({ kind: 'parent-locator', message: 'VHDX parent locator (a differencing disk names its parent file)' });
    if (id.equals(VHDX_FILE_PARAMETERS)) {
      const p = await src.read(at, 8);
      if (p.length === 8 && (p.readUInt32LE(4) & 2) !== 0) violations.push({ kind: 'differencing', message: 'VHDX differencing disk (has a parent)' });
    }
    if (id.equals(VHDX_VIRTUAL_DISK_SIZE)) {
      const v = await src.read(at, 8);
      if (v.length === 8) virtualSize = u64le(v, 0);
    }
  }
  return { format: 'vhdx', virtualSize, violations };
}
