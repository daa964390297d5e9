import { safeJson } from '../platform/json.js';
import { AckPolicy, DeliverPolicy, jetstream, type JetStreamClient, type JetStreamManager, type JsMsg } from '@nats-io/jetstream';
import { followDurable, nakQuietly, type Follower } from '../store/follow.js';
import type { KV } from '@nats-io/kv';
import { nanos, type NatsConnection } from '@nats-io/transport-node';
import type { Logger } from '../platform/logger.js';
import type { Clock } from '../platform/clock.js';
import { rejection, type Rejection } from '../messages/errors.js';
import {
  CommandMessageSchema,
  ReplySubjectSchema,
  INTERNAL_COMMANDS,
  INTERNAL_ID_PREFIX,
  DRIVER_COMMANDS,
  DRIVER_ACTOR,
  DRIVER_ID,
  type CommandSource,
  type Command,
  aggregateOfCommand,
  subjects,
  type CommandMessage,
  type Outcome,
  type RejectionRecord,
} from '../messages/wire.js';
import type { AggregateHost } from '../actors/host.js';
import { STREAMS } from '../store/provision.js';
import { partitionFilter, publishedSubject } from '../messages/partitions.js';
import { MINTED_ID_HEADER } from '../messages/names.js';
import { Outcomes } from './outcomes.js';
import { causedByMessage } from './unprocessable.js';
import { Mailboxes } from '../actors/mailbox.js';
import { InheritedOrder } from './inherited-order.js';
import { fingerprintOf } from '../protocol/fingerprint.js';
import type { PrincipalLookup, PrincipalRegistry } from './principal-registry.js';
import { actorOf } from './grants.js';
import type { ImgrMetrics } from '../platform/metrics.js';
import { inboxPrefixFor } from '../platform/nats.js';
import { DEFAULT_SECRET_ATTRIBUTES, REDACTED, unsealedSecrets } from '../secrets/sealed.js';

/** The durables of the store before commands were partitioned: an upgraded store's backlog is drained from them (legacy-intake.ts). */
export const LEGACY_DURABLES: Record<CommandSource, string> = { public: 'imgr-intake', internal: 'imgr-intake-internal', driver: 'imgr-intake-replies' };

export const SOURCE_STREAMS: Record<CommandSource, string> = { public: STREAMS.commands, internal: STREAMS.internal, driver: STREAMS.replies };

/** The durable of one source's partition. */
export const intakeDurable = (source: CommandSource, partition: number): string => `${LEGACY_DURABLES[source]}-p${partition}`;

/** Where one intake takes its commands from: a partition's durable, or a legacy durable being drained. */
export interface IntakeFeed {
  readonly stream: string;
  readonly durable: string;
  /** The subjects its durable takes. */
  readonly filter: string;
  /** A durable that exists and is used as it is (a legacy one being drained): never created or changed. */
  readonly existing?: boolean;
}

export const partitionFeed = (source: CommandSource, partition: number): IntakeFeed => ({
  stream: SOURCE_STREAMS[source],
  durable: intakeDurable(source, partition),
  filter: partitionFilter(source, partition),
});

export interface IntakeOptions {
  readonly clock: Clock;
  readonly log: Logger;
  readonly ackWaitMs: number;
  readonly source: CommandSource;
  readonly secretAttributes?: readonly string[];
  /** The public intake's: who may act as whom. */
  readonly principals?: PrincipalRegistry;
  readonly metrics: ImgrMetrics;
  /** The partition (or legacy durable) it consumes. */
  readonly feed: IntakeFeed;
  /** Deliveries of one command before it is given up (the durable's max_deliver). */
  readonly maxDeliver?: number;
}

/**
 * Deliveries of one command before JetStream gives it up: a failure that
 * leaves it for redelivery (NATS away, a store that refuses writes) retries
 * it about once a second, so this is about twelve hours of them; a manager
 * dying or a NATS restart costs one delivery each. What the message itself
 * causes is terminated at once instead (causedByMessage).
 */
export const INTAKE_MAX_DELIVER = 43_200;

/**
 * The command consumer: parse (zod), route to the aggregate's mailbox,
 * decide and commit, answer, then acknowledge. A malformed or refused command
 * is acknowledged too (never redelivered forever), answered, and recorded in
 * IMGR_REJ with who sent it and why.
 */
