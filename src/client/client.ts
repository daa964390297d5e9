import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { jetstream, type JetStreamClient } from '@nats-io/jetstream';
import { headers, TimeoutError, type MsgHdrs, type NatsConnection } from '@nats-io/transport-node';
import { ReplyInbox } from './reply-inbox.js';
import { connectAs, inboxPrefixFor, type Role } from '../platform/nats.js';
import { fingerprintOf } from '../protocol/fingerprint.js';
import { sealingInfo } from './sealing.js';
import { seal, unsealedSecrets } from '../secrets/sealed.js';
import { fingerprintFile, pinnedFingerprint, publicKeyFingerprint } from '../secrets/fingerprint.js';
import { rejection } from '../messages/errors.js';
import { ImgrError } from '../messages/failures.js';
import { z } from 'zod';
import type { ImageQuery } from '../messages/query.js';
import { ActorSchema, type Actor } from '../messages/envelope.js';
import {
  INTERNAL_ID_PREFIX,
  CommandSchema,
  OutcomeSchema,
  aggregateOfCommand,
  subjects,
  type AggregateKind,
  type Commit,
  type Command,
  type CommandInput,
  type CommandMessage,
  type Outcome,
} from '../messages/wire.js';
import { MINTED_ID_HEADER } from '../messages/names.js';
import { READ_AS_HEADER, querySubjects } from '../messages/queries.js';
import { parseCommit } from '../messages/wire.js';
import { ImageViewSchema, type ImageView } from '../messages/image-record.js';
import { DatastoreViewSchema, type DatastoreView } from '../messages/datastore.js';

/** The command was sent but no outcome arrived in time; it may still be processed (code IMGR_TIMEOUT). */
export class ImgrTimeoutError extends ImgrError {
  override readonly name = 'ImgrTimeoutError';
  constructor(readonly commandId: string, ms: number) {
    super('IMGR_TIMEOUT', `no outcome for command ${commandId} within ${ms} ms; it may still be processed (send it again with the same id to learn its outcome)`);
  }
}

export interface SendOptions {
  readonly commandId?: string;
  readonly correlationId?: string;
  readonly causationId?: string | null;
  readonly actor?: Actor;
  readonly timeoutMs?: number;
  /**
   * Send as imgr itself, with an id under INTERNAL_ID_PREFIX: connected as
   * the manager role, on the manager's own subject (any internal command);
   * as the drivers role, on the driver hosts' subject (their replies and
   * reports only, DRIVER_COMMANDS). For operators' repair tools and tests
   * that stand in for a driver host.
   */
  readonly internal?: boolean;
}

/**
 * The typed client for services: send a command and get its outcome
 * (accepted with the new state, or rejected with code and text).
 */
export class ImgrClient {
  private readonly js: JetStreamClient;
  private sealing: Promise<{ publicKeyPem: string | null; attributes: string[] }> | undefined;
  private order: Promise<void> = Promise.resolve();
  private readonly replies: ReplyInbox;

  constructor(
    readonly nc: NatsConnection,
    readonly actor: Actor,
    /** Where outcomes come back: the principal's own inbox prefix (nats allows no other). */
    private readonly inboxPrefix: string = inboxPrefixFor('service'),
    /** Whose subject commands go on; the manager takes the identity from it. */
    readonly principal: string = 'service',
    /**
     * The fingerprint of the only key secrets are sealed to (keyring.ts); by
     * default the one pinned beside the credentials at imgr's first start.
     */
    private readonly secretsFingerprint?: string,
  ) {
    this.js = jetstream(nc);
    this.replies = new ReplyInbox(nc, inboxPrefix);
  }

  /**
   * Connects as a principal (the NATS user of that name; `service` when
   * none is named), or as an imgr role for internal commands.
   */
  static async connect(o: { servers: string; role?: Role; principal?: string; actor: ActorInput; secretsFingerprint?: string }): Promise<ImgrClient> {
    const user = o.principal ?? o.role ?? 'service';
    const nc = await connectAs(user, o.servers);
    return new ImgrClient(nc, ActorSchema.parse(o.actor), inboxPrefixFor(user), user, o.secretsFingerprint);
  }

  async close(): Promise<void> {
    await this.nc.close();
  }

