import { rm } from 'node:fs/promises';
import { isAbsolute, relative, resolve } from 'node:path';
import type { DriverRequest } from '../messages/wire.js';
import { checkImageFile, type ImageCheck } from '../inspect/guard.js';
import { qemuFormat } from '../inspect/index.js';
import { restoredDisks } from '../machines/image/jobs.js';

/**
 * Image files are data, never references (issue 27, design principle 8).
 * Before a driver action runs, every image file it will open that a client
 * supplied or could have written is inspected (src/inspect): a local PATH to
 * copy or size (a downloaded URL is one once staged), the origin's SOURCE a
 * clone copies or converts, an image's SOURCE and target snapshot before a
 * snapshot operation (a VM writing its persistent disk can write any header
 * into it), the disk a backup reads. After the action, what it made from such
 * a file is inspected again (a CP's or CLONE's new SOURCE, against the format
 * it reported; a RESTORE's disks), so a file changed between the two checks
 * is still refused. A refusal is the action's FAILURE, worded as a driver's:
 * `Image <file> refused: <reasons> (images are data, never references)`; the
 * image goes to ERROR (or the command is refused) by the usual flows, and a
 * file the action had made from it is removed.
 */
interface FileToCheck extends ImageCheck {
  readonly path: string;
}

const localOf = (p: string): string | null => {
  const l = p.startsWith('file://') ? p.slice('file://'.length) : p;
  return l.startsWith('/') ? l : null;
};
/** The image's own snapshot folder: the one place its qcow2 backing chain may point into (guard.ts). */
const snapshotsOf = (source: string): string => `${source}.snap`;

/** The files an action will open that are a client's data, each with the format declared for it. */
export function filesBefore(req: DriverRequest): FileToCheck[] {
  const image = req.image;
  const files: FileToCheck[] = [];
  const add = (path: string | null, declared: string, snapshots?: string): void => {
    if (path !== null) files.push({ path, declared, ...(snapshots !== undefined ? { snapshots } : {}) });
  };
  switch (req.action) {
    case 'CP':
    case 'STAT':
      // A registration declares its format in the template (FORMAT); the record has it once known.
      if (image) add(localOf(image.path), image.format !== '' ? image.format : (image.template['FORMAT'] ?? ''));
      break;
    case 'CLONE': {
      // PATH is the origin's SOURCE, FORMAT the origin's format (driver-contract §4).
      const origin = image ? localOf(image.path) : null;
      if (image && origin !== null) add(origin, image.format, snapshotsOf(origin));
      break;
    }
    case 'SNAP_DELETE':
    case 'SNAP_REVERT':
    case 'SNAP_FLATTEN': {
      const source = image ? localOf(image.source) : null;
      if (image && source !== null) {
        add(source, image.format, snapshotsOf(source));
        // OpenNebula's layout: the target snapshot is <SOURCE>.snap/<id>, which a revert or a flatten reads.
        if (image.targetSnapshot >= 0) add(`${snapshotsOf(source)}/${image.targetSnapshot}`, '', snapshotsOf(source));
      }
      break;
    }
    case 'BACKUP': {
      const disk = localOf(req.extra['DISK_SOURCE'] ?? '');
      if (disk !== null) add(disk, req.extra['DISK_FORMAT'] ?? '', snapshotsOf(disk));
      break;
    }
    default:
      break;
  }
  return files;
}

export interface BeforeAction {
  /** Null when every file passed. */
  readonly refusal: string | null;
  /** For imgr's drivers: the format of the PATH (a CP's, a STAT's, a clone's origin) the host inspected, as qemu-img -f names it (IMGR_IMAGE_PATH_FORMAT). */
  readonly env: Readonly<Record<string, string>>;
}

/** Inspects what the action will open; the first refusal stops it. */
export async function inspectBefore(req: DriverRequest): Promise<BeforeAction> {
  const env: Record<string, string> = {};
  for (const f of filesBefore(req)) {
    const v = await checkImageFile(f.path, f);
    if (v.refusal !== null) return { refusal: v.refusal, env };
    if (v.inspection && (req.action === 'CP' || req.action === 'STAT' || req.action === 'CLONE') && f.path === localOf(req.image?.path ?? '')) {
      env['IMGR_IMAGE_PATH_FORMAT'] = qemuFormat(v.inspection.format);
    }
  }
  return { refusal: null, env };
}

const inside = (file: string, folder: string): boolean => {
  const rel = relative(resolve(folder), resolve(file));
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel);
};

/**
 * After a successful action: what it made from a client's file, inspected
 * in its turn (the new SOURCE of a CP or a CLONE, declared with the format the
 * driver reported; the disks a RESTORE staged). On a refusal the files are
 * removed when they are the datastore's (inside its BASE_PATH), since no
 * image will own them, and the refusal is returned.
 */
export async function inspectAfter(req: DriverRequest, info: string): Promise<string | null> {
  const made: FileToCheck[] = [];
  const tokens = info.trim().split(/\s+/);
  if (req.action === 'CP' || req.action === 'CLONE') {
    const source = localOf(tokens[0] ?? '');
    const declared = tokens[1] ?? (req.action === 'CLONE' ? (req.image?.format ?? '') : '');
    if (source !== null) made.push({ path: source, declared });
  } else if (req.action === 'RESTORE') {
    for (const d of restoredDisks(info) ?? []) made.push({ path: d.file, declared: '' });
  }
  for (const f of made) {
    const v = await checkImageFile(f.path, f);
    if (v.refusal === null) continue;
    for (const g of made) if (inside(g.path, req.datastore.basePath)) await rm(g.path, { force: true });
    return v.refusal;
  }
  return null;
}
