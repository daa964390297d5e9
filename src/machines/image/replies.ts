import type { ImageRecord } from '../../messages/image-record.js';
import type { Effect } from '../../messages/effects.js';
import type { ImageEventOf } from './events.js';
import { appendInfo, snapshotsSize } from './record.js';
import { deleteSnapshot, emptySnapshots, findSnapshot, revertSnapshot } from './snapshots.js';
import { incrementsSize, rewriteIncrements } from './increments.js';
import { inFolder } from '../shared/paths.js';

/** What a driver reply that matches the pending request means for the image (§9.2). */
export interface ReplyOutcome {
  /** False for a FAILURE, and for a SUCCESS whose output does not parse (W32). */
  readonly success: boolean;
  /** Data the reply sets; never the state, never `pending`. */
  readonly changes: Partial<ImageRecord>;
  readonly effects: readonly Effect[];
  /** The ERROR text (without timestamp) when the operation failed. */
  readonly message: string | null;
  /** MKFS for save-as keeps the image LOCKED while the VM copies the disk. */
  readonly keepsLock: boolean;
  /** CP, CLONE, MKFS and RM failures end in ERROR; snapshot and increment failures unlock. */
  readonly failureIsError: boolean;
}

const monitor = (r: ImageRecord): Effect => ({ kind: 'datastore.monitor', datastoreId: r.datastore.id });
const quota = (r: ImageRecord, images: number, sizeMb: number): Effect => ({
  kind: 'quota.change',
  uid: r.uid,
  gid: r.gid,
  datastoreId: r.datastore.id,
  images,
  sizeMb,
});
const tokens = (info: string): string[] => info.trim().split(/\s+/).filter((t) => t !== '');
/** W32: "-" or nothing is not a source. */
const validSource = (s: string | undefined): s is string => s !== undefined && s !== '' && s !== '-';
const quoted = (info: string): string => JSON.stringify(info.length > 200 ? `${info.slice(0, 200)}…` : info);

/** Drivers that keep no files print one fixed SOURCE (OpenNebula's dummy): that one only is theirs. */
const FILELESS_SOURCE: Readonly<Record<string, string>> = { dummy: 'dummy_path', 'one-dummy': 'dummy_path' };

/**
 * Why a SOURCE a driver host reported cannot become the image's, or null when
 * it can (#27: a driver host is a driver of its datastore, not an
 * administrator). It must be a file directly in the datastore's own folder
 * and no other live image's file (its SOURCE, an increment, its snapshots):
 * else the image would alias another tenant's disk, and its delete would RM
 * that disk, or a file outside the datastore.
 */
export function refusedSource(r: ImageRecord, ev: ImageEventOf<'driver.reply'>, source: string): string | null {
  if (FILELESS_SOURCE[r.datastore.dsMad] === source) return null;
  const storage = ev.ctx.storage;
  if (storage === null) return `the folder of datastore ${r.datastore.id} is not known`;
  if (!inFolder(storage.folder, source)) return `${quoted(source)} is not a file directly in datastore ${r.datastore.id}'s folder ${storage.folder}`;
  const owner = storage.claimed[source];
  if (owner !== undefined && owner !== r.id) return `${quoted(source)} is a file of image ${owner}`;
  return null;
}
const sourceRefused = (action: string, why: string): string => `${action} operation succeeded but its SOURCE was refused: ${why}`;

function releaseOrigin(r: ImageRecord): Effect[] {
  return r.cloningId >= 0
    ? [{ kind: 'image.releaseCloneSource', originId: r.cloningId, clone: { kind: 'image', id: r.id } }]
    : [];
}

function flattenDone(r: ImageRecord): Effect[] {
  const vm = r.vms[0];
  return vm === undefined ? [] : [{ kind: 'vm.flattenDone', vmId: vm, imageId: r.id }];
}

function saveAsCleared(r: ImageRecord): Effect[] {
  return r.saveAs ? [{ kind: 'vm.saveAsCleared', vmId: r.saveAs.vmId, diskId: r.saveAs.diskId, imageId: r.id }] : [];
}

const failed = (message: string, changes: Partial<ImageRecord>, effects: Effect[], failureIsError: boolean): ReplyOutcome => ({
  success: false,
  changes,
  effects,
  message,
  keepsLock: false,
  failureIsError,
});
const succeeded = (changes: Partial<ImageRecord>, effects: Effect[], keepsLock = false): ReplyOutcome => ({
  success: true,
  changes,
  effects,
  message: null,
  keepsLock,
  failureIsError: true,
});

