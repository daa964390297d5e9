import type { CommandSource } from '../messages/wire.js';
import { COMMAND_SOURCES } from '../messages/wire.js';
import type { ImgrMetrics } from '../platform/metrics.js';
import { partitionFeed, type Intake, type IntakeFeed } from './intake.js';
import type { PartitionWork } from './partition-ownership.js';

/**
 * The intakes of the partitions this manager holds: a partition's public
 * and internal commands are decided by the same manager, so one aggregate's
 * commands, from services and from imgr itself, are never decided in two
 * places at once.
 */
export class PartitionIntakes implements PartitionWork {
  private readonly running = new Map<number, Intake[]>();

  constructor(
    private readonly newIntake: (source: CommandSource, feed: IntakeFeed) => Intake,
    private readonly metrics: ImgrMetrics,
  ) {}

  async gain(partition: number): Promise<void> {
    if (this.running.has(partition)) return;
    const intakes = COMMAND_SOURCES.map((source) => this.newIntake(source, partitionFeed(source, partition)));
    this.running.set(partition, intakes);
    this.metrics.partitionsHeld.set(this.running.size);
    for (const intake of intakes) await intake.start();
  }

  async lose(partition: number): Promise<void> {
    const intakes = this.running.get(partition);
    if (!intakes) return;
    this.running.delete(partition);
    this.metrics.partitionsHeld.set(this.running.size);
    await Promise.all(intakes.map((i) => i.stop()));
  }
}
