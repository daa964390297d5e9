import { jetstream, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { safeJson } from '../platform/json.js';
import type { Logger } from '../platform/logger.js';
import type { Clock } from '../platform/clock.js';
import type { ImgrMetrics } from '../platform/metrics.js';
import { rejection } from '../messages/errors.js';
import { EnvelopeSchema } from '../messages/envelope.js';
import { subjects, type RejectionRecord } from '../messages/wire.js';
import { UNREADABLE_KEPT } from './intake.js';

const mentionsSecret = (text: string, secrets: readonly string[]): boolean => secrets.some((s) => text.toUpperCase().includes(s.toUpperCase()));

/** What the server announces when a message reaches its consumer's max_deliver. */
export const MAX_DELIVERIES_ADVISORY = '$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.>';

/** The intake durables' name prefix: only their advisories are the intake's to handle. */
const INTAKE_DURABLE = /^imgr-intake(-|$)/;

/**
 * Commands no intake could process within their durable's max_deliver (a
 * bug, or a store that kept failing for hours): JetStream stops delivering
 * them, which frees their ack-pending slot, and announces it. Each is
 * recorded in IMGR_REJ for audit (CMD_ERR_GIVEN_UP, with the message as it
 * was, unless it names a secret attribute), logged as an error for the
 * operator, and removed from its work queue. Every manager hears the
 * advisory: the record's msgID makes it one.
 */
export class GivenUpCommands {
  private sub: Subscription | undefined;
  private readonly pending = new Set<Promise<void>>();

  constructor(
    private readonly nc: NatsConnection,
    private readonly jsm: JetStreamManager,
    private readonly o: { readonly streams: readonly string[]; readonly secretAttributes: readonly string[]; readonly clock: Clock; readonly log: Logger; readonly metrics?: ImgrMetrics },
  ) {}

  start(): void {
    this.sub = this.nc.subscribe(MAX_DELIVERIES_ADVISORY, {
      callback: (err, m) => {
        if (err) return;
        const a = safeJson(m.string()) as { stream?: unknown; consumer?: unknown; stream_seq?: unknown; deliveries?: unknown } | undefined;
        if (typeof a?.stream !== 'string' || typeof a.consumer !== 'string' || typeof a.stream_seq !== 'number') return;
        if (!this.o.streams.includes(a.stream) || !INTAKE_DURABLE.test(a.consumer)) return;
        const p = this.record(a.stream, a.consumer, a.stream_seq, typeof a.deliveries === 'number' ? a.deliveries : 0).finally(() => this.pending.delete(p));
        this.pending.add(p);
      },
    });
  }

  async stop(): Promise<void> {
    this.sub?.unsubscribe();
    await Promise.allSettled(this.pending);
  }

  private async record(stream: string, durable: string, seq: number, deliveries: number): Promise<void> {
    try {
      const m = await this.jsm.streams.getMessage(stream, { seq }).catch(() => null);
      const text = m?.string() ?? '';
      const raw = safeJson(text) as { envelope?: unknown } | undefined;
      const envelope = EnvelopeSchema.safeParse(raw?.envelope);
      const commandId = envelope.success ? envelope.data.commandId : null;
      const r = rejection('CMD_ERR_GIVEN_UP', { id: commandId ?? `${stream}#${seq}`, deliveries });
      const rec: RejectionRecord = {
        commandId,
        actor: envelope.success ? envelope.data.actor : null,
        subject: m?.subject ?? `${stream}#${seq}`,
        code: r.code,
        message: r.message,
        at: this.o.clock.now(),
        command: m === null ? '[gone from the stream]' : mentionsSecret(text, this.o.secretAttributes) ? '[withheld: it named a secret attribute]' : text.slice(0, 4096),
      };
      await jetstream(this.nc).publish(subjects.rejected('unknown', 'unknown'), JSON.stringify(rec), { msgID: `given-up-${stream}-${seq}`, ttl: UNREADABLE_KEPT });
      if (m !== null) await this.jsm.streams.deleteMessage(stream, seq, false).catch(() => false);
      // Counted with the commands answered, so a dashboard of refusals shows it too.
      this.o.metrics?.commands.inc({ source: stream, type: 'given-up', status: 'rejected' });
      this.o.log.error({ stream, durable, seq, deliveries, commandId, subject: rec.subject }, 'command given up after its last delivery: recorded in IMGR_REJ and removed from its queue');
    } catch (e) {
      this.o.log.error({ err: e, stream, durable, seq }, 'a command given up could not be recorded; it stays in its stream');
    }
  }
}
