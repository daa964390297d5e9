import { InvalidArgumentError, InvalidSubjectError } from '@nats-io/transport-node';

/**
 * Why a command failed because of what the message holds rather than
 * because NATS was away, if it did: what the client library refuses before
 * anything is sent (a key or a subject built from the message, a payload
 * larger than the server takes). Such a command fails at every delivery, so
 * it is refused and terminated instead of being redelivered for ever; any
 * other failure leaves it for redelivery (bounded by the durable's
 * max_deliver). The cause chain is walked: a failure may be wrapped.
 */
export function causedByMessage(e: unknown): string | undefined {
  for (let x: unknown = e, depth = 0; x instanceof Error && depth < 8; x = x.cause, depth++) {
    if (x instanceof InvalidSubjectError || x instanceof InvalidArgumentError) return x.message;
    // The KV library's key check throws a plain Error.
    if (/^invalid key\b/i.test(x.message)) return x.message;
  }
  return undefined;
}
