import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';

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

export const isWrongLastSequence = (e: unknown): boolean =>
  e instanceof JetStreamApiError && e.code === JetStreamApiCodes.StreamWrongLastSequence;

export const isNotFound = (e: unknown): boolean =>
  e instanceof JetStreamApiError && (e.code === JetStreamApiCodes.StreamNotFound || e.status === 404);

export const isConcurrencyError = (e: unknown): e is ConcurrencyError => e instanceof ConcurrencyError;
