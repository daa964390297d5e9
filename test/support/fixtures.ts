import type { DatastoreInfo } from '../../src/messages/datastore-info.js';
import type { Actor } from '../../src/messages/envelope.js';

export const IMAGE_DS: DatastoreInfo = {
  id: 1,
  name: 'default',
  type: 'IMAGE_DS',
  dsMad: 'fs',
  tmMad: 'shared',
  diskType: 'FILE',
  driver: '',
  persistentOnly: false,
  availableMb: null,
  bridgeList: '',
  keepLast: null,
};
export const FILE_DS: DatastoreInfo = { ...IMAGE_DS, id: 2, name: 'files', type: 'FILE_DS' };
export const BACKUP_DS: DatastoreInfo = { ...IMAGE_DS, id: 100, name: 'backups', type: 'BACKUP_DS', dsMad: 'rsync', tmMad: '-' };
export const SYSTEM_DS: DatastoreInfo = { ...IMAGE_DS, id: 0, name: 'system', type: 'SYSTEM_DS', dsMad: '-' };

export const ADMIN: Actor = { uid: 0, gid: 0, name: 'oneadmin', service: 'test' };
export const USER: Actor = { uid: 7, gid: 100, name: 'alice', service: 'test' };

/** 2026-08-20T10:58:25Z, a Thursday: the spec's ctime example. */
export const T0 = Date.UTC(2026, 7, 20, 10, 58, 25);