export class Intake {
  private readonly js: JetStreamClient;
  private stopping = false;
  private follower: Follower | undefined;
  private readonly inflight = new Set<Promise<void>>();
  private readonly kept: Outcomes;
  private readonly lanes = new Mailboxes();
  /**
   * The commands taken and not yet acknowledged, in arrival order. They stay
   * this manager's while they are decided (a STAT can outlast ack_wait: a
   * redelivery to another manager would decide one in parallel), renewed
   * together in that order, so that if this manager dies their deadlines end
   * in arrival order and JetStream redelivers them in it: one aggregate's
   * commands reach the next holder in the order they were sent.
   */
  private readonly deciding = new Set<JsMsg>();
  private keepAlive: NodeJS.Timeout | undefined;

  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly ackWaitMs: number;
  private readonly source: CommandSource;
  private readonly secretAttributes: readonly string[];
  private readonly principals: PrincipalRegistry | undefined;
  private readonly metrics: ImgrMetrics;
  private readonly feed: IntakeFeed;
  private readonly maxDeliver: number;

  constructor(
    private readonly nc: NatsConnection,
    private readonly jsm: JetStreamManager,
    private readonly host: AggregateHost,
    outcomes: KV,
    o: IntakeOptions,
  ) {
    this.js = jetstream(nc);
    this.clock = o.clock;
    this.log = o.log;
    this.ackWaitMs = o.ackWaitMs;
    this.source = o.source;
    this.secretAttributes = o.secretAttributes ?? DEFAULT_SECRET_ATTRIBUTES;
    this.principals = o.principals;
    this.metrics = o.metrics;
    this.kept = new Outcomes(outcomes, o.log);
    this.feed = o.feed;
    this.maxDeliver = o.maxDeliver ?? INTAKE_MAX_DELIVER;
  }

  async start(): Promise<void> {
    const from = this.feed;
    if (from.existing !== true) {
      // max_deliver: no message holds a slot for ever, whatever fails; past it, GivenUpCommands records it.
      const changeable = { filter_subject: from.filter, ack_wait: nanos(this.ackWaitMs), max_ack_pending: 2000, max_deliver: this.maxDeliver };
      await this.jsm.consumers.add(from.stream, { durable_name: from.durable, ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All, ...changeable }).catch(async (e: unknown) => {
        // A durable of an older imgr (its partition's filter named imgr.int. only): brought to this one in place.
        const had = await this.jsm.consumers.info(from.stream, from.durable).catch(() => undefined);
        if (!had) throw e;
        if (had.config.filter_subject !== from.filter) this.log.info({ durable: from.durable, was: had.config.filter_subject, now: from.filter }, 'intake durable takes its partition of every imgr subject now');
        await this.jsm.consumers.update(from.stream, from.durable, changeable);
      });
    }
    this.keepAlive = setInterval(() => {
      for (const m of this.deciding) m.working();
    }, Math.max(50, Math.floor(this.ackWaitMs / 3)));
    const taken = await this.jsm.consumers.info(from.stream, from.durable);
    // Routing happens synchronously, in stream order, so each aggregate sees its commands in order.
    const route = (m: JsMsg): void => {
      const p = this.handle(m)
        .catch((e: unknown) => this.log.error({ err: e, subject: m.subject }, 'command left for redelivery'))
        .finally(() => this.inflight.delete(p));
      this.inflight.add(p);
    };
    const order = new InheritedOrder(taken.delivered.stream_seq, taken.num_ack_pending, route, 2 * this.ackWaitMs);
    this.follower = await followDurable(this.js, this.jsm, {
      stream: from.stream,
      durable: from.durable,
      consume: { max_messages: 500 },
      log: this.log,
      onMessage: (m) => {
        // Given up (the partition went to another manager): back at once for the next holder, not after ack_wait.
        if (this.stopping) {
          nakQuietly(m, 0);
          return;
        }
        order.push(m);
      },
    });
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.follower?.stop();
    await Promise.allSettled(this.inflight);
    clearInterval(this.keepAlive);
  }

