import type { ImageCommand, ImageCommandType } from '../../messages/image-commands.js';
import type { Actor } from '../../messages/envelope.js';
import type { DatastoreInfo, ImageDefaults } from '../../messages/datastore-info.js';
import type { ImageView } from '../../messages/image-record.js';
import type { DriverAction } from '../../messages/driver.js';
import { DEFAULT_DRIVER_TIMEOUTS } from '../../messages/driver.js';
import { DEFAULT_IMAGE_DEFAULTS } from '../../messages/datastore-info.js';

/** Identity and time of the command, from its envelope. */
export interface Meta {
  readonly commandId: string;
  readonly at: number;
  readonly actor: Actor;
}

/**
 * What the aggregate host knows from elsewhere and passes along, so that a
 * decision never performs I/O: the datastore(s), the clone origin, the owner's
 * name index, the STAT result, configuration defaults and the timeout policy.
 */
export interface DecisionContext {
  readonly datastore: DatastoreInfo | null;
  readonly originDatastore: DatastoreInfo | null;
  readonly origin: ImageView | null;
  readonly nameTakenBy: number | null;
  readonly statSizeMb: number | null;
  /** Why the STAT the host ran for a PATH failed (W12), null when it did not fail. */
  readonly statFailure: string | null;
  readonly vmBackupActive: boolean;
  /** Ids the host took from the counter for the images a RESTORE reply creates, in disk order. */
  readonly newImageIds: readonly number[];
  /**
   * For a driver reply: the folder of the image's datastore (its BASE_PATH),
   * and, of the paths the reply names, each that another live image of that
   * datastore names (its SOURCE, an increment's, or its snapshot folder
   * `<SOURCE>.snap`), with that image's id. Null when the host knows no
   * folder (the datastore is gone): no file a driver reports is taken then.
   */
  readonly storage: StorageContext | null;
  readonly defaults: ImageDefaults;
  readonly timeouts: Readonly<Record<DriverAction, number>>;
}

export interface StorageContext {
  readonly folder: string;
  readonly claimed: Readonly<Record<string, number>>;
}

export const decisionContext = (over: Partial<DecisionContext> = {}): DecisionContext => ({
  datastore: null,
  originDatastore: null,
  origin: null,
  nameTakenBy: null,
  statSizeMb: null,
  statFailure: null,
  vmBackupActive: false,
  newImageIds: [],
  storage: null,
  defaults: DEFAULT_IMAGE_DEFAULTS,
  timeouts: DEFAULT_DRIVER_TIMEOUTS,
  ...over,
});

export type ImageEvent = ImageCommand & { readonly meta: Meta; readonly ctx: DecisionContext };
export type ImageEventOf<T extends ImageCommandType> = Extract<ImageCommand, { type: T }> & {
  readonly meta: Meta;
  readonly ctx: DecisionContext;
};
