import { shown, u64le, type ByteSource } from './source.js';
import type { Inspection, Violation } from './types.js';

/**
 * QED, little-endian: magic "QED\0", features (u64) at 16 (bit 0: a backing
 * file), virtual size (u64) at 48, backing file name offset and size (u32)
 * at 56 and 60.
 */
export const QED_MAGIC = Buffer.from('QED\0', 'latin1');
const F_BACKING_FILE = 1n;

export async function inspectQed(src: ByteSource, head: Buffer): Promise<Inspection> {
  if (head.length < 64) return { format: 'qed', virtualSize: null, violations: [{ kind: 'malformed', message: 'QED header truncated' }] };
  const violations: Violation[] = [];
  const features = head.readBigUInt64LE(16);
  const offset = head.readUInt32LE(56);
  const size = head.readUInt32LE(60);
  if (features & F_BACKING_FILE || offset !== 0) {
    const name = offset > 0 && size > 0 ? (await src.read(offset, Math.min(size, 1023))).toString('utf8') : '';
    violations.push({ kind: 'backing-file', message: `QED backing file ${shown(name)}`, reference: name });
  }
  if (features & ~0b111n) violations.push({ kind: 'unknown-features', message: `QED unknown features 0x${(features & ~0b111n).toString(16)}` });
  return { format: 'qed', virtualSize: u64le(head, 48), violations };
}