  private handle(m: JsMsg): Promise<void> {
    const started = this.clock.now();
    const timer = performance.now();
    const published = publishedSubject(m.subject, this.source);
    const parsed = parseCommandMessage(published, m.string(), this.source, this.secretAttributes, (name) => this.principals?.lookup(name));
    if (!parsed.ok) return this.refuseUnreadable(m, parsed.rejection, parsed.partial);
    const msg = parsed.message;
    const fingerprint = fingerprintOf(msg.command, msg.envelope.actor);
    this.deciding.add(m);
    // A command whose id its sender just minted, on its first delivery, has no stored outcome: skip the lookup.
    const minted = !m.info.redelivered && m.headers?.get(MINTED_ID_HEADER) === '1' && m.headers.get('Nats-Msg-Id') === msg.envelope.commandId;
    const { kind, id } = aggregateOfCommand(msg.command);
    // The lookup runs in the aggregate's lane, so that commands reach the host in the order they arrived even
    // when their lookups (redeliveries, resends) answer out of order.
    return this.lanes
      .run(`${kind}:${id}`, async () => {
        const known = minted ? undefined : await this.kept.get(msg.envelope.commandId);
        if (known?.fingerprint !== undefined && known.fingerprint !== fingerprint) return { reused: true as const };
        return { reused: false as const, outcome: known ?? { ...(await this.host.execute(msg)), fingerprint, ...this.sender(msg) } };
      })
      .then(async (decided) => {
        if (decided.reused) {
          await this.refuseReuse(msg, fingerprint);
          m.ack();
          this.counted(msg.command.type, 'rejected', timer);
          return;
        }
        const outcome = await this.finish(msg, decided.outcome, published);
        m.ack();
        this.counted(msg.command.type, outcome.status, timer);
        this.log.info(
          { commandId: msg.envelope.commandId, type: msg.command.type, ...aggregateOfCommand(msg.command), streamSeq: m.seq, deliveries: m.info.deliveryCount, status: outcome.status, ...(outcome.status === 'accepted' ? { state: outcome.state, seq: outcome.seq } : { code: outcome.code }), ms: this.clock.now() - started },
          'command',
        );
      })
      .catch(async (e: unknown) => {
        // What the message holds fails at every delivery: refused and terminated, never redelivered for ever.
        const why = causedByMessage(e);
        if (why !== undefined) return this.refuseUnprocessable(m, msg, published, why);
        // NATS trouble or a bug: leave the command for redelivery instead of answering wrongly.
        this.log.error({ err: e, commandId: msg.envelope.commandId }, 'command not processed, will be redelivered');
        nakQuietly(m, 1000);
      })
      .finally(() => this.deciding.delete(m));
  }

  /**
   * Keeps the command's outcome and answers the sender; the command is
   * acknowledged only after both, so a crash in between redelivers it and it
   * is answered again. One outcome per command id, ever: an acceptance is a
   * commit in the log and is answered at once, and it replaces a refusal
   * stored by a manager that decided on older state; a refusal is stored
   * first and only if no outcome is, and the sender hears the one stored.
   */
  private async finish(msg: CommandMessage, outcome: Outcome, subject: string): Promise<Outcome> {
    const id = msg.envelope.commandId;
    if (outcome.status === 'accepted') {
      this.reply(msg, outcome);
      await this.kept.accepted(id, outcome);
      return outcome;
    }
    const first = await this.kept.refusal(id, outcome);
    if (first.fingerprint !== undefined && first.fingerprint !== outcome.fingerprint) {
      // Another command's outcome is stored under the id (a sender that said it minted an id it had not).
      return this.refuseReuse(msg, outcome.fingerprint ?? '');
    }
    this.reply(msg, first);
    if (first === outcome) {
      const { kind, id: aggregateId } = aggregateOfCommand(msg.command);
      await this.recordRejection(subjects.rejected(kind, aggregateId), {
        commandId: id,
        actor: msg.envelope.actor,
        subject,
        code: outcome.code,
        message: outcome.message,
        at: this.clock.now(),
        command: msg.command,
      });
    }
    return first;
  }

  /**
   * Who sent a public command, kept with its outcome: only that principal
   * (besides administrators and roles) may read the outcome again. The
   * authenticated actor's `service` is the principal the subject named.
   */
  private sender(msg: CommandMessage): { principal?: string } {
    return this.source === 'public' ? { principal: msg.envelope.actor.service } : {};
  }

  private reply(msg: CommandMessage, outcome: Outcome): void {
    if (msg.replyTo !== null) this.nc.publish(msg.replyTo, JSON.stringify(outcome));
  }

