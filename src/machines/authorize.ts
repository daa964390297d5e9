import { isAdmin } from '../messages/envelope.js';
import type { Rejection } from '../messages/errors.js';
import { rejection } from '../messages/errors.js';
import type { ImageCommand } from '../messages/image-commands.js';
import type { DatastoreCommand } from '../messages/datastore.js';
import type { ImageRecord } from '../messages/image-record.js';
import type { Meta } from './image/events.js';

/**
 * OpenNebula's model for who may do what, at least for ownership: USE needs
 * the owner, a member of the owner's group or an administrator; MANAGE the
 * owner or an administrator; ADMIN an administrator (the oneadmin group).
 * The actor is the authenticated principal (or the user a delegating
 * principal vouched for); imgr's own commands act as the administrator.
 * VM bookkeeping also needs the VM service's grant (VM_BOOKKEEPING).
 */
export type Access = 'USE' | 'MANAGE' | 'ADMIN';

/** What each image command needs of the image it names (absent: nothing beyond the machine's own rules). */
const IMAGE_ACCESS: Partial<Record<ImageCommand['type'], Access>> = {
  'image.acquire': 'USE',
  'image.release': 'USE',
  'image.cloneStart': 'USE',
  'image.cloneFinish': 'USE',
  'image.setSize': 'USE',
  'image.setSnapshots': 'USE',
  'image.saveAsDone': 'USE',
  'image.delete': 'MANAGE',
  'image.enable': 'MANAGE',
  'image.disable': 'MANAGE',
  'image.setPersistent': 'MANAGE',
  'image.chtype': 'MANAGE',
  'image.snapshotDelete': 'MANAGE',
  'image.snapshotRevert': 'MANAGE',
  'image.snapshotFlatten': 'MANAGE',
  'image.backup': 'MANAGE',
  'image.restore': 'MANAGE',
  'image.flattenIncrements': 'ADMIN',
  'image.addIncrement': 'ADMIN',
  'image.allocateBackup': 'ADMIN',
};

/**
 * VM bookkeeping: the commands that tell imgr what a VM does with an image
 * (holds it, lets it go, its disk's size and snapshots, a disk saved as a
 * new image). In OpenNebula only oned sends them, never a user; here a
 * principal with the VM service's grant (`vmService`), acting for the VM's
 * owner, or an administrator. The image keeps only the ids of its VMs, not
 * who acquired for them; since acquiring needs the grant too, whoever
 * acquired for a VM is a VM service, and one rule covers both.
 */
export const VM_BOOKKEEPING: ReadonlySet<ImageCommand['type']> = new Set<ImageCommand['type']>([
  'image.acquire',
  'image.release',
  'image.setSize',
  'image.setSnapshots',
  'image.saveAsDone',
  'image.allocateSaveAs',
]);

/** The VM service's grant, from the authenticated principal (the intake sets it), or an administrator. */
export const mayKeepVmBooks = (actor: Meta['actor']): boolean => isAdmin(actor) || actor.vmService === true;

const DATASTORE_ACCESS: Partial<Record<DatastoreCommand['type'], Access>> = {
  'datastore.create': 'ADMIN',
  'datastore.delete': 'ADMIN',
  'datastore.enable': 'ADMIN',
  'datastore.disable': 'ADMIN',
  'datastore.monitored': 'ADMIN',
};

export function allows(access: Access, actor: Meta['actor'], owner: { uid: number; gid: number }): boolean {
  if (isAdmin(actor)) return true;
  if (access === 'ADMIN') return false;
  if (actor.uid === owner.uid) return true;
  return access === 'USE' && actor.gid === owner.gid;
}

const denied = (actor: Meta['actor'], access: Access, object: 'IMAGE' | 'DATASTORE', id: number): Rejection =>
  rejection('AUTH_ERR_NOT_AUTHORIZED', { uid: actor.uid, access, object, id });

/**
 * Refuses an image command its actor may not perform on the image (which
 * exists: a missing or deleted one is the machine's to refuse), or on the
 * origin it clones.
 */
export function authorizeImage(
  command: ImageCommand,
  record: ImageRecord | null,
  meta: Meta,
  origin: { id: number; uid: number; gid: number } | null,
): Rejection | null {
  if (VM_BOOKKEEPING.has(command.type) && !mayKeepVmBooks(meta.actor)) {
    return rejection('AUTH_ERR_VM_SERVICE', { uid: meta.actor.uid, type: command.type, id: command.imageId, principal: meta.actor.service });
  }
  const access = IMAGE_ACCESS[command.type];
  if (access !== undefined && record !== null && !allows(access, meta.actor, record)) return denied(meta.actor, access, 'IMAGE', record.id);
  if (command.type === 'image.allocate' && command.skipCapacityCheck && !isAdmin(meta.actor)) return rejection('AUTH_ERR_SKIP_CAPACITY', { uid: meta.actor.uid });
  if (command.type === 'image.clone' && origin !== null && !allows('USE', meta.actor, origin)) return denied(meta.actor, 'USE', 'IMAGE', origin.id);
  return null;
}

/** Refuses a datastore command that needs an administrator, and skipping the capacity check for anybody else. */
export function authorizeDatastore(command: DatastoreCommand, meta: Meta): Rejection | null {
  const access = DATASTORE_ACCESS[command.type];
  if (access !== undefined && !allows(access, meta.actor, { uid: -1, gid: -1 })) return denied(meta.actor, access, 'DATASTORE', command.datastoreId);
  if (command.type === 'datastore.reserve' && command.skipCapacityCheck && !isAdmin(meta.actor)) return rejection('AUTH_ERR_SKIP_CAPACITY', { uid: meta.actor.uid });
  return null;
}
