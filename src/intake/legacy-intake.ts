import { setTimeout as sleep } from 'node:timers/promises';
import type { JetStreamManager } from '@nats-io/jetstream';
import type { Logger } from '../platform/logger.js';
import { COMMAND_SOURCES, type CommandSource } from '../messages/wire.js';
import { isNotFound } from '../store/errors.js';
import { LEGACY_DURABLES, SOURCE_STREAMS, type Intake, type IntakeFeed } from './intake.js';

/**
 * A store written before commands were partitioned has one durable per
 * command stream, taking every subject; a work-queue stream admits no
 * partition durable beside it. Its backlog (commands stored with the old
 * subjects, and any that arrive meanwhile) is decided through it until it
 * holds nothing, then it is deleted. Several managers may drain at once, as
 * they shared it before; the first to find it empty deletes it.
 */
export async function drainLegacyIntakes(jsm: JetStreamManager, newIntake: (source: CommandSource, feed: IntakeFeed) => Intake, log: Logger): Promise<void> {
  for (const source of COMMAND_SOURCES) {
    const stream = SOURCE_STREAMS[source];
    const durable = LEGACY_DURABLES[source];
    const info = await jsm.consumers.info(stream, durable).catch((e: unknown) => {
      if (isNotFound(e) || (e instanceof Error && /consumer not found/i.test(e.message))) return undefined;
      throw e;
    });
    if (!info) continue;
    log.info({ stream, durable, pending: info.num_pending + info.num_ack_pending }, 'deciding the backlog of the store before partitioning');
    const intake = newIntake(source, { stream, durable, filter: info.config.filter_subject ?? '', existing: true });
    await intake.start();
    try {
      for (;;) {
        const now = await jsm.consumers.info(stream, durable).catch(() => undefined);
        if (!now || (now.num_pending === 0 && now.num_ack_pending === 0)) break;
        await sleep(200);
      }
    } finally {
      await intake.stop();
    }
    await jsm.consumers.delete(stream, durable).catch(() => undefined);
    log.info({ stream, durable }, 'pre-partitioning durable drained and removed');
  }
}
