import { shown, u64be, type ByteSource } from './source.js';
import type { Inspection, Violation } from './types.js';

/**
 * qcow2 (and its ancestor qcow v1), big-endian:
 *
 *   0  magic "QFI\xfb"          4  version             8  backing file offset (u64)
 *  16  backing file name size  20  cluster bits        24  virtual size (u64)
 *  72  incompatible features (v3, u64)                 100  header length (v3)
 *
 * Header extensions follow the header (v2: at 72; v3: at the header length),
 * each `type (u32) length (u32) data` padded to 8, ending with type 0.
 * What makes a qcow2 a reference rather than data: a backing file name (at
 * its offset), the external data file bit (incompatible bit 2) and the
 * external data file name extension. Incompatible bits imgr does not know
 * change how qemu reads the file: refused too.
 */
export const QCOW_MAGIC = Buffer.from('QFI\xfb', 'latin1');

const EXT_END = 0;
const EXT_DATA_FILE = 0x44415441;

/** dirty (0), corrupt (1), external data file (2), compression type (3), extended L2 (4). */
const INCOMPAT_DATA_FILE = 1n << 2n;
const INCOMPAT_KNOWN = 0b11111n;

export async function inspectQcow2(src: ByteSource, head: Buffer): Promise<Inspection> {
  const violations: Violation[] = [];
  const bad = (message: string): Inspection => ({ format: 'qcow2', virtualSize: null, violations: [{ kind: 'malformed', message }] });
  if (head.length < 72) return bad('qcow2 header truncated');
  const version = head.readUInt32BE(4);
  if (version === 1) {
    return { format: 'qcow', virtualSize: u64be(head, 24), violations: [{ kind: 'unsupported', message: 'qcow version 1 image (unsupported format)' }] };
  }
  if (version !== 2 && version !== 3) return bad(`qcow2 version ${version} is not supported`);
  const clusterBits = head.readUInt32BE(20);
  if (clusterBits < 9 || clusterBits > 21) return bad(`qcow2 cluster bits ${clusterBits} out of range`);
  const clusterSize = 2 ** clusterBits;
  const virtualSize = u64be(head, 24);

  const backingOffset = u64be(head, 8);
  const backingSize = head.readUInt32BE(16);
  if (backingOffset !== 0) {
    // qemu reads at most 1023 bytes of name; a name it cannot read is still a backing file.
    const name = backingOffset < src.size && backingSize > 0 ? (await src.read(backingOffset, Math.min(backingSize, 1023))).toString('utf8') : '';
    violations.push({ kind: 'backing-file', message: `qcow2 backing file ${shown(name)}`, reference: name });
  }

  let incompatible = 0n;
  let headerLength = 72;
  if (version === 3) {
    if (head.length < 104) return bad('qcow2 v3 header truncated');
    incompatible = head.readBigUInt64BE(72);
    headerLength = head.readUInt32BE(100);
    if (headerLength < 104 || headerLength > clusterSize) return bad(`qcow2 header length ${headerLength} out of range`);
  }
  if (incompatible & INCOMPAT_DATA_FILE) violations.push({ kind: 'data-file', message: 'qcow2 external data file (incompatible feature bit)' });
  const unknown = incompatible & ~INCOMPAT_KNOWN;
  if (unknown !== 0n) violations.push({ kind: 'unknown-features', message: `qcow2 unknown incompatible features 0x${unknown.toString(16)}` });

  // Header extensions live in the first cluster.
  const area = await src.read(0, Math.min(clusterSize, 1 << 20));
  let at = headerLength;
  for (let n = 0; n < 256 && at + 8 <= area.length; n++) {
    const type = area.readUInt32BE(at);
    const length = area.readUInt32BE(at + 4);
    if (type === EXT_END) break;
    const data = area.subarray(at + 8, Math.min(at + 8 + length, area.length));
    if (type === EXT_DATA_FILE) {
      const name = data.toString('utf8');
      violations.push({ kind: 'data-file', message: `qcow2 external data file ${shown(name)}`, reference: name });
    }
    at += 8 + Math.ceil(length / 8) * 8;
  }
  return { format: 'qcow2', virtualSize, violations };
}