  /** An id taken by another command: the sender hears why; the first outcome stays as it was. */
  private async refuseReuse(msg: CommandMessage, fingerprint: string): Promise<Outcome> {
    const r = rejection('CMD_ERR_ID_REUSED', { id: msg.envelope.commandId });
    const outcome: Outcome = { status: 'rejected', commandId: msg.envelope.commandId, ...r, fingerprint, ...this.sender(msg) };
    if (msg.replyTo !== null) this.nc.publish(msg.replyTo, JSON.stringify(outcome));
    const { kind, id } = aggregateOfCommand(msg.command);
    await this.js.publish(
      subjects.rejected(kind, id),
      JSON.stringify({ commandId: msg.envelope.commandId, actor: msg.envelope.actor, subject: subjects.command(msg.envelope.actor.service, kind, id), code: r.code, message: r.message, at: this.clock.now(), command: msg.command }),
      { msgID: `rej-${msg.envelope.commandId}-${fingerprint}` },
    );
    this.log.warn({ commandId: msg.envelope.commandId, type: msg.command.type }, 'command id reused for another command');
    return outcome;
  }

  /**
   * A command that failed because of what it holds (causedByMessage): its
   * sender hears why, the refusal is recorded in IMGR_REJ and the message is
   * terminated. Its outcome is not kept (the bucket may be what refused it).
   * Only if the record cannot be written (NATS away) is it left for redelivery.
   */
  private async refuseUnprocessable(m: JsMsg, msg: CommandMessage, subject: string, why: string): Promise<void> {
    const r = rejection('CMD_ERR_UNPROCESSABLE', { id: msg.envelope.commandId, reason: why.slice(0, 512) });
    try {
      const { kind, id } = aggregateOfCommand(msg.command);
      await this.recordRejection(subjects.rejected(kind, id), { commandId: msg.envelope.commandId, actor: msg.envelope.actor, subject, code: r.code, message: r.message, at: this.clock.now(), command: withoutSecrets(msg.command, this.secretAttributes) });
      this.reply(msg, { status: 'rejected', commandId: msg.envelope.commandId, ...r, ...this.sender(msg) });
      m.term(r.message);
      this.metrics.commands.inc({ source: this.source, type: msg.command.type, status: 'rejected' });
      this.log.warn({ commandId: msg.envelope.commandId, type: msg.command.type, subject, why }, 'command cannot be processed: refused and terminated');
    } catch (e) {
      this.log.error({ err: e, commandId: msg.envelope.commandId }, 'could not record an unprocessable command, will retry');
      nakQuietly(m, 1000);
    }
  }

  private counted(type: string, status: Outcome['status'], since: number): void {
    this.metrics.commands.inc({ source: this.source, type, status });
    this.metrics.commandSeconds.observe({ type }, (performance.now() - since) / 1000);
  }

  private async refuseUnreadable(m: JsMsg, r: Rejection, partial: Partial<CommandMessage> & { replyTo?: string | null }): Promise<void> {
    try {
      const commandId = partial.envelope?.commandId ?? null;
      const rec: RejectionRecord = {
        commandId,
        actor: partial.envelope?.actor ?? null,
        subject: publishedSubject(m.subject, this.source),
        code: r.code,
        message: r.message,
        at: this.clock.now(),
        // The text of a refused message may hold a secret in plain text: it is kept only if it holds none.
        command: mentionsSecret(m.string(), this.secretAttributes) ? '[withheld: it named a secret attribute]' : m.string().slice(0, 4096),
      };
      await this.recordRejection(subjects.rejected('unknown', 'unknown'), rec, UNREADABLE_KEPT);
      if (typeof partial.replyTo === 'string') {
        this.nc.publish(partial.replyTo, JSON.stringify({ status: 'rejected', commandId: commandId ?? '', code: r.code, message: r.message }));
      }
      m.ack();
      // Its type is what the sender wrote, which may be anything: one label for all of them.
      this.metrics.commands.inc({ source: this.source, type: 'unreadable', status: 'rejected' });
      this.log.warn({ subject: m.subject, code: r.code, message: r.message }, 'unreadable command refused');
    } catch (e) {
      this.log.error({ err: e }, 'could not record a refused command, will retry');
      nakQuietly(m, 1000);
    }
  }

