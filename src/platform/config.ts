import { z } from 'zod';
import { MAX_PARTITIONS } from '../messages/partitions.js';
import { DriverConfigSchema } from '../messages/datastore.js';
import { ImageDefaultsSchema } from '../messages/datastore-info.js';
import { DEFAULT_DRIVER_TIMEOUTS, DriverActionSchema } from '../messages/driver.js';
import { DEFAULT_SECRET_ATTRIBUTES } from '../secrets/sealed.js';

/** Driver configuration of the bundled drivers (oned.conf's DS_MAD_CONF / TM_MAD_CONF). */
export const BUNDLED_DRIVERS = DriverConfigSchema.parse({
  dsMads: { fs: {}, dummy: {}, rsync: { requiredAttrs: ['RSYNC_HOST'] }, restic: { requiredAttrs: ['RESTIC_PASSWORD'] } },
  tmMads: { shared: {}, ssh: { shared: false }, qcow2: { driver: 'qcow2' }, dummy: {} },
  datastoreLocation: '.data/datastores',
});

export const ManagerConfigSchema = z.object({
  defaults: ImageDefaultsSchema.default(ImageDefaultsSchema.parse({})),
  drivers: DriverConfigSchema.default(BUNDLED_DRIVERS),
  /** Global DATASTORE_CAPACITY_CHECK (§14). */
  capacityCheck: z.boolean().default(true),
  timeouts: z.record(DriverActionSchema, z.number().positive()).default(DEFAULT_DRIVER_TIMEOUTS),
  /** An image unused this long is kept as compact text until it is used again (memory per idle image), in ms. */
  idleImageMs: z.number().int().positive().default(30_000),
  /** How often resident aggregates are checkpointed to KV, in ms. */
  snapshotIntervalMs: z.number().int().positive().default(30_000),
  /** How often the watchdog looks for expired driver requests, in ms. */
  watchdogIntervalMs: z.number().int().positive().default(5_000),
  /** MONITORING_INTERVAL_DATASTORE, in ms; monitors are spread over it (W37). */
  monitorIntervalMs: z.number().int().positive().default(300_000),
  /** Monitors a burst of copies asks for are sent at most once per this window per datastore, plus one at its end. */
  monitorCoalesceMs: z.number().int().nonnegative().default(1_000),
  /** How long a consumer waits for an acknowledgement before redelivering (after a crash, for example). */
  ackWaitMs: z.number().int().positive().default(10_000),
  /** Deliveries of one command before it is given up and recorded in IMGR_REJ (the intake durables' max_deliver; about 12 h of retries). */
  intakeMaxDeliver: z.number().int().positive().default(43_200),
  /**
   * How old a file no image names must be before a sweep reclaims it; by
   * default longer than any creation may run (CP, CLONE, MKFS) plus a minute.
   */
  orphanGraceMs: z.number().int().positive().optional(),
  /** Conflicting appends are retried this many times after catching up. */
  conflictRetries: z.number().int().positive().default(20),
  /**
   * Copies of each stream and bucket (JetStream replicas). `auto` keeps what
   * the store has and gives a new store 3 on a cluster of three or more, 1
   * on a single server.
   */
  replicas: z.union([z.literal('auto'), z.number().int().min(1).max(5)]).default('auto'),
  /**
   * Command partitions of a new store (fixed once it has them; README
   * "Partitions"). Absent: what the store has, DEFAULT_PARTITIONS for a new one.
   */
  partitions: z.number().int().min(1).max(MAX_PARTITIONS).optional(),
  /** Datastore attributes that are secrets (W23): sealed by clients, refused in plain text. */
  secretAttributes: z.array(z.string().min(1)).default([...DEFAULT_SECRET_ATTRIBUTES]),
});
export type ManagerConfig = z.infer<typeof ManagerConfigSchema>;
export type ManagerConfigInput = z.input<typeof ManagerConfigSchema>;
