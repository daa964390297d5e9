import { jetstream, type JetStreamClient } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { CommandIdSchema } from '../messages/ids.js';
import type { Actor } from '../messages/envelope.js';
import { CommandSchema, INTERNAL_ID_PREFIX, aggregateOfCommand, subjects, type AggregateKind, type CommandInput, type CommandMessage, type Commit } from '../messages/wire.js';

/**
 * Publishes follow-up commands and driver requests with deterministic ids: a
 * retry is a duplicate, not a second command. Commands go on imgr's own
 * subjects with ids under INTERNAL_ID_PREFIX, where no service can publish:
 * the manager's, or the driver hosts' (which take only their reports).
 */
export class Publisher {
  private readonly js: JetStreamClient;
  constructor(
    nc: NatsConnection,
    private readonly service: string,
    /** Where its commands go: the manager's subject, or a driver host's own (subjects.driverReply). */
    private readonly subjectOf: (kind: AggregateKind, id: number) => string = subjects.internal,
  ) {
    this.js = jetstream(nc);
  }

  async command(
    input: CommandInput,
    commandId: string,
    cause: Pick<Commit, 'commandId' | 'correlationId'> | null,
    at: number,
    actor: Actor = { uid: 0, gid: 0, name: 'imgr', service: this.service },
  ): Promise<void> {
    const command = CommandSchema.parse(input);
    const { kind, id } = aggregateOfCommand(command);
    const internalId = `${INTERNAL_ID_PREFIX}${commandId}`;
    const msg: CommandMessage = {
      envelope: {
        commandId: CommandIdSchema.parse(internalId),
        correlationId: cause?.correlationId ?? internalId,
        causationId: cause?.commandId ?? null,
        actor,
        at,
      },
      command,
      replyTo: null,
    };
    await this.js.publish(this.subjectOf(kind, id), JSON.stringify(msg), { msgID: internalId });
  }

  async raw(subject: string, body: unknown, msgID: string): Promise<void> {
    await this.js.publish(subject, JSON.stringify(body), { msgID });
  }
}