  /** Publishes a command and waits for its outcome. The same command id twice yields the first outcome. */
  async send(input: CommandInput, o: SendOptions = {}): Promise<Outcome> {
    // Sealing may wait for imgr's key; commands still leave in the order they were sent.
    const sealing = this.sealSecrets(CommandSchema.parse(input));
    const turn = this.order.then(() => sealing);
    this.order = turn.then(
      () => undefined,
      () => undefined,
    );
    const command = await turn;
    const given = o.commandId ?? randomUUID();
    // A driver host's ids are its own (`imgr.reply-…`): the intake takes no other on its subject.
    const prefix = this.principal === 'drivers' ? `${INTERNAL_ID_PREFIX}reply-` : INTERNAL_ID_PREFIX;
    const commandId = o.internal === true && !given.startsWith(INTERNAL_ID_PREFIX) ? `${prefix}${given}` : given;
    const timeoutMs = o.timeoutMs ?? 30_000;
    const { kind, id } = aggregateOfCommand(command);
    const waiting = this.replies.expect(timeoutMs);
    const message: CommandMessage = {
      envelope: {
        commandId: commandId as CommandMessage['envelope']['commandId'],
        correlationId: o.correlationId ?? commandId,
        causationId: o.causationId ?? null,
        actor: o.actor ?? this.actor,
        at: Date.now(),
      },
      command,
      replyTo: waiting.subject,
    };
    try {
      const subject = o.internal !== true ? subjects.command(this.principal, kind, id) : this.principal === 'drivers' ? subjects.driverReply(kind, id) : subjects.internal(kind, id);
      const minted = o.commandId === undefined ? headers() : undefined;
      minted?.set(MINTED_ID_HEADER, '1');
      const ack = await this.js.publish(subject, JSON.stringify(message), { msgID: commandId, ...(minted ? { headers: minted } : {}) });
      if (ack.duplicate) {
        // JetStream dropped the message as a duplicate id: the stored outcome is the first command's,
        // which is this one's only if the fingerprints agree.
        waiting.cancel();
        const first = await this.storedOutcome(commandId, timeoutMs);
        const mine = fingerprintOf(command, message.envelope.actor);
        if (first.fingerprint === undefined || first.fingerprint === mine) return first;
        return { status: 'rejected', commandId, ...rejection('CMD_ERR_ID_REUSED', { id: commandId }), fingerprint: mine };
      }
      const reply = await waiting.reply;
      if (reply === undefined) throw new ImgrTimeoutError(commandId, timeoutMs);
      return OutcomeSchema.parse(reply.json());
    } catch (e) {
      if (isTimeout(e)) throw new ImgrTimeoutError(commandId, timeoutMs);
      throw e;
    } finally {
      waiting.cancel();
    }
  }

  /**
   * Registers an image from a template under a fresh id: one `image.allocate`,
   * which checks the datastore's room (SIZE, or the STAT the manager runs)
   * and reserves it until the copy ends (W38).
   */
  async register(datastoreId: number, template: Record<string, string>, o: SendOptions & { skipCapacityCheck?: boolean } = {}): Promise<Outcome> {
    const { skipCapacityCheck = false, ...send } = o;
    const imageId = await this.nextId('image');
    return this.send({ type: 'image.allocate', imageId, datastoreId, template, skipCapacityCheck }, send);
  }

  /** Clones an image into a new one (§7.4) with one `image.clone`: the origin is held until the copy ends. */
  async clone(originId: number, name: string, datastoreId: number, o: SendOptions = {}): Promise<Outcome> {
    const imageId = await this.nextId('image');
    return this.send({ type: 'image.clone', imageId, originId, name, datastoreId }, o);
  }

  /** The outcome of an earlier command, once it is known. */
  async storedOutcome(commandId: string, timeoutMs: number): Promise<Outcome> {
    const until = Date.now() + timeoutMs;
    for (let wait = 20; Date.now() < until; wait = Math.min(wait * 2, 500)) {
      // Asked of the manager, which shows a principal only the outcomes of its own commands.
      const m = await this.nc.request(querySubjects.outcome(this.principal), commandId, { timeout: Math.max(1, Math.min(10_000, until - Date.now())) });
      const kept = OutcomeSchema.nullable().parse(m.json());
      if (kept !== null) return kept;
      await sleep(wait);
    }
    throw new ImgrTimeoutError(commandId, timeoutMs);
  }

  /**
   * Secret attributes (W23) leave the client sealed to the driver hosts' key,
   * so neither the command stream nor the log ever holds them in plain text.
   */
  private async sealSecrets(command: Command): Promise<Command> {
    if (!('template' in command)) return command;
    this.sealing ??= sealingInfo(this.nc);
    let info = await this.sealing;
    if (unsealedSecrets(command.template, info.attributes).length === 0) return command;
    if (info.publicKeyPem === null) {
      // Read again: a driver host may have published its key since.
      this.sealing = sealingInfo(this.nc);
      info = await this.sealing;
    }
    const pem = info.publicKeyPem;
    if (pem === null) throw new ImgrError('IMGR_SECRETS_KEY', "cannot seal secret attributes: imgr's secrets key is not published yet (npm start publishes it; for a driver host started on its own, `imgr secrets publish`)");
    this.assertPinned(pem);
    const plain = new Set(unsealedSecrets(command.template, info.attributes));
    const template = Object.fromEntries(Object.entries(command.template).map(([k, v]) => [k, plain.has(k) ? seal(pem, v) : v]));
    return { ...command, template };
  }

