import { ImgrError } from '../messages/failures.js';
import {
  AckPolicy,
  DiscardPolicy,
  RetentionPolicy,
  StorageType,
  jetstreamManager,
  type JetStreamManager,
  type StreamConfig,
} from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import { setTimeout as sleep } from 'node:timers/promises';
import { nanos, type NatsConnection } from '@nats-io/transport-node';
import { subjects } from '../messages/wire.js';
import { isJetStreamStarting, isNotFound, isWrongLastSequence } from './errors.js';
import { DEFAULT_PARTITIONS, partitionedSubjects } from '../messages/partitions.js';

import { BUCKETS, DRIVERS_DURABLE, META_KEYS, STREAMS } from '../messages/names.js';
export { BUCKETS, DRIVERS_DURABLE, STREAMS };

/**
 * Bumped whenever the streams or buckets change; `migrations` brings older
 * stores up to it. 2: the log and the commands accept atomic batches
 * (multi-aggregate commits), rejections accept per-message TTLs (nats-server
 * >= 2.12), imgr's own commands travel in IMGR_INT. 3: the driver hosts'
 * reports travel in IMGR_REP (IMGR_INT gives their subject up; the reports
 * it already holds are still decided from there). Streams are updated in place at every start, so a store written
 * by an older imgr, or by nats-server 2.9, opens as it is.
 */
export const SCHEMA_VERSION = 3;

const MINUTE = 60_000;

/** Stream configurations of the current schema version. */
type NamedStreamConfig = Partial<StreamConfig> & { name: string };

/** The streams for a store of `partitions` command partitions (messages/partitions.ts). */
export function streamConfigs(partitions: number = DEFAULT_PARTITIONS): NamedStreamConfig[] {
  const partitioned = partitionedSubjects(partitions);
  return [
    {
      name: STREAMS.commands,
      ...partitioned.public,
      retention: RetentionPolicy.Workqueue,
      storage: StorageType.File,
      duplicate_window: nanos(10 * MINUTE),
      max_msg_size: 1024 * 1024,
      allow_atomic: true,
    },
    {
      // imgr's own commands: a stream of their own, so their de-duplication window is theirs too.
      name: STREAMS.internal,
      ...partitioned.internal,
      retention: RetentionPolicy.Workqueue,
      storage: StorageType.File,
      duplicate_window: nanos(10 * MINUTE),
      max_msg_size: 1024 * 1024,
      allow_atomic: true,
    },
    {
      // The driver hosts' reports: a stream of their own, so that nothing the drivers user publishes
      // shares a de-duplication window with the manager's own commands (a report with the msgID of a
      // follow-up or a timeout would suppress it). Listed after IMGR_INT, which gives their subject up first.
      name: STREAMS.replies,
      ...partitioned.driver,
      retention: RetentionPolicy.Workqueue,
      storage: StorageType.File,
      duplicate_window: nanos(10 * MINUTE),
      max_msg_size: 1024 * 1024,
    },
    {
      // The log is the source of truth: no expiry, nothing deleted or purged.
      name: STREAMS.events,
      subjects: [subjects.events],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      duplicate_window: nanos(10 * MINUTE),
      deny_delete: true,
      deny_purge: true,
      allow_direct: true,
      discard: DiscardPolicy.New,
      allow_atomic: true,
    },
    {
      name: STREAMS.driver,
      subjects: [subjects.driverRequests],
      retention: RetentionPolicy.Workqueue,
      storage: StorageType.File,
      duplicate_window: nanos(10 * MINUTE),
    },
    {
      // Refusals are audit records; what could not even be read expires (per-message TTL).
      name: STREAMS.rejected,
      subjects: [subjects.rejections],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      duplicate_window: nanos(10 * MINUTE),
      deny_delete: true,
      deny_purge: true,
      allow_msg_ttl: true,
    },
    {
      // Commits a reactor gave up on, with why: operators see them (imgr parked, /api/parked).
      name: STREAMS.parked,
      subjects: [subjects.parkedAll],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      duplicate_window: nanos(10 * MINUTE),
    },
  ];
}

export interface Provisioned {
  readonly jsm: JetStreamManager;
  readonly snapshots: KV;
  readonly outcomes: KV;
  readonly meta: KV;
  /** Holders of the command partitions (intake/partition-ownership.ts). */
  readonly leases: KV;
  /** The store's command partitions: fixed at its first start. */
  readonly partitions: number;
  /** How many copies the store keeps of each stream and bucket; buckets made later (views) get as many. */
  readonly replicas: number;
}

/**
 * How many servers keep each stream and bucket: a number, or `auto`. Auto
 * keeps what the store has; a new store gets three copies when the server is
 * one of a cluster of three or more (the servers it gossips), one otherwise.
 */
export type Replicas = number | 'auto';

export interface ProvisionOptions {
  readonly replicas?: Replicas;
  /** The partition count a new store gets; a store that has one keeps it, and a different one asked for is refused. */
  readonly partitions?: number;
  /** How long a partition's lease lasts without renewal (the managers' ack wait). */
  readonly leaseMs?: number;
}

/**
 * Creates or updates every stream and bucket; safe to run at every start and
 * from several managers. Waits while a cluster elects its JetStream leader.
 */
