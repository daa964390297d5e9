import { z } from 'zod';
import { EnvelopeSchema } from './envelope.js';
import { ImageCommandSchema, type ImageCommand } from './image-commands.js';
import { DatastoreCommandSchema, DatastoreFactSchema, DatastoreViewSchema } from './datastore.js';
import { ImageFactSchema } from './image-facts.js';
import { ImageViewSchema } from './image-record.js';
import { DriverActionSchema } from './driver.js';
import { ErrorCodeSchema } from './error-code.js';

/** Subjects of the wire protocol; `<id>` is the aggregate's numeric id. */
export const AGGREGATES = ['image', 'datastore'] as const;
export const AggregateKindSchema = z.enum(AGGREGATES);
export type AggregateKind = z.infer<typeof AggregateKindSchema>;

export const subjects = {
  /** A principal's command: only that principal may publish under its name (nats.conf, generated users). */
  command: (principal: string, kind: AggregateKind, id: number): string => `imgr.cmd.${principal}.${kind}.${id}`,
  /** Commands only the manager sends (follow-ups, timeouts, internal steps): only the manager role may publish here. */
  internal: (kind: AggregateKind, id: number): string => `imgr.int.${kind}.${id}`,
  /**
   * What a driver host reports (DRIVER_COMMANDS: replies, log lines,
   * monitors, sweeps): only the drivers role may publish here, and the
   * intake takes nothing else from it.
   */
  driverReply: (kind: AggregateKind, id: number): string => `imgr.drv-reply.${kind}.${id}`,
  event: (kind: AggregateKind, id: number): string => `imgr.evt.${kind}.${id}`,
  events: 'imgr.evt.>',
  driverRequest: (dsMad: string, action: string): string => `imgr.drv.${dsMad}.${action}`,
  driverRequests: 'imgr.drv.>',
  rejected: (kind: AggregateKind | 'unknown', id: number | 'unknown'): string => `imgr.rej.${kind}.${id}`,
  rejections: 'imgr.rej.>',
  /** A commit a reactor could not process: imgr.parked.<reactor>.<log sequence>. */
  parked: (reactor: string, seq: number): string => `imgr.parked.${reactor}.${seq}`,
  parkedAll: 'imgr.parked.>',
  /** Core NATS notifications for the VM subsystem (§5.2): imgr.vm.<vm id>.<kind>. */
  vmNotice: (vmId: number, kind: string): string => `imgr.vm.${vmId}.${kind}`,
} as const;

/** What IMGR_PARKED holds for a commit a reactor gave up on. */
export const ParkedCommitSchema = z.object({
  reactor: z.string(),
  seq: z.number().int().positive(),
  subject: z.string(),
  commandId: z.string(),
  attempts: z.number().int().positive(),
  error: z.string(),
  at: z.number().int(),
});
export type ParkedCommit = z.infer<typeof ParkedCommitSchema>;

export const CommandSchema = z.discriminatedUnion('type', [...ImageCommandSchema.options, ...DatastoreCommandSchema.options]);
export type Command = z.infer<typeof CommandSchema>;
export type CommandInput = z.input<typeof CommandSchema>;

const IMAGE_COMMAND_TYPES = new Set<string>(ImageCommandSchema.options.map((o) => o.shape.type.value));
/** Image commands (and driver replies) versus datastore commands; some datastore commands name an image too. */
export const isImageCommand = (c: Command): c is ImageCommand => IMAGE_COMMAND_TYPES.has(c.type);

export const aggregateOfCommand = (c: Command): { kind: AggregateKind; id: number } =>
  isImageCommand(c) ? { kind: 'image', id: c.imageId } : { kind: 'datastore', id: c.datastoreId };

/**
 * Where a sender may ask for its outcome: a core NATS inbox, nothing else.
 * The manager publishes there, so a subject outside `_INBOX.` (a JetStream
 * API, a KV bucket, the log) or one with spaces or wildcards is refused
 * before anything is decided.
 */
export const ReplySubjectSchema = z
  .string()
  .max(256)
  .regex(/^_INBOX(\.[A-Za-z0-9_-]{1,64}){1,4}$/, 'must be an inbox subject: _INBOX. and up to four tokens of letters, digits, _ or -');

