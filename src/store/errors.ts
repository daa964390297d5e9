import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import { TimeoutError } from '@nats-io/transport-node';

/** The aggregate moved on since we read it (expect.lastSubjectSequence failed). */
export class ConcurrencyError extends Error {
  override readonly name = 'ConcurrencyError';
  constructor(
    readonly subject: string,
    readonly expected: number,
    options?: ErrorOptions,
  ) {
    super(`${subject} changed after sequence ${expected}`, options);
  }
}

/**
 * Whether a refusal says the expected last sequence was not the stream's:
 * 10071 names the sequence; a clustered stream answers 10164, naming none,
 * when another write in flight has claimed it (racing writers on a cluster).
 */
export const isWrongLastSequenceCode = (code: number): boolean => code === JetStreamApiCodes.StreamWrongLastSequence || code === JetStreamApiCodes.StreamWrongLastSequenceUnknown;

export const isWrongLastSequence = (e: unknown): boolean => e instanceof JetStreamApiError && isWrongLastSequenceCode(e.code);

export const isNotFound = (e: unknown): boolean =>
  e instanceof JetStreamApiError && (e.code === JetStreamApiCodes.StreamNotFound || e.status === 404);

export const isConcurrencyError = (e: unknown): e is ConcurrencyError => e instanceof ConcurrencyError;

/**
 * What a cluster answers while it has no JetStream leader yet (first start, a
 * node restarting), or before it knows enough peers to place replicas: no
 * answer at all, 503, or "insufficient resources".
 */
export const isJetStreamStarting = (e: unknown): boolean =>
  e instanceof TimeoutError ||
  (e instanceof Error && e.name === 'JetStreamNotEnabled') ||
  (e instanceof JetStreamApiError && (e.status === 503 || e.code === INSUFFICIENT_RESOURCES));

const INSUFFICIENT_RESOURCES = 10023;
