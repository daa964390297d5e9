import type { KV } from '@nats-io/kv';
import { DeliverPolicy, type JetStreamClient } from '@nats-io/jetstream';
import { isWrongLastSequence } from './errors.js';

/** Values read of a bucket per pull: what a boot holds in memory at once, whatever the bucket's size. */
const BUCKET_READ_BATCH = 1_000;
const utf8 = new TextDecoder();

/**
 * Calls `onValue` for every key that holds a value now. The last value of
 * each key is pulled in batches (a watch delivers the whole bucket as fast as
 * the server sends it, and a boot over 100,000 snapshots held them all in
 * memory before it had read the first ones).
 */
export async function readBucket(js: JetStreamClient, kv: KV, onValue: (key: string, text: string) => void): Promise<void> {
  const status = await kv.status();
  if (status.values === 0) return;
  const prefix = `$KV.${status.bucket}.`;
  const consumer = await js.consumers.get(status.streamInfo.config.name, { filter_subjects: `${prefix}>`, deliver_policy: DeliverPolicy.LastPerSubject });
  const messages = await consumer.consume({ max_messages: BUCKET_READ_BATCH });
  try {
    for await (const m of messages) {
      const operation = m.headers?.get('KV-Operation') ?? '';
      if (operation === '') onValue(m.subject.slice(prefix.length), utf8.decode(m.data));
      if (m.info.pending === 0) break;
    }
  } finally {
    await messages.close();
  }
}

/**
 * Writes a value tagged with the log sequence it reflects, unless the bucket
 * already holds one reflecting a later sequence: several managers share the
 * snapshot bucket, and one that lags must never put an older state over a
 * newer one. Compare-and-set on the revision; `revisions` remembers what this
 * writer last wrote, so an uncontended write costs one request.
 */
export async function putIfNewer(kv: KV, key: string, value: string, seq: number, seqOf: (text: string) => number, revisions: Map<string, number>): Promise<void> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const known = revisions.get(key);
    const written = known === undefined ? await createIfAbsent(kv, key, value) : await updateAt(kv, key, value, known);
    if (written !== undefined) {
      revisions.set(key, written);
      return;
    }
    const current = await kv.get(key);
    if (current?.operation === 'PUT' && seqOf(current.string()) >= seq) {
      revisions.set(key, current.revision);
      return;
    }
    if (current) revisions.set(key, current.revision);
    else revisions.delete(key);
  }
  throw new Error(`${key}: five writers in a row changed it under this one`);
}


/** Creates the key; its new revision, or undefined when the key holds a value already. */
export async function createIfAbsent(kv: KV, key: string, value: string): Promise<number | undefined> {
  try {
    return await kv.create(key, value);
  } catch (e) {
    if (isWrongLastSequence(e)) return undefined;
    throw e;
  }
}

/** Replaces the value at `revision`; its new revision, or undefined when another write came first. */
export async function updateAt(kv: KV, key: string, value: string, revision: number): Promise<number | undefined> {
  try {
    return await kv.update(key, value, revision);
  } catch (e) {
    if (isWrongLastSequence(e)) return undefined;
    throw e;
  }
}