  private async recordRejection(subject: string, rec: RejectionRecord, ttl?: string): Promise<void> {
    await this.js.publish(subject, JSON.stringify(rec), { ...(rec.commandId ? { msgID: `rej-${rec.commandId}` } : {}), ...(ttl !== undefined ? { ttl } : {}) });
  }
}


/** A command with the values of its secret attributes replaced, for records of refusals. */
function withoutSecrets<C extends Command>(command: C, secrets: readonly string[]): C {
  if (!('template' in command)) return command;
  const names = new Set(secrets.map((x) => x.toUpperCase()));
  const template = Object.fromEntries(Object.entries(command.template).map(([k, v]) => [k, names.has(k.trim().toUpperCase()) ? REDACTED : v]));
  return { ...command, template };
}

const mentionsSecret = (text: string, secrets: readonly string[]): boolean => secrets.some((s) => text.toUpperCase().includes(s.toUpperCase()));

/**
 * How long the record of a message that could not be read is kept: long
 * enough to find a misbehaving client, short enough that junk does not
 * fill the store (refusals of real commands are kept like the log).
 */
export const UNREADABLE_KEPT = '168h';

type Parsed =
  | { ok: true; message: CommandMessage }
  | { ok: false; rejection: Rejection; partial: Partial<CommandMessage> & { replyTo?: string | null } };

/**
 * Everything a command message must be before it reaches a machine. A
 * service's subject carries no internal command and no reserved id; imgr's
 * own subject carries only reserved ids.
 */
