import type { CommandSource } from './wire.js';

/**
 * Commands are partitioned by aggregate with NATS's deterministic subject
 * partitioning: the command streams take exactly the subjects senders
 * publish (`imgr.cmd.<principal>.<kind>.<id>`, `imgr.int.<kind>.<id>`,
 * `imgr.drv-reply.<kind>.<id>`) and
 * store them with the partition of `<kind>.<id>` appended, the same
 * partition in every stream. Each partition has a durable per stream, and
 * one manager at a time holds a partition (intake/partition-ownership.ts).
 *
 * The count is fixed per store (recorded in imgr_meta at first start): the
 * partition of an aggregate must never change while commands for it wait.
 */
export const DEFAULT_PARTITIONS = 8;
export const MAX_PARTITIONS = 256;

/** The stream subjects and transform of each command stream for `count` partitions. */
export function partitionedSubjects(count: number): Record<CommandSource, { subjects: string[]; subject_transform: { src: string; dest: string } }> {
  return {
    public: {
      subjects: ['imgr.cmd.*.*.*'],
      subject_transform: { src: 'imgr.cmd.*.*.*', dest: `imgr.cmd.{{wildcard(1)}}.{{wildcard(2)}}.{{wildcard(3)}}.{{partition(${count},2,3)}}` },
    },
    // The manager's own commands. A store written before IMGR_REP kept the driver hosts' reports here too
    // (imgr.drv-reply.<kind>.<id>.<p>): the partition's durable still takes those (partitionFilter).
    internal: {
      subjects: ['imgr.int.*.*'],
      subject_transform: { src: 'imgr.int.*.*', dest: `imgr.int.{{wildcard(1)}}.{{wildcard(2)}}.{{partition(${count},1,2)}}` },
    },
    // The driver hosts' reports: a stream of their own, so that a msgID the drivers user publishes never
    // shares a de-duplication window with the manager's follow-ups and timeouts.
    driver: {
      subjects: ['imgr.drv-reply.*.*'],
      subject_transform: { src: 'imgr.drv-reply.*.*', dest: `imgr.drv-reply.{{wildcard(1)}}.{{wildcard(2)}}.{{partition(${count},1,2)}}` },
    },
  };
}

/** What a partition's durable takes from its stream. */
export const partitionFilter = (source: CommandSource, partition: number): string =>
  source === 'public' ? `imgr.cmd.*.*.*.${partition}` : source === 'driver' ? `imgr.drv-reply.*.*.${partition}` : `imgr.*.*.*.${partition}`;

const PUBLISHED_TOKENS: Record<CommandSource, number> = { public: 5, internal: 4, driver: 4 };

/**
 * The subject the sender published, from the one the stream stored: the
 * partition token taken off. A subject stored before the streams were
 * partitioned (an upgraded store's backlog) is already that.
 */
export function publishedSubject(stored: string, source: CommandSource): string {
  const tokens = stored.split('.');
  return tokens.length === PUBLISHED_TOKENS[source] + 1 ? tokens.slice(0, -1).join('.') : stored;
}

/** The partition a stored subject names, or undefined for one stored before partitioning. */
export function partitionOfStored(stored: string, source: CommandSource): number | undefined {
  const tokens = stored.split('.');
  return tokens.length === PUBLISHED_TOKENS[source] + 1 ? Number(tokens.at(-1)) : undefined;
}

/**
 * The partition the server's transform gives an aggregate: FNV-1a (32 bit)
 * of the partition's tokens written one after the other, modulo the count
 * (nats-server's `partition()`); test/int/partitions.test.ts holds it to the
 * server's answer. Managers use it to run timers only for what they hold.
 */
export function partitionOf(kind: string, id: number, count: number): number {
  let h = 0x811c9dc5;
  for (const byte of Buffer.from(`${kind}${id}`, 'utf8')) {
    h ^= byte;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % count;
}
