/**
 * Command and request ids are written where NATS has rules of its own: a
 * command id is the key of its outcome in imgr_outcomes (`$KV.imgr_outcomes.<id>`)
 * and its commit's msgID, a request id is part of its reply's command id
 * (`imgr.reply-<id>`). An id the schema took and the bucket refused was
 * redelivered for ever. Every string of up to four characters over an
 * alphabet with every kind of character is walked: the schema accepts it
 * only if the KV library accepts it as a key and the server as subject
 * tokens, and refuses none of those that store.
 */
import { describe, expect, it } from 'vitest';
import { validateKey } from '@nats-io/kv/internal';
import { CommandIdSchema, RequestIdSchema } from '../../src/messages/ids.js';

const ALPHABET = ['a', 'Z', '0', '.', '_', '=', '-', '/', '*', '>', ' ', '$', '\t', 'é'];

function* strings(max: number): Generator<string> {
  let level = [''];
  for (let n = 1; n <= max; n++) {
    const next: string[] = [];
    for (const s of level) for (const c of ALPHABET) next.push(s + c);
    yield* next;
    level = next;
  }
}

const kvKey = (k: string): boolean => {
  try {
    validateKey(k);
    return true;
  } catch {
    return false;
  }
};
/** What the server takes as a literal subject: non-empty tokens, no wildcard, no white space. */
const literalSubject = (s: string): boolean => s.split('.').every((t) => t.length > 0 && t !== '*' && t !== '>' && !/\s/.test(t));
/** Stored and published under as is: a key of the outcome bucket, a literal subject, and so is the reply id built from it. */
const storable = (id: string): boolean => kvKey(id) && literalSubject(`$KV.imgr_outcomes.${id}`) && kvKey(`imgr.reply-${id}`) && literalSubject(`imgr.reply-${id}`);

describe('command and request ids', () => {
  it('accept exactly the ids the outcome bucket stores (of the characters ids may use)', () => {
    let accepted = 0;
    for (const id of strings(4)) {
      const ok = CommandIdSchema.safeParse(id).success;
      expect(RequestIdSchema.safeParse(id).success, id).toBe(ok);
      // Whatever the schema takes stores: no id is ever refused by the bucket.
      if (ok) {
        expect(storable(id), JSON.stringify(id)).toBe(true);
        accepted++;
      }
      // And nothing that stores (of letters, digits, _ = - and dots) is refused.
      if (/^[A-Za-z0-9._=-]+$/.test(id) && storable(id)) expect(ok, JSON.stringify(id)).toBe(true);
    }
    expect(accepted).toBeGreaterThan(1000);
  });

  it.each(['poison.', 'poi..son', '.poison', '.', '..', 'a.', 'a..b', 'imgr.reply-zz.', 'imgr..x'])('refuse %j, which the bucket cannot store', (id) => {
    expect(CommandIdSchema.safeParse(id).success).toBe(false);
    expect(storable(id)).toBe(false);
  });

  it('keep what imgr and clients mint', () => {
    for (const id of ['3f1e0c2a-9b7d-4e2f-8a1b-0c9d8e7f6a5b', 'imgr.reply-req-1', 'imgr.timeout-monitor-3-1700000000', 'a', 'x=y_z-1.2']) expect(CommandIdSchema.safeParse(id).success, id).toBe(true);
  });
});