  /**
   * Secrets are sealed only to the key whose fingerprint this client pins:
   * whoever could write imgr_meta must not be able to make clients seal to a
   * key of theirs.
   */
  private assertPinned(pem: string): void {
    const file = fingerprintFile();
    const pinned = this.secretsFingerprint ?? pinnedFingerprint(file);
    if (pinned === undefined) {
      throw new ImgrError('IMGR_SECRETS_KEY', `cannot seal secret attributes: no pinned fingerprint of imgr's secrets key (${file}; imgr writes it at first start beside the credentials: copy it from the imgr host, or set IMGR_SECRETS_FINGERPRINT_FILE)`);
    }
    const published = publicKeyFingerprint(pem);
    if (published !== pinned) {
      throw new ImgrError('IMGR_SECRETS_KEY', `refusing to seal secret attributes: the secrets key published in imgr_meta (${published}) is not the pinned one (${pinned}); it was replaced, or this client pins another imgr's key`);
    }
  }

  /**
   * A query's options: the user this client acts for, which a delegating
   * principal reads as (within its grant); any other principal reads as itself.
   */
  private readOptions(): { timeout: number; headers: MsgHdrs } {
    const h = headers();
    h.set(READ_AS_HEADER, `${this.actor.uid}:${this.actor.gid}`);
    return { timeout: 10_000, headers: h };
  }

  /** The current view of an image, or null when there is none (or one this client's user may not USE). */
  async image(id: number): Promise<ImageView | null> {
    const m = await this.nc.request(querySubjects.view(this.principal, 'image', id), '', this.readOptions());
    return ImageViewSchema.nullable().parse(m.json());
  }

  async datastore(id: number): Promise<DatastoreView | null> {
    const m = await this.nc.request(querySubjects.view(this.principal, 'datastore', id), '', this.readOptions());
    return DatastoreViewSchema.nullable().parse(m.json());
  }

  /** Images matching a query (served by the projections): filters and pagination. */
  /** One page of images; `nextOffset` is where the next starts (a page also stops before 1 MiB). */
  async images(query: ImageQueryInput = {}): Promise<{ total: number; items: ImageView[]; nextOffset: number | null }> {
    const m = await this.nc.request(querySubjects.images(this.principal), JSON.stringify(query), this.readOptions());
    const r = ImagesAnswerSchema.parse(m.json());
    if (!r.ok) throw new ImgrError('IMGR_QUERY_REFUSED', `query refused: ${r.error}`);
    return { total: r.total, items: r.items, nextOffset: r.nextOffset };
  }

  /** Every datastore (served by the projections). */
  async datastores(): Promise<DatastoreView[]> {
    const m = await this.nc.request(querySubjects.datastores(this.principal), '', this.readOptions());
    return z.array(DatastoreViewSchema).parse(m.json());
  }

  /**
   * Calls `onCommit` for every commit of one image as it is written; returns a
   * function that stops. The raw log is for roles (auditor, dashboard): a
   * principal's subscription to it is refused by the server.
   */
  watchImage(id: number, onCommit: (c: Commit) => void): () => void {
    const sub = this.nc.subscribe(subjects.event('image', id), {
      callback: (err, m) => {
        if (err) return;
        const c = parseCommit(m.string());
        if (!('unreadable' in c)) onCommit(c);
      },
    });
    return () => sub.unsubscribe();
  }

  /** A new id for an image or datastore, from the manager's counter. */
  async nextId(kind: AggregateKind): Promise<number> {
    const m = await this.nc.request(querySubjects.nextId(this.principal, kind), '', { timeout: 10_000 });
    const id = Number(m.string());
    if (!Number.isInteger(id) || id < 0) throw new ImgrError('IMGR_BAD_ANSWER', `bad id from the manager: ${m.string()}`);
    return id;
  }
}

type ActorInput = z.input<typeof ActorSchema>;
type ImageQueryInput = Partial<ImageQuery>;
const ImagesAnswerSchema = z.discriminatedUnion('ok', [
  z.object({ ok: z.literal(true), total: z.number().int(), items: z.array(ImageViewSchema), nextOffset: z.number().int().nullable().default(null) }),
  z.object({ ok: z.literal(false), error: z.string() }),
]);

const isTimeout = (e: unknown): boolean => e instanceof TimeoutError;
