import { fileURLToPath } from 'node:url';
import type { DriverRequest } from '../../src/messages/wire.js';
import type { ImageView } from '../../src/messages/image-record.js';
import type { DatastoreView } from '../../src/messages/datastore.js';
import type { DriverAction } from '../../src/messages/driver.js';
import { emptyImage } from '../../src/machines/image/record.js';
import { emptyDatastore } from '../../src/machines/datastore/record.js';
import { runAction, type ActionResult } from '../../src/driver-host/driver-host.js';
import { systemClock } from '../../src/platform/clock.js';

export const DRIVERS_DIR = fileURLToPath(new URL('../../drivers', import.meta.url));

export const datastoreView = (basePath: string, o: Partial<DatastoreView> = {}): DatastoreView => ({
  ...emptyDatastore(100),
  name: 'files',
  dsMad: 'fs',
  tmMad: 'shared',
  basePath,
  template: { SAFE_DIRS: '/tmp /var/tmp', RESTRICTED_DIRS: '/' },
  state: 'READY',
  ...o,
});

export const imageView = (o: Partial<ImageView> = {}): ImageView => ({ ...emptyImage(7), name: 'disk', state: 'LOCKED', ...o });

let requests = 0;

/** Runs one driver action exactly as the driver host would; each call is a request of its own. */
export function act(
  action: DriverAction,
  ds: DatastoreView,
  image: ImageView | null,
  o: { extra?: Record<string, string>; timeoutMs?: number; driversDir?: string; requestId?: string } = {},
): Promise<ActionResult> {
  return runAction(requestFor(action, ds, image, o), { driversDir: o.driversDir ?? DRIVERS_DIR, graceMs: 500, maxStdoutBytes: 64 * 1024 }, systemClock);
}

/** The request the driver host would receive for one action. */
export function requestFor(
  action: DriverAction,
  ds: DatastoreView,
  image: ImageView | null,
  o: { extra?: Record<string, string>; timeoutMs?: number; requestId?: string } = {},
): DriverRequest {
  return {
    requestId: o.requestId ?? `t-${action}-${++requests}`,
    action,
    imageId: image?.id ?? -1,
    datastoreId: ds.id,
    deadline: Date.now() + (o.timeoutMs ?? 60_000),
    extra: o.extra ?? {},
    image,
    datastore: ds,
    seq: 1,
  };
}