/**
 * Commands that only imgr itself sends. On a service's subject they are
 * refused; the server refuses services the internal subjects.
 */
export const INTERNAL_COMMANDS: ReadonlySet<string> = new Set([
  'driver.reply',
  'driver.timeout',
  'driver.log',
  'datastore.monitored',
  'datastore.swept',
  'datastore.reserve',
  'datastore.settle',
  'image.cloneStart',
  'image.cloneFinish',
  'image.allocateBackup',
  'image.addIncrement',
  'image.flattenIncrements',
]);

/**
 * What a driver host may send, on its own subject (subjects.driverReply):
 * the replies to requests and the reports of what its scripts found. Every
 * other command type is refused there, a type added later included: this is
 * the list of what is allowed, not of what is not.
 */
export const DRIVER_COMMANDS: ReadonlySet<string> = new Set(['driver.reply', 'driver.log', 'datastore.monitored', 'datastore.swept'] satisfies Command['type'][]);

/**
 * Who a driver host's report is from, whatever its message says: a fixed
 * system actor (the drivers role is a driver, not a user or an administrator
 * of its choosing).
 */
export const DRIVER_ACTOR = { uid: 0, gid: 0, name: 'imgr', service: 'driver-host' } as const;

/**
 * Ids imgr derives for itself (`imgr.reply-<request>`, `imgr.timeout-<request>`,
 * …) start with this; a service's command id may not, so no client can
 * claim one first.
 */
export const INTERNAL_ID_PREFIX = 'imgr.';

/**
 * The ids a driver host's reports take (`imgr.reply-<request>`,
 * `imgr.log-<request>-<n>`, `imgr.sweep-<request>`), and the only ones
 * taken on its subject: an id the manager derives (`imgr.pm-…`,
 * `imgr.timeout-…`, `imgr.with-…`) is the manager's, so that no report can
 * hold it first in the outcomes or the log.
 */
export const DRIVER_ID = /^imgr\.(reply|log|sweep)-/;

/**
 * Where a command travels: a service's subject, imgr's own, or the driver
 * hosts' (each in a stream of its own, so that no sender shares a
 * de-duplication window with another: a msgID one of them claims never
 * suppresses another's message).
 */
export const COMMAND_SOURCES = ['public', 'internal', 'driver'] as const;
export type CommandSource = (typeof COMMAND_SOURCES)[number];

/** What a service publishes on imgr.cmd.<kind>.<id>. */
export const CommandMessageSchema = z.object({
  envelope: EnvelopeSchema,
  command: CommandSchema,
  /** Where the outcome is sent (a core NATS inbox); null when the sender only reads imgr_outcomes. */
  replyTo: ReplySubjectSchema.nullable().default(null),
});
export type CommandMessage = z.infer<typeof CommandMessageSchema>;
export type CommandMessageInput = z.input<typeof CommandMessageSchema>;

/** The answer to one command, sent to replyTo and kept in KV imgr_outcomes under the command id. */
export const OutcomeSchema = z.discriminatedUnion('status', [
  z.object({
    status: z.literal('accepted'),
    commandId: z.string(),
    aggregate: AggregateKindSchema,
    id: z.number().int(),
    fact: z.string(),
    state: z.string(),
    /** Event-log sequence of the commit. */
    seq: z.number().int().positive(),
    /** What the command id stood for (intake/fingerprint.ts); absent in outcomes kept before it existed. */
    fingerprint: z.string().optional(),
    /** The principal that sent it: the one principal (besides administrators and roles) that may read the outcome again. */
    principal: z.string().optional(),
  }),
  z.object({
    status: z.literal('rejected'),
    commandId: z.string(),
    code: ErrorCodeSchema,
    message: z.string(),
    fingerprint: z.string().optional(),
    principal: z.string().optional(),
  }),
]);
export type Outcome = z.infer<typeof OutcomeSchema>;