/** Interprets a reply already known to match the image's pending request. */
export function interpretReply(r: ImageRecord, ev: ImageEventOf<'driver.reply'>): ReplyOutcome {
  const ok = ev.result === 'SUCCESS';
  const info = ev.info;
  switch (ev.action) {
    case 'CP': {
      const [source, format] = tokens(info);
      if (!ok) return failed(appendInfo('Error copying image in the datastore', info), {}, [monitor(r)], true);
      if (!validSource(source)) return failed(`CP operation succeeded but returned no SOURCE: ${quoted(info)}`, {}, [monitor(r)], true);
      // W32: nothing is applied when the format is missing.
      if (format === undefined) return failed('CP operation succeeded but image FORMAT was not returned.', {}, [monitor(r)], true);
      const refused = refusedSource(r, ev, source);
      if (refused !== null) return failed(sourceRefused('CP', refused), {}, [monitor(r)], true);
      return succeeded({ source, format }, [monitor(r)]);
    }
    case 'CLONE': {
      const [source, format] = tokens(info);
      const common = { cloningId: -1 };
      if (!ok) return failed(appendInfo(`Error cloning from Image ${r.cloningId}`, info), common, releaseOrigin(r), true);
      if (!validSource(source)) {
        return failed(`CLONE operation succeeded but returned no SOURCE: ${quoted(info)}`, common, releaseOrigin(r), true);
      }
      const refused = refusedSource(r, ev, source);
      if (refused !== null) return failed(sourceRefused('CLONE', refused), common, releaseOrigin(r), true);
      return succeeded({ ...common, source, ...(format !== undefined ? { format } : {}) }, [...releaseOrigin(r), monitor(r)]);
    }
    case 'MKFS': {
      const source = info.trim();
      if (!ok || !validSource(source)) {
        const msg = ok ? `MKFS operation succeeded but returned no SOURCE: ${quoted(info)}` : appendInfo('Error creating datablock', info);
        return failed(msg, r.saveAs ? { saveAs: null } : {}, [...saveAsCleared(r), monitor(r)], true);
      }
      const refused = refusedSource(r, ev, source);
      if (refused !== null) return failed(sourceRefused('MKFS', refused), r.saveAs ? { saveAs: null } : {}, [...saveAsCleared(r), monitor(r)], true);
      if (r.saveAs) {
        // W34: the VM disk's format was validated at allocation, so the transfer can start safely.
        const transfer: Effect = { kind: 'vm.saveAsTransfer', vmId: r.saveAs.vmId, diskId: r.saveAs.diskId, imageId: r.id, source };
        return succeeded(
          { source, format: r.saveAs.diskFormat, saveAs: { ...r.saveAs, transferring: true } },
          [transfer, monitor(r)],
          true,
        );
      }
      return succeeded({ source }, [monitor(r)]);
    }
    case 'RM': {
      if (ok || r.deleting?.force === true) return succeeded({}, []);
      // W3: the message names the source and keeps the driver's words.
      const msg = `Error removing image from datastore. Retry the operation or manually remove image source ${r.source} and run the delete --force operation to completely delete the image`;
      return failed(appendInfo(msg, info), {}, [], true);
    }
    case 'SNAP_DELETE': {
      const sid = r.targetSnapshot;
      if (!ok) return failed(appendInfo(`Error removing snapshot ${sid} from image ${r.id}`, info), { targetSnapshot: -1 }, [], false);
      const snap = findSnapshot(r.snapshots, sid);
      return succeeded(
        { targetSnapshot: -1, snapshots: deleteSnapshot(r.snapshots, sid) },
        snap ? [quota(r, 0, -snap.size)] : [],
      );
    }
    case 'SNAP_REVERT': {
      const sid = r.targetSnapshot;
      if (!ok) return failed(appendInfo(`Error reverting image ${r.id} to snapshot ${sid}`, info), { targetSnapshot: -1 }, [], false);
      const snap = findSnapshot(r.snapshots, sid);
      if (snap === undefined) return succeeded({ targetSnapshot: -1 }, []);
      const { list, droppedMb } = revertSnapshot(r.snapshots, sid);
      const released = r.size - snap.size + droppedMb;
      return succeeded(
        { targetSnapshot: -1, snapshots: list, size: snap.size },
        released !== 0 ? [quota(r, 0, -released)] : [],
      );
    }
    case 'SNAP_FLATTEN': {
      if (!ok) return failed(appendInfo('Error flattening image snapshot', info), { targetSnapshot: -1 }, [], false);
      // W29: the image takes the flattened snapshot's size (or the size the driver reports).
      const reported = /^\s*(\d+)\s*$/.exec(info)?.[1];
      const size = reported !== undefined ? Number(reported) : (findSnapshot(r.snapshots, r.targetSnapshot)?.size ?? r.size);
      const total = snapshotsSize(r);
      return succeeded(
        { targetSnapshot: -1, snapshots: emptySnapshots(r.snapshots), size },
        total !== 0 ? [quota(r, 0, -total)] : [],
      );
    }
    case 'INCREMENT_FLATTEN': {
      if (!ok) return failed(appendInfo('Error flattening backup increments', info), {}, flattenDone(r), false);
      const rw = rewriteIncrements(r.increments, info);
      if (!rw.ok) return failed(appendInfo('Error flattening backup increments', rw.reason), {}, flattenDone(r), false);
      const size = incrementsSize(rw.increments);
      return succeeded(
        { increments: rw.increments, size },
        [...(r.size !== size ? [quota(r, 0, size - r.size)] : []), ...flattenDone(r)],
      );
    }
    case 'BACKUP':
    case 'RESTORE':
      // A pending request is never one of these: their replies answer a job (jobs.ts).
      throw new Error(`${ev.action} reply interpreted as a pending operation`);
  }
}

/** Effects owed when the pending operation ends without a reply (W1, W16, §7.10). */
export function abandonedOperationEffects(r: ImageRecord): Effect[] {
  switch (r.pending?.action) {
    case 'CLONE':
      return releaseOrigin(r);
    case 'INCREMENT_FLATTEN':
      return flattenDone(r);
    case 'MKFS':
      return saveAsCleared(r);
    default:
      return [];
  }
}

/** D3: what dropping the image record owes to the datastore, the quotas and the VM. */
export function removalEffects(r: ImageRecord): Effect[] {
  const vm = r.vms[0];
  return [
    { kind: 'datastore.imageRemoved', datastoreId: r.datastore.id, imageId: r.id },
    quota(r, -1, -(r.size + snapshotsSize(r))),
    ...(r.type === 'BACKUP' && vm !== undefined ? [{ kind: 'vm.backupRemoved' as const, vmId: vm, imageId: r.id }] : []),
    ...saveAsCleared(r),
    monitor(r),
  ];
}

export { saveAsCleared as saveAsClearedEffects };
