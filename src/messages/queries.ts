import type { AggregateKind } from './wire.js';

/**
 * Query subjects carry who asks: `imgr.query.<asker>.<query>…`, where the
 * asker is the NATS user (a principal or a role). The server lets each user
 * publish only under its own name, so an answerer knows the asker from the
 * subject alone, answers only on that asker's inbox (`_INBOX.<asker>.…`) and
 * may show it only what it may read.
 */
export const querySubjects = {
  view: (asker: string, kind: AggregateKind, id: number): string => `imgr.query.${asker}.view.${kind}.${id}`,
  nextId: (asker: string, kind: AggregateKind): string => `imgr.query.${asker}.next-id.${kind}`,
  images: (asker: string): string => `imgr.query.${asker}.images`,
  datastores: (asker: string): string => `imgr.query.${asker}.datastores`,
  /** The outcome kept for a command id (the body): its sender's, an administrator's or a role's to read. */
  outcome: (asker: string): string => `imgr.query.${asker}.outcome`,
} as const;

/** What the answerers subscribe to: every asker's query of one kind. */
export const QUERY_PATTERNS = {
  view: 'imgr.query.*.view.*.*',
  nextId: 'imgr.query.*.next-id.*',
  images: 'imgr.query.*.images',
  datastores: 'imgr.query.*.datastores',
  outcome: 'imgr.query.*.outcome',
} as const;

/**
 * The user a delegate reads for, on a query (`uid:gid`): a portal shows its
 * user what that user may USE. Checked against the delegate's grant as a
 * command's actor is; any other principal reads as itself whatever it says.
 */
export const READ_AS_HEADER = 'Imgr-Read-As';

/** Who may publish a user's queries: itself only (the generated NATS permissions). */
export const ownQueries = (user: string): string => `imgr.query.${user}.>`;