const commitBase = {
  v: z.literal(1),
  id: z.number().int().nonnegative(),
  commandId: z.string(),
  correlationId: z.string(),
  causationId: z.string().nullable(),
  actor: EnvelopeSchema.shape.actor,
  at: z.number().int(),
  /** Tamper evidence: SHA-256 (hex) of the aggregate's previous commit message, "" for its first. */
  prev: z.string().regex(/^([0-9a-f]{64})?$/),
};
/** One message of the event log: all facts of one command (principle 3). */
export const CommitSchema = z.discriminatedUnion('aggregate', [
  z.object({ aggregate: z.literal('image'), ...commitBase, facts: z.array(ImageFactSchema).min(1) }),
  z.object({ aggregate: z.literal('datastore'), ...commitBase, facts: z.array(DatastoreFactSchema).min(1) }),
]);
export type Commit = z.infer<typeof CommitSchema>;

/**
 * A fingerprint of the commit schema this code writes: a manager puts it on
 * every commit (COMMIT_SHAPE_HEADER). A commit that carries this code's own
 * fingerprint was written from values the machines typed, in exactly the
 * shape this code reads, by the one role NATS lets append: it is read without
 * the schema (which cost about 9 µs of a rebuild's 25 µs per fact). A commit
 * of another version (an older shape, fields since removed or added) goes
 * through the schema, which reads it into this one.
 */
export const COMMIT_SHAPE = shapeOf(CommitSchema);

/** A schema's fingerprint: two FNV-1a hashes (32 bits each, two offsets) of its JSON Schema, in hex; not a defence against anyone. */
export function shapeOf(schema: z.ZodType): string {
  const text = JSON.stringify(z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }));
  let a = 0x811c9dc5;
  let b = 0x01000193;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193) >>> 0;
    b = Math.imul(b ^ c, 0x01000193) >>> 0;
  }
  return a.toString(16).padStart(8, '0') + b.toString(16).padStart(8, '0');
}

/** Reads one log message: the commit, or why it cannot be read (a reader skips it, never fails on it). */
export function parseCommit(text: string, shape?: string): Commit | { unreadable: string } {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    return { unreadable: `not JSON: ${String(e)}` };
  }
  if (shape === COMMIT_SHAPE && looksLikeCommit(raw)) return raw;
  const r = CommitSchema.safeParse(raw);
  return r.success ? r.data : { unreadable: r.error.message.slice(0, 500) };
}

/** The frame of a commit, checked even when its shape is this code's own. */
function looksLikeCommit(raw: unknown): raw is Commit {
  if (typeof raw !== 'object' || raw === null) return false;
  const c = raw as Record<string, unknown>;
  return (c['aggregate'] === 'image' || c['aggregate'] === 'datastore') && Number.isSafeInteger(c['id']) && typeof c['commandId'] === 'string' && Array.isArray(c['facts']) && c['facts'].length > 0;
}

/** A rejected or unreadable command, kept in IMGR_REJ for audit. */
export const RejectionRecordSchema = z.object({
  commandId: z.string().nullable(),
  actor: EnvelopeSchema.shape.actor.nullable(),
  subject: z.string(),
  code: ErrorCodeSchema,
  message: z.string(),
  at: z.number().int(),
  /** The command as received (parsed when it parsed, else the raw text, cut to 4 KiB). */
  command: z.union([CommandSchema, z.string()]),
});
export type RejectionRecord = z.infer<typeof RejectionRecordSchema>;

/** What the driver host receives on imgr.drv.<DS_MAD>.<action>. */
export const DriverRequestSchema = z.object({
  requestId: z.string(),
  action: DriverActionSchema,
  imageId: z.number().int(),
  datastoreId: z.number().int(),
  /** Epoch ms after which the watchdog answers with a timeout. */
  deadline: z.number().int(),
  extra: z.record(z.string(), z.string()),
  image: ImageViewSchema.nullable(),
  datastore: DatastoreViewSchema,
  /** Event-log sequence of the commit that asked for it. */
  seq: z.number().int(),
});
export type DriverRequest = z.infer<typeof DriverRequestSchema>;

/** The answer to a STAT request on imgr.stat (a synchronous request, §9.3). */
export const StatReplySchema = z.object({
  result: z.enum(['SUCCESS', 'FAILURE']),
  info: z.string(),
  /** The script's log lines (`<severity> <text>`), recorded with a refusal. */
  logs: z.array(z.string()).max(200).default([]),
});
