import { jetstream, type JetStreamClient } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { CommandIdSchema } from '../messages/ids.js';
import type { Actor } from '../messages/envelope.js';
import { CommandSchema, aggregateOfCommand, subjects, type CommandInput, type CommandMessage, type Commit } from '../messages/wire.js';

/** Publishes follow-up commands and driver requests with deterministic ids: a retry is a duplicate, not a second command. */
export class Publisher {
  private readonly js: JetStreamClient;
  constructor(
    nc: NatsConnection,
    private readonly service: string,
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
    const msg: CommandMessage = {
      envelope: {
        commandId: CommandIdSchema.parse(commandId),
        correlationId: cause?.correlationId ?? commandId,
        causationId: cause?.commandId ?? null,
        actor,
        at,
      },
      command,
      replyTo: null,
    };
    await this.js.publish(subjects.command(kind, id), JSON.stringify(msg), { msgID: commandId });
  }

  async raw(subject: string, body: unknown, msgID: string): Promise<void> {
    await this.js.publish(subject, JSON.stringify(body), { msgID });
  }
}
