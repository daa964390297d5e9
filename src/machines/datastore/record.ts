import type { DatastoreRecord } from '../../messages/datastore.js';

export function emptyDatastore(id: number): DatastoreRecord {
  return {
    id,
    name: '',
    uid: -1,
    gid: -1,
    uname: '',
    type: 'IMAGE_DS',
    dsMad: '',
    tmMad: '',
    basePath: '',
    diskType: 'FILE',
    totalMb: 0,
    freeMb: 0,
    usedMb: 0,
    monitoredAt: null,
    monitorError: null,
    persistentOnly: false,
    template: {},
  };
}
