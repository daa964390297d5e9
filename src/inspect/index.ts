import { bufferSource, withFile, type ByteSource } from './source.js';
import { inspectQcow2, QCOW_MAGIC } from './qcow2.js';
import { inspectQed, QED_MAGIC } from './qed.js';
import { inspectDescriptor, inspectSparseVmdk, looksLikeDescriptor, VMDK_MAGIC } from './vmdk.js';
import { inspectVhd, inspectVhdx, VHD_MAGIC, VHDX_MAGIC } from './vhd.js';
import { inspectLuks, inspectVdi, isoSize, isVdi, LUKS_MAGIC, OTHER_MAGICS } from './others.js';
import type { ContentFormat, Inspection, Violation } from './types.js';

export type { ContentFormat, Inspection, Violation, ViolationKind } from './types.js';
export { qemuFormat, CONTENT_FORMATS } from './types.js';
export { bufferSource, type ByteSource } from './source.js';

const starts = (head: Buffer, magic: Buffer): boolean => head.length >= magic.length && head.subarray(0, magic.length).equals(magic);

/**
 * The format of an image by its content (the way qemu probes it, never by
 * its name or what a template says), its virtual size, and its violations.
 * Reads the first 512 bytes, then only what the format's header points at.
 */
export async function inspectImage(src: ByteSource): Promise<Inspection> {
  const head = await src.read(0, 512);
  const found = await byMagic(src, head);
  // A file that is an ISO and, at its start, another format reads differently to different tools.
  const iso = await isoSize(src);
  if (iso !== null && found !== null) {
    return { ...found, violations: [...found.violations, { kind: 'malformed', message: `content is both ${found.format} and an ISO 9660 image` }] };
  }
  if (found !== null) return found;
  if (iso !== null) return { format: 'iso', virtualSize: src.size, violations: [] };
  return { format: 'raw', virtualSize: src.size, violations: [] };
}

async function byMagic(src: ByteSource, head: Buffer): Promise<Inspection | null> {
  if (starts(head, QCOW_MAGIC)) return inspectQcow2(src, head);
  if (starts(head, QED_MAGIC)) return inspectQed(src, head);
  if (starts(head, VMDK_MAGIC)) return inspectSparseVmdk(src, head);
  if (starts(head, Buffer.from('COWD', 'latin1'))) return { format: 'vmdk', virtualSize: null, violations: [{ kind: 'unsupported', message: 'VMDK version 3 (COWD) sparse file' }] };
  if (starts(head, VHDX_MAGIC)) return inspectVhdx(src);
  if (starts(head, VHD_MAGIC)) return inspectVhd(head);
  if (starts(head, LUKS_MAGIC)) return inspectLuks(src, head);
  if (isVdi(head)) return inspectVdi(head);
  for (const o of OTHER_MAGICS) {
    if (starts(head, o.magic)) return { format: o.format, virtualSize: null, violations: [{ kind: 'unsupported', message: `${o.format} image (unsupported format)` }] };
  }
  if (looksLikeDescriptor(await src.read(0, 64 * 1024))) return inspectDescriptor(await src.read(0, 64 * 1024));
  return null;
}

/** Inspects a file by bounded reads (the caller made sure it is a regular file). */
export function inspectFile(path: string): Promise<Inspection> {
  return withFile(path, inspectImage);
}

/** Inspects bytes in memory (tests, small uploads). */
export const inspectBuffer = (buf: Buffer): Promise<Inspection> => inspectImage(bufferSource(buf));

/** Format names a template or an image record may use, as the content formats they mean. */
const DECLARED: Readonly<Record<string, readonly ContentFormat[]>> = {
  raw: ['raw', 'iso', 'luks'],
  iso: ['iso', 'raw'],
  luks: ['luks'],
  qcow2: ['qcow2'],
  qed: ['qed'],
  vmdk: ['vmdk'],
  // A fixed VHD is raw data with a footer at its end: qemu probes it as raw, and reads it as vpc when told.
  vpc: ['vhd', 'raw'],
  vhd: ['vhd', 'raw'],
  vhdx: ['vhdx'],
  vdi: ['vdi'],
};

/**
 * When a format was declared (the image's FORMAT, the template's) and the
 * content is another: a raw file claiming qcow2, a qcow2 declared raw (a VM
 * that writes a qcow2 header into its raw disk must not make it one).
 * Names that are no disk format (`save_as`, a dummy driver's) claim nothing.
 */
export function formatMismatch(declared: string, found: Inspection): Violation | null {
  const d = declared.trim().toLowerCase();
  const means = DECLARED[d];
  if (means === undefined || means.includes(found.format)) return null;
  return { kind: 'format-mismatch', message: `content is ${found.format}, declared ${d}` };
}
