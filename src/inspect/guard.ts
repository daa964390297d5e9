import { realpath, stat } from 'node:fs/promises';
import { dirname, isAbsolute, relative, resolve, sep } from 'node:path';
import { formatMismatch, inspectFile } from './index.js';
import type { Inspection, Violation } from './types.js';

export interface ImageCheck {
  /** The format the image record, the template or the driver's answer declares ('' when none). */
  readonly declared?: string;
  /**
   * The image's own snapshot folder (`<SOURCE>.snap`), the one place whose
   * files its qcow2 backing chain may name. Absent: no backing file at all.
   */
  readonly snapshots?: string;
}

export interface ImageVerdict {
  /** The refusal, driver-style (`Image <path> refused: <reasons> (images are data, never references)`), or null. */
  readonly refusal: string | null;
  /** What the file is; null when there was no regular file to inspect. */
  readonly inspection: Inspection | null;
}

const MAX_CHAIN = 32;

/**
 * The one check every image file a client supplied or could have written
 * passes before any tool opens it: a local PATH to copy or size, a download
 * once staged, an image's SOURCE before a clone, a snapshot operation, a
 * backup or a conversion, a restored disk. A file that is not there is no
 * one's to open (the driver reports it); a folder is not an image; anything
 * else that is not a regular file (a FIFO, a device) is refused.
 *
 * Images are data, never references. The only references allowed are imgr's
 * own: OpenNebula's snapshot layout keeps an image's snapshots as qcow2
 * files in `<SOURCE>.snap/`, each backed by an earlier one of the same
 * folder (a revert makes the active one an overlay of its target). So a
 * qcow2 backing file is allowed when, resolved the way qemu resolves it
 * (relative to the folder of the file that names it) and with every symbolic
 * link followed, it is a file inside that image's own `.snap` folder, given
 * by name (no `json:` or other protocol), and is itself allowed by the same
 * rule (the whole chain, at most 32 files, no loop). Nothing else: no data
 * file, no extent, no parent of a differencing disk, no backing file
 * anywhere else, whoever made it.
 */
export async function checkImageFile(path: string, o: ImageCheck = {}): Promise<ImageVerdict> {
  const verdict = (reasons: string[], inspection: Inspection | null): ImageVerdict => ({
    refusal: reasons.length === 0 ? null : `Image ${path} refused: ${reasons.join('; ')} (images are data, never references)`,
    inspection,
  });
  let st;
  try {
    st = await stat(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return verdict([], null);
    return verdict([`cannot inspect it (${(e as NodeJS.ErrnoException).code ?? String(e)})`], null);
  }
  if (st.isDirectory()) return verdict([], null);
  if (!st.isFile()) return verdict(['not a regular file'], null);
  let inspection: Inspection;
  try {
    inspection = await inspectFile(path);
  } catch (e) {
    return verdict([`cannot inspect it (${(e as NodeJS.ErrnoException).code ?? String(e)})`], null);
  }
  const mismatch = o.declared !== undefined ? formatMismatch(o.declared, inspection) : null;
  const reasons = await unallowed(path, inspection, o.snapshots, new Set(), 0);
  return verdict([...(mismatch ? [mismatch.message] : []), ...reasons], inspection);
}

async function unallowed(path: string, found: Inspection, snapshots: string | undefined, seen: Set<string>, depth: number): Promise<string[]> {
  const reasons: string[] = [];
  for (const v of found.violations) {
    const why = v.kind === 'backing-file' && found.format === 'qcow2' && snapshots !== undefined ? await backingRefusal(path, v, snapshots, seen, depth) : v.message;
    if (why !== null) reasons.push(why);
  }
  return reasons;
}

/** Why a qcow2 backing file is not the image's own snapshot (null when it is, with its whole chain). */
async function backingRefusal(path: string, v: Violation, snapshots: string, seen: Set<string>, depth: number): Promise<string | null> {
  const name = v.reference ?? '';
  // qemu reads "<protocol>:…" before the first slash as a protocol (json:, nbd:, http:), not a file.
  if (name === '' || /^[^/]*:/.test(name) || depth >= MAX_CHAIN) return v.message;
  let target: string;
  let folder: string;
  try {
    target = await realpath(isAbsolute(name) ? name : resolve(dirname(path), name));
    folder = await realpath(snapshots);
  } catch {
    return v.message;
  }
  const rel = relative(folder, target);
  if (rel === '' || rel.startsWith('..') || isAbsolute(rel) || rel.split(sep).includes('..') || seen.has(target)) return v.message;
  const st = await stat(target).catch(() => null);
  if (!st?.isFile()) return v.message;
  seen.add(target);
  const inspected = await inspectFile(target).catch(() => null);
  if (inspected === null) return v.message;
  const next = await unallowed(target, inspected, snapshots, seen, depth + 1);
  return next.length === 0 ? null : `${v.message}: ${next.join('; ')}`;
}