export function parseCommandMessage(
  subject: string,
  text: string,
  source: CommandSource = 'public',
  secrets: readonly string[] = DEFAULT_SECRET_ATTRIBUTES,
  principalOf: (name: string) => PrincipalLookup = () => undefined,
): Parsed {
  const raw = safeJson(text);
  if (raw === undefined) return { ok: false, rejection: rejection('CMD_ERR_MALFORMED', { reason: 'not JSON' }), partial: {} };
  // The driver hosts' reports have their stream (IMGR_REP); an older store's are still in imgr's: the subject says which.
  const fromDriver = source !== 'public' && isDriverSubject(subject);
  if (source === 'driver' && !fromDriver) return { ok: false, rejection: rejection('CMD_ERR_SUBJECT', { subject, expected: 'imgr.drv-reply.<kind>.<id>' }), partial: {} };
  // A driver host reports and decides nothing else: any other type is refused before it is even read (a type added later too).
  const type = commandTypeOf(raw);
  if (fromDriver && !DRIVER_COMMANDS.has(type)) {
    return { ok: false, rejection: rejection('CMD_ERR_NOT_DRIVER', { type, allowed: [...DRIVER_COMMANDS].join(', ') }), partial: partialOf(raw, `${inboxPrefixFor('drivers')}.`) };
  }
  const r = CommandMessageSchema.safeParse(raw);
  if (!r.success) {
    const issues = r.error.issues.map((i) => `${i.path.join('.') || '(message)'}: ${i.message}`).join('; ');
    const inbox = source === 'public' ? `${inboxPrefixFor(subject.split('.')[2] ?? '')}.` : fromDriver ? `${inboxPrefixFor('drivers')}.` : '_INBOX.';
    return { ok: false, rejection: rejection('CMD_ERR_INVALID', { issues }), partial: partialOf(raw, inbox) };
  }
  const { kind, id } = aggregateOfCommand(r.data.command);
  // The principal is the subject's third token: the server let only that principal publish there.
  const principalName = source === 'public' ? (subject.split('.')[2] ?? '') : '';
  // A refusal is answered only on the sender's own inbox: a principal's, the driver hosts' (the manager's own commands name any).
  const inbox = source === 'public' ? inboxPrefixFor(principalName) : fromDriver ? inboxPrefixFor('drivers') : undefined;
  const ownReply = inbox === undefined || r.data.replyTo?.startsWith(`${inbox}.`) === true ? r.data.replyTo : null;
  const refusal = { envelope: r.data.envelope, replyTo: ownReply };
  const expected = source === 'public' ? subjects.command(principalName, kind, id) : fromDriver ? subjects.driverReply(kind, id) : subjects.internal(kind, id);
  if (subject !== expected) return { ok: false, rejection: rejection('CMD_ERR_SUBJECT', { subject, expected }), partial: refusal };
  const commandId = r.data.envelope.commandId;
  let message = r.data;
  if (source === 'public') {
    const principal = principalOf(principalName);
    if (!principal) return { ok: false, rejection: rejection('CMD_ERR_PRINCIPAL', { principal: principalName }), partial: refusal };
    if ('refused' in principal) return { ok: false, rejection: rejection('CMD_ERR_PRINCIPAL_REFUSED', { principal: principalName, why: principal.refused }), partial: refusal };
    if (r.data.replyTo !== null && !r.data.replyTo.startsWith(`${inboxPrefixFor(principalName)}.`)) {
      // Not answered there: it is somebody else's inbox.
      return { ok: false, rejection: rejection('CMD_ERR_REPLY_TO', { replyTo: r.data.replyTo, principal: principalName }), partial: { envelope: r.data.envelope } };
    }
    const authenticated = actorOf(principalName, principal, r.data.envelope.actor);
    if (!authenticated.ok) return { ok: false, rejection: authenticated.rejection, partial: refusal };
    message = { ...r.data, envelope: { ...r.data.envelope, actor: authenticated.actor } };
    if (INTERNAL_COMMANDS.has(r.data.command.type)) return { ok: false, rejection: rejection('CMD_ERR_INTERNAL', { type: r.data.command.type }), partial: refusal };
    if (commandId.startsWith(INTERNAL_ID_PREFIX)) return { ok: false, rejection: rejection('CMD_ERR_RESERVED_ID', { id: commandId, prefix: INTERNAL_ID_PREFIX }), partial: refusal };
  } else if (!commandId.startsWith(INTERNAL_ID_PREFIX)) {
    return { ok: false, rejection: rejection('CMD_ERR_SUBJECT', { subject, expected: subjects.command('<principal>', kind, id) }), partial: r.data };
  } else if (fromDriver) {
    // A driver host's ids are its own: one the manager derives (a follow-up's, a timeout's) would be held first.
    // Refused without its envelope, so that not even the refusal's record takes the id (rej-<id>).
    if (!DRIVER_ID.test(commandId)) return { ok: false, rejection: rejection('CMD_ERR_RESERVED_ID', { id: commandId, prefix: /^imgr\.[^-]*-?/.exec(commandId)?.[0] ?? INTERNAL_ID_PREFIX }), partial: { replyTo: ownReply } };
    // A driver host acts as the system, never as whom its message names.
    if (r.data.replyTo !== null && ownReply === null) return { ok: false, rejection: rejection('CMD_ERR_REPLY_TO', { replyTo: r.data.replyTo, principal: 'drivers' }), partial: { envelope: r.data.envelope } };
    message = { ...r.data, envelope: { ...r.data.envelope, actor: { ...DRIVER_ACTOR } } };
  }
  const template = 'template' in r.data.command ? r.data.command.template : undefined;
  const plain = template ? unsealedSecrets(template, secrets) : [];
  if (plain.length > 0) return { ok: false, rejection: rejection('CMD_ERR_SECRET_PLAINTEXT', { attrs: plain.join(', ') }), partial: { ...message, command: withoutSecrets(message.command, secrets) } };
  return { ok: true, message };
}

/** The type a message's command says it is, whatever else it holds. */
function commandTypeOf(raw: unknown): string {
  const command = typeof raw === 'object' && raw !== null && 'command' in raw ? raw.command : undefined;
  const type = typeof command === 'object' && command !== null && 'type' in command ? command.type : undefined;
  return typeof type === 'string' ? type.slice(0, 64) : '(none)';
}

/** A driver host's subject (subjects.driverReply), as published. */
export const isDriverSubject = (subject: string): boolean => subject.startsWith('imgr.drv-reply.');

/** The envelope and replyTo of a message whose command did not parse, so the sender still hears back. */
function partialOf(raw: unknown, inbox: string): Partial<CommandMessage> & { replyTo?: string | null } {
  if (typeof raw !== 'object' || raw === null) return {};
  const env = CommandMessageSchema.shape.envelope.safeParse('envelope' in raw ? raw.envelope : undefined);
  // Even a refusal is only sent to a subject a sender may name.
  const reply = 'replyTo' in raw ? ReplySubjectSchema.safeParse(raw.replyTo) : undefined;
  const replyTo = reply?.success && reply.data.startsWith(inbox) ? reply.data : null;
  return { ...(env.success ? { envelope: env.data } : {}), replyTo };
}
