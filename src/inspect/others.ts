import { u64le, type ByteSource } from './source.js';
import type { Inspection } from './types.js';

/** VDI: signature 0xbeda107f (u32 LE) at 0x40, image type (u32) at 0x4c (3 undo, 4 differencing), disk size (u64) at 0x170. */
export const isVdi = (head: Buffer): boolean => head.length >= 0x178 && head.readUInt32LE(0x40) === 0xbeda107f;
export function inspectVdi(head: Buffer): Inspection {
  const type = head.readUInt32LE(0x4c);
  return {
    format: 'vdi',
    virtualSize: u64le(head, 0x170),
    violations: type === 3 || type === 4 ? [{ kind: 'differencing', message: `VDI ${type === 3 ? 'undo' : 'differencing'} image (its parent is another file)` }] : [],
  };
}

/** LUKS: "LUKS\xba\xbe"; version 1 gives the payload offset (u32 BE, sectors) at 104. An encrypted container names no file. */
export const LUKS_MAGIC = Buffer.from('LUKS\xba\xbe', 'latin1');
export function inspectLuks(src: ByteSource, head: Buffer): Inspection {
  const v1 = head.length >= 108 && head.readUInt16BE(6) === 1;
  const payload = v1 ? head.readUInt32BE(104) * 512 : null;
  return { format: 'luks', virtualSize: payload !== null && payload <= src.size ? src.size - payload : null, violations: [] };
}

/**
 * ISO 9660: "CD001" at 0x8001, the volume's block count (u32 LE) at 0x8050
 * and block size (u16 LE) at 0x8080. qemu reads an ISO as raw.
 */
export async function isoSize(src: ByteSource): Promise<number | null> {
  const pvd = await src.read(0x8000, 0x88);
  if (pvd.length < 0x82 || pvd.toString('latin1', 1, 6) !== 'CD001') return null;
  return pvd.readUInt32LE(0x50) * pvd.readUInt16LE(0x80);
}

/** Formats qemu recognises that imgr's drivers never read: named, so that no tool is asked to guess them. */
export const OTHER_MAGICS: readonly { readonly format: 'bochs' | 'cloop' | 'parallels'; readonly magic: Buffer }[] = [
  { format: 'bochs', magic: Buffer.from('Bochs Virtual HD Image', 'latin1') },
  { format: 'cloop', magic: Buffer.from('#!/bin/sh\n#V2.0 Format\n', 'latin1') },
  { format: 'parallels', magic: Buffer.from('WithoutFreeSpace', 'latin1') },
  { format: 'parallels', magic: Buffer.from('WithouFreSpacExt', 'latin1') },
];
