import { shown, u64le, type ByteSource } from './source.js';
import type { Inspection, Violation } from './types.js';

/**
 * VMDK. Two shapes reach qemu:
 *
 * - a text descriptor ("# Disk DescriptorFile", `createType=`, extent lines
 *   such as `RW 2048 FLAT "/etc/shadow" 0`): every byte of the disk lives in
 *   the files it names, so a descriptor is refused whatever it says;
 * - a hosted sparse extent (magic "KDMV", little-endian): capacity (u64, in
 *   sectors) at 12, descriptor offset and size (u64, sectors) at 28 and 36,
 *   grain directory offset (u64) at 56. It embeds a descriptor, and qemu opens
 *   the extents that descriptor names when the header's capacity is 0 (and a
 *   stream-optimized file's footer header stands in for the header). Only
 *   monolithicSparse and streamOptimized are accepted, with one SPARSE
 *   extent that is a plain file name (the file itself), and a capacity.
 */
export const VMDK_MAGIC = Buffer.from('KDMV', 'latin1');
const GD_AT_END = Infinity; // 0xffffffffffffffff read by u64le
const DESC_MAX = (1 << 20) - 1;

export async function inspectSparseVmdk(src: ByteSource, head: Buffer): Promise<Inspection> {
  const violations: Violation[] = [];
  const bad = (message: string): Inspection => ({ format: 'vmdk', virtualSize: null, violations: [{ kind: 'malformed', message }] });
  if (head.length < 64) return bad('VMDK header truncated');
  const version = head.readUInt32LE(4);
  if (version < 1 || version > 3) return bad(`VMDK version ${version} is not supported`);
  let capacity = u64le(head, 12);
  const descSector = u64le(head, 28);
  const descSectors = u64le(head, 36);
  if (u64le(head, 56) === GD_AT_END) {
    // streamOptimized: the footer (marker, header, end-of-stream marker: the last 1536 bytes) holds the real header.
    if (src.size < 1536 + 512) return bad('VMDK footer missing');
    const footer = await src.read(src.size - 1536, 1536);
    const fh = footer.subarray(512, 1024);
    if (!fh.subarray(0, 4).equals(VMDK_MAGIC)) return bad('VMDK footer without its header');
    if (u64le(fh, 28) !== descSector || u64le(fh, 36) !== descSectors) violations.push({ kind: 'vmdk-descriptor', message: 'VMDK footer names another descriptor than its header' });
    if (u64le(fh, 56) === GD_AT_END) return bad('VMDK footer points to another footer');
    if (capacity === 0) capacity = u64le(fh, 12);
  }
  if (capacity === 0) violations.push({ kind: 'vmdk-extent', message: 'VMDK sparse header without capacity (qemu would open the extents of its descriptor)' });
  if (descSector !== 0) {
    if (descSector !== 1) return bad(`VMDK descriptor at sector ${descSector} (expected 1)`);
    const raw = await src.read(descSector * 512, Math.min(descSectors * 512, DESC_MAX));
    const end = raw.indexOf(0);
    violations.push(...descriptorViolations(raw.subarray(0, end < 0 ? raw.length : end).toString('latin1'), true));
  }
  return { format: 'vmdk', virtualSize: Number.isFinite(capacity) ? capacity * 512 : null, violations };
}

/** The reasons an embedded descriptor is more than the file's own description. */
export function descriptorViolations(text: string, embedded: boolean): Violation[] {
  const out: Violation[] = [];
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  const type = /^createtype\s*=\s*"([^"]{0,64})"/im.exec(text)?.[1] ?? '';
  if (!embedded || !['monolithicsparse', 'streamoptimized'].includes(type.toLowerCase())) {
    out.push({ kind: 'vmdk-descriptor', message: `VMDK descriptor of type ${shown(type)} (only monolithicSparse and streamOptimized files are accepted)` });
  }
  const extents: string[] = [];
  for (const l of lines) {
    if (/^(RW|RDONLY|NOACCESS)\s/i.test(l)) extents.push(l);
    else if (/^ddb\./i.test(l) || /^[A-Za-z][\w.]*\s*=/.test(l)) continue;
    else out.push({ kind: 'vmdk-descriptor', message: `VMDK descriptor line ${shown(l)} not understood` });
  }
  const own = extents.length === 1 ? /^(RW|RDONLY)\s+\d+\s+SPARSE\s+"([^"/\\:]+)"$/i.exec(extents[0] ?? '') : null;
  if (own === null) {
    for (const e of extents) {
      const name = /"([^"]*)"/.exec(e)?.[1] ?? e;
      out.push({ kind: 'vmdk-extent', message: `VMDK extent ${shown(name)}`, reference: name });
    }
    if (extents.length === 0) out.push({ kind: 'vmdk-extent', message: 'VMDK descriptor without an extent' });
  }
  return out;
}

/**
 * A text file qemu would read as a VMDK descriptor: qemu's probe takes a file
 * whose first line that is not a comment is `version=1|2|3`; the header
 * comment every descriptor starts with counts too.
 */
export function looksLikeDescriptor(head: Buffer): boolean {
  const text = head.subarray(0, 4096).toString('latin1');
  if (/^#\s*Disk DescriptorFile/i.test(text)) return true;
  const first = text.split('\n').find((l) => !l.startsWith('#') && l.trim() !== '');
  return first !== undefined && /^\s*version=[123]\r?$/.test(first);
}

export function inspectDescriptor(head: Buffer): Inspection {
  const text = head.toString('latin1');
  const extents = descriptorViolations(text, false).filter((v) => v.kind === 'vmdk-extent');
  return {
    format: 'vmdk',
    virtualSize: null,
    violations: [{ kind: 'vmdk-descriptor', message: 'VMDK descriptor file (its disk is the files it names)' }, ...extents],
  };
}
