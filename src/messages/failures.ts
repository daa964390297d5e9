/**
 * Failures at imgr's edges that are not a command's refusal (those carry an
 * ErrorCode in their outcome): the caller learns a stable code, maps it (the
 * CLI to an exit code) and tests assert it, never the wording.
 */
export const FAILURE_CODES = [
  /** A command was sent but no outcome came in time; it may still be processed. */
  'IMGR_TIMEOUT',
  /** The aggregate kept changing under a command; the intake redelivers it. */
  'IMGR_CONFLICTS_EXHAUSTED',
  /** The NATS store was written by a newer imgr. */
  'IMGR_STORE_TOO_NEW',
  /** A manager configured with another partition count than the store has. */
  'IMGR_PARTITIONS_FIXED',
  /** The nats-server is older than imgr needs. */
  'IMGR_SERVER_TOO_OLD',
  /** A query (filters, pagination) was refused by whoever answers it. */
  'IMGR_QUERY_REFUSED',
  /** An answer that does not parse (a service of another version, a stray responder). */
  'IMGR_BAD_ANSWER',
  /** Secrets cannot be sealed: no key published, none pinned, or the published one is not the pinned one. */
  'IMGR_SECRETS_KEY',
] as const;
export type FailureCode = (typeof FAILURE_CODES)[number];

export class ImgrError extends Error {
  constructor(
    readonly code: FailureCode,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'ImgrError';
  }
}

export const isImgrError = (e: unknown, code?: FailureCode): e is ImgrError => e instanceof ImgrError && (code === undefined || e.code === code);
