/**
 * imgr's client library for services: the only module a service imports.
 * It speaks the wire protocol (src/messages) over NATS and imports nothing of
 * the server (ESLint enforces it for src/client).
 */
export { ImgrClient, ImgrTimeoutError, type SendOptions } from './client.js';
export { ImgrError, isImgrError, FAILURE_CODES, type FailureCode } from '../messages/failures.js';
export type { Command, CommandInput, Commit, Outcome, AggregateKind } from '../messages/wire.js';
export type { ImageView } from '../messages/image-record.js';
export type { DatastoreView } from '../messages/datastore.js';
export type { ImageQuery } from '../messages/query.js';
export type { Actor } from '../messages/envelope.js';
export type { ErrorCode } from '../messages/errors.js';