export async function provision(nc: NatsConnection, o: ProvisionOptions = {}): Promise<Provisioned> {
  return whileJetStreamStarts(async () => {
    const jsm = await jetstreamManager(nc);
    const replicas = await replicasFor(nc, jsm, o.replicas ?? 'auto');
    const snapshots = await bucket(nc, jsm, BUCKETS.snapshots, { history: 1, replicas });
    const outcomes = await bucket(nc, jsm, BUCKETS.outcomes, { history: 1, ttl: 24 * 60 * MINUTE, replicas });
    const meta = await bucket(nc, jsm, BUCKETS.meta, { history: 5, replicas });
    const leases = await bucket(nc, jsm, BUCKETS.leases, { history: 1, ttl: o.leaseMs ?? DEFAULT_LEASE_MS, replicas, keepTtl: o.leaseMs === undefined });
    const partitions = await recordPartitions(meta, o.partitions);
    for (const base of streamConfigs(partitions)) {
      const cfg = { ...base, num_replicas: replicas };
      try {
        await jsm.streams.info(cfg.name);
        await jsm.streams.update(cfg.name, cfg);
      } catch (e) {
        if (!isNotFound(e)) throw e;
        await addOrAccept(jsm, cfg);
      }
    }
    await provisionDrivers(jsm);
    await migrate(meta);
    return { jsm, snapshots, outcomes, meta, leases, partitions, replicas };
  });
}

/** A lease not renewed for this long is free (the default ack wait). */
const DEFAULT_LEASE_MS = 10_000;

/** The store's partition count: recorded at its first start, never changed after. */
async function recordPartitions(meta: KV, wanted: number | undefined): Promise<number> {
  const entry = await meta.get(META_KEYS.partitions);
  if (entry?.operation === 'PUT') {
    const recorded = Number(entry.string());
    if (wanted !== undefined && wanted !== recorded) {
      throw new ImgrError('IMGR_PARTITIONS_FIXED', `the NATS store has ${recorded} command partitions and keeps them (a command's partition must not change while it waits); configure partitions: ${recorded}, or start a new store`);
    }
    return recorded;
  }
  const count = wanted ?? DEFAULT_PARTITIONS;
  try {
    await meta.create(META_KEYS.partitions, String(count));
    return count;
  } catch (e) {
    // Another manager recorded it first: its count is the store's.
    if (!isWrongLastSequence(e)) throw e;
    return recordPartitions(meta, wanted);
  }
}

async function provisionDrivers(jsm: JetStreamManager): Promise<void> {
  await jsm.consumers.add(STREAMS.driver, {
    durable_name: DRIVERS_DURABLE,
    ack_policy: AckPolicy.Explicit,
    filter_subject: subjects.driverRequests,
    ack_wait: nanos(30_000),
    max_ack_pending: 1000,
  });
}

/**
 * Opens or creates a bucket with this many copies (and this entry lifetime
 * unless `keepTtl`), bringing an existing one to them.
 */
export async function bucket(nc: NatsConnection, jsm: JetStreamManager, name: string, o: { history: number; ttl?: number; replicas: number; keepTtl?: boolean }): Promise<KV> {
  const { keepTtl, ...opts } = o;
  const kv = await new Kvm(nc).create(name, opts);
  const info = await jsm.streams.info(`KV_${name}`);
  const maxAge = o.ttl !== undefined && keepTtl !== true ? nanos(o.ttl) : info.config.max_age;
  if (info.config.num_replicas !== o.replicas || info.config.max_age !== maxAge) {
    // The de-duplication window may not outlast the entries (a KV bucket's is its TTL at most).
    const window = maxAge > 0 ? Math.min(info.config.duplicate_window, maxAge) : info.config.duplicate_window;
    await jsm.streams.update(info.config.name, { ...info.config, num_replicas: o.replicas, max_age: maxAge, duplicate_window: window });
  }
  return kv;
}

async function replicasFor(nc: NatsConnection, jsm: JetStreamManager, replicas: Replicas): Promise<number> {
  if (replicas !== 'auto') return replicas;
  try {
    return (await jsm.streams.info(STREAMS.events)).config.num_replicas;
  } catch (e) {
    if (!isNotFound(e)) throw e;
  }
  const info = nc.info;
  // connect_urls lists every server of the cluster the client may use, this one included.
  return info?.cluster !== undefined ? Math.min(3, Math.max(1, info.connect_urls?.length ?? 1)) : 1;
}

/**
 * A cluster answers 503 until its servers have chosen a JetStream leader (at
 * first start, or after a node restart). Waits that out, for up to 60 s.
 */
async function whileJetStreamStarts<T>(op: () => Promise<T>): Promise<T> {
  const until = Date.now() + 60_000;
  for (;;) {
    try {
      return await op();
    } catch (e) {
      if (!isJetStreamStarting(e) || Date.now() > until) throw e;
      await sleep(250);
    }
  }
}

/** Two managers starting at once may both try to add: the loser accepts the winner's stream. */
async function addOrAccept(jsm: JetStreamManager, cfg: NamedStreamConfig): Promise<void> {
  try {
    await jsm.streams.add(cfg);
  } catch (e) {
    await jsm.streams.info(cfg.name).catch(() => {
      throw e;
    });
  }
}

/** Steps from a stored schema version to the current one, each idempotent. */
const migrations: Record<number, (meta: KV) => Promise<void>> = {};

async function migrate(meta: KV): Promise<void> {
  const entry = await meta.get('schema');
  let version = entry ? Number(entry.string()) : 0;
  if (version > SCHEMA_VERSION) {
    throw new ImgrError('IMGR_STORE_TOO_NEW', `the NATS store has imgr schema ${version}, newer than this imgr (${SCHEMA_VERSION}); upgrade imgr`);
  }
  while (version < SCHEMA_VERSION) {
    version += 1;
    await migrations[version]?.(meta);
  }
  await meta.put('schema', String(SCHEMA_VERSION));
}
